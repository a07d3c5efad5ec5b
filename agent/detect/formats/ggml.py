"""Read a legacy llama.cpp file (GGML, GGMF, GGJT v1-v3: the formats before GGUF).

Layout: magic, version (not in GGML), seven int32 llama hparams, the vocabulary, then tensor
records (dims, name, type) each followed by its data, which is jumped over.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.gguf import TENSOR_TYPES
from agent.errors import FormatError

FORMAT = "ggml"
# The magics are little-endian u32s of 'ggml', 'ggmf', 'ggjt', so the bytes read backwards.
GGML, GGMF, GGJT = b"lmgg", b"fmgg", b"tjgg"
_VERSIONS = {GGMF: (1,), GGJT: (1, 2, 3)}
MAX_VOCAB = 1 << 20
MAX_TOKEN = 1 << 16
MAX_TENSORS = 1 << 16
MAX_NAME = 1 << 10
MAX_DIMS = 4
MAX_HPARAM = 1 << 24
ALIGNMENT = 32
QUANT_VERSION_FACTOR = 1000
_CHUNK = 64 << 10
_HPARAMS = ("n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot", "ftype")

# Before GGJT v3, Q4_0, Q4_1 and Q8_0 blocks kept f32 scales, and Q4_2/Q4_3 still existed.
_OLD_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 20), 3: (32, 24), 4: (16, 10), 5: (16, 12), 6: (32, 22),
    7: (32, 24), 8: (32, 36),
}  # fmt: skip
_OLD_NAMES = {4: "Q4_2", 5: "Q4_3"}

# llama_ftype of the legacy files -> the short name people search for.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 5: "Q4_2", 6: "Q4_3",
    7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L",
    14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
}  # fmt: skip


def claims(head: bytes, size: int) -> bool:
    """True for a legacy magic, a version that magic had, and plausible hparams after it."""
    magic = head[:4]
    if magic not in (GGML, GGMF, GGJT):
        return False
    start = 4 if magic == GGML else 8
    if len(head) < start + 20:
        return False
    if magic != GGML and struct.unpack_from("<I", head, 4)[0] not in _VERSIONS[magic]:
        return False
    # The first five are sizes in every ggml model's hparams; what follows varies by model.
    hparams = struct.unpack_from("<5i", head, start)
    return all(0 < value <= MAX_HPARAM for value in hparams)


@dataclass
class Cursor:
    read_at: ReadAt
    size: int
    pos: int = 0
    buf: bytes = b""
    buf_at: int = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.size:
            raise FormatError(FORMAT, self.pos, f"{what} runs past the end of the file")
        start = self.pos - self.buf_at
        if start < 0 or start + n > len(self.buf):
            want = min(max(n, _CHUNK), self.size - self.pos)
            self.buf, self.buf_at, start = self.read_at(self.pos, want), self.pos, 0
            if len(self.buf) < n:
                raise FormatError(FORMAT, self.pos, "file shorter than its size")
        self.pos += n
        return self.buf[start : start + n]

    def ints(self, code: str, what: str) -> tuple[int, ...]:
        return struct.unpack("<" + code, self.take(struct.calcsize(code), what))

    def skip(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise FormatError(FORMAT, self.pos, f"{what} runs past the end of the file")
        self.pos += n


@dataclass
class _Tensors:
    count: int = 0
    parameters: int = 0
    elements_by_type: dict[int, int] = field(default_factory=dict)


def parse(read_at: ReadAt, size: int) -> ModelInfo:
    """Read hparams, step over the vocabulary and every tensor; FormatError names the offset.

    Plain GGML was also written by ggml's example programs for other models, whose hparams
    differ; when such a file does not walk as llama, it is reported without metadata.
    """
    cursor = Cursor(read_at, size)
    magic = cursor.take(4, "magic")
    version = 0 if magic == GGML else cursor.ints("I", "version")[0]
    if magic not in (GGML, GGMF, GGJT) or (magic != GGML and version not in _VERSIONS[magic]):
        raise FormatError(FORMAT, 0, f"no legacy ggml magic and version: {magic!r} {version}")
    hparams = dict(zip(_HPARAMS, cursor.ints("7i", "hparams"), strict=True))
    try:
        _skip_vocab(cursor, hparams["n_vocab"], scored=magic != GGML)
        tensors = _walk_tensors(cursor, magic, version)
    except FormatError:
        if magic == GGML:
            return ModelInfo(format=FORMAT, header_bytes=4)
        raise
    return ModelInfo(
        format=FORMAT,
        architecture="llama",
        parameters=tensors.parameters,
        quantization=_quantization(hparams["ftype"], tensors, version),
        tensor_count=tensors.count,
        header_bytes=cursor.pos,
    )


def _skip_vocab(cursor: Cursor, n_vocab: int, *, scored: bool) -> None:
    if not 0 < n_vocab <= MAX_VOCAB:
        raise FormatError(FORMAT, cursor.pos - 28, f"n_vocab {n_vocab} is outside 1..{MAX_VOCAB}")
    for _ in range(n_vocab):
        at = cursor.pos
        (length,) = cursor.ints("I", "token length")
        if length > MAX_TOKEN:
            raise FormatError(FORMAT, at, f"token claims {length} bytes (cap {MAX_TOKEN})")
        cursor.skip(length + (4 if scored else 0), "token")


def _walk_tensors(cursor: Cursor, magic: bytes, version: int) -> _Tensors:
    tensors = _Tensors()
    while cursor.pos < cursor.size:
        if tensors.count >= MAX_TENSORS:
            raise FormatError(FORMAT, cursor.pos, f"more than {MAX_TENSORS} tensors")
        at = cursor.pos
        n_dims, name_length, ggml_type = cursor.ints("iiI", "tensor header")
        if not 0 < n_dims <= MAX_DIMS or not 0 < name_length <= MAX_NAME:
            raise FormatError(
                FORMAT, at, f"tensor with {n_dims} dims and a {name_length}-byte name"
            )
        dims = cursor.ints(f"{n_dims}i", "tensor dims")
        if any(d <= 0 for d in dims):
            raise FormatError(FORMAT, at, f"tensor dims {dims} are not all positive")
        cursor.skip(name_length, "tensor name")
        elements = math.prod(dims)
        data_bytes = _data_bytes(ggml_type, elements, version, at)
        if magic == GGJT:
            cursor.skip(-cursor.pos % ALIGNMENT, "tensor padding")
        cursor.skip(data_bytes, "tensor data")
        tensors.count += 1
        tensors.parameters += elements
        tensors.elements_by_type[ggml_type] = tensors.elements_by_type.get(ggml_type, 0) + elements
    if not tensors.count:
        raise FormatError(FORMAT, cursor.pos, "no tensors after the vocabulary")
    return tensors


def _data_bytes(ggml_type: int, elements: int, version: int, at: int) -> int:
    block, block_bytes = _block(ggml_type, version, at)
    if elements % block:
        raise FormatError(FORMAT, at, f"{elements} elements are not whole blocks of {block}")
    return elements // block * block_bytes


def _block(ggml_type: int, version: int, at: int) -> tuple[int, int]:
    if version < 3:
        known = _OLD_BLOCKS.get(ggml_type)
    else:
        entry = TENSOR_TYPES.get(ggml_type) if ggml_type <= 15 else None
        known = (entry[1], entry[2]) if entry else None
    if known is None:
        raise FormatError(FORMAT, at, f"unknown tensor type {ggml_type} for version {version}")
    return known


def _quantization(ftype: int, tensors: _Tensors, version: int) -> str | None:
    name = FILE_TYPES.get(ftype % QUANT_VERSION_FACTOR) if ftype >= 0 else None
    if name is not None or not tensors.elements_by_type:
        return name
    dominant = max(sorted(tensors.elements_by_type.items()), key=lambda kv: kv[1])[0]
    if version < 3 and dominant in _OLD_NAMES:
        return _OLD_NAMES[dominant]
    return TENSOR_TYPES[dominant][0]
