"""Read whisper.cpp's ggml files: speech models (`ggml-base.en.bin`) and its voice activity
detection models (`ggml-silero-v6.2.0.bin`), both behind the plain `ggml` magic.

Layouts as whisper.cpp's loaders read them: a speech model has eleven int32 hparams, the mel
filters and the vocabulary; a VAD model has its type as a length-prefixed string, a version
and its layer sizes. Tensor records (dims, name, type, data with no padding) follow.
"""

from __future__ import annotations

import math
import struct

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.ggml import FORMAT, GGML, MAX_NAME, MAX_TENSORS, MAX_TOKEN, Cursor
from agent.detect.formats.gguf import TENSOR_TYPES
from agent.errors import FormatError

SPEECH = "speech"
MAX_MELS = 512
MAX_FFT = 4096
MAX_VOCAB = 1 << 18
MAX_SIZE = 1 << 16  # hparams: widths, heads, layers, contexts
MAX_TYPE_NAME = 256
MAX_LAYERS = 64
MAX_DIMS = 4
# whisper.cpp's model sizes, by encoder layer count.
_SIZES = {4: "tiny", 6: "base", 12: "small", 24: "medium", 32: "large"}
_ENGLISH_VOCAB = 51864  # the .en models; multilingual ones have 51865, large-v3 51866
_V3_VOCAB = 51866
# ggml_ftype (not llama's): whisper.cpp's quantize tool writes these.
_FTYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K",
}  # fmt: skip
_QNT_VERSION_FACTOR = 1000
_SPEECH_HPARAMS = struct.Struct("<11i")
_PRINTABLE = frozenset(range(0x20, 0x7F))


def claims(head: bytes, size: int) -> bool:
    """A `ggml` magic followed by either whisper.cpp layout's opening fields."""
    return head[:4] == GGML and (_claims_speech(head) or _claims_vad(head))


def _claims_speech(head: bytes) -> bool:
    if len(head) < 4 + _SPEECH_HPARAMS.size + 8:
        return False
    hp = _SPEECH_HPARAMS.unpack_from(head, 4)
    n_mel, n_fft = struct.unpack_from("<2i", head, 4 + _SPEECH_HPARAMS.size)
    sizes_ok = all(0 < v <= MAX_SIZE for v in hp[1:9]) and 0 < hp[0] <= MAX_VOCAB
    # The decoder and encoder widths are equal, and the filters repeat the mel count.
    return (
        sizes_ok
        and hp[2] == hp[6]
        and 0 < hp[9] <= MAX_MELS
        and n_mel == hp[9]
        and (0 < n_fft <= MAX_FFT)
    )


def _claims_vad(head: bytes) -> bool:
    if len(head) < 8:
        return False
    (length,) = struct.unpack_from("<i", head, 4)
    if not 0 < length <= MAX_TYPE_NAME or len(head) < 8 + length + 24:
        return False
    if not all(b in _PRINTABLE for b in head[8 : 8 + length]):
        return False
    version_window = struct.unpack_from("<6i", head, 8 + length)
    return all(0 <= v <= MAX_SIZE for v in version_window[:3]) and all(
        0 < v <= MAX_SIZE for v in version_window[3:]
    )


def parse(read_at: ReadAt, size: int) -> ModelInfo:
    """A speech or VAD model's name, parameters and tensor count; FormatError names the offset."""
    cursor = Cursor(read_at, size)
    head = read_at(0, min(size, 4096))
    if head[:4] != GGML:
        raise FormatError(FORMAT, 0, "no ggml magic")
    cursor.take(4, "magic")
    if _claims_speech(head):
        return _speech(cursor)
    if _claims_vad(head):
        return _vad(cursor)
    raise FormatError(FORMAT, 4, "neither a whisper.cpp speech nor a VAD model header")


def _speech(cursor: Cursor) -> ModelInfo:
    hp = cursor.ints("11i", "hparams")
    n_vocab, n_audio_layer, ftype = hp[0], hp[4], hp[10]
    n_mel, n_fft = cursor.ints("2i", "mel filters")
    cursor.skip(4 * n_mel * n_fft, "mel filters")
    at = cursor.pos
    (tokens,) = cursor.ints("i", "vocabulary size")
    if not 0 <= tokens <= MAX_VOCAB:
        raise FormatError(FORMAT, at, f"vocabulary of {tokens} tokens (cap {MAX_VOCAB})")
    for _ in range(tokens):
        at = cursor.pos
        (length,) = cursor.ints("I", "token length")
        if length > MAX_TOKEN:
            raise FormatError(FORMAT, at, f"token claims {length} bytes (cap {MAX_TOKEN})")
        cursor.skip(length, "token")
    count, parameters, by_type = _walk_tensors(cursor)
    return ModelInfo(
        format=FORMAT,
        name=_speech_name(n_vocab, n_audio_layer),
        architecture="whisper",
        kind=SPEECH,
        parameters=parameters,
        quantization=_quantization(ftype % _QNT_VERSION_FACTOR, by_type),
        tensor_count=count,
        header_bytes=cursor.pos,
    )


def _speech_name(n_vocab: int, n_audio_layer: int) -> str:
    size = _SIZES.get(n_audio_layer)
    if size is None:
        return "whisper"
    if size == "large" and n_vocab == _V3_VOCAB:
        size = "large-v3"
    return f"whisper-{size}{'.en' if n_vocab == _ENGLISH_VOCAB else ''}"


def _vad(cursor: Cursor) -> ModelInfo:
    (length,) = cursor.ints("i", "model type length")
    model_type = cursor.take(length, "model type").decode("ascii")
    major, minor, patch, _window, _context = cursor.ints("5i", "version and window")
    at = cursor.pos
    (layers,) = cursor.ints("i", "encoder layers")
    if not 0 < layers <= MAX_LAYERS:
        raise FormatError(FORMAT, at, f"{layers} encoder layers (1..{MAX_LAYERS})")
    cursor.skip(4 * (3 * layers + 4), "layer sizes")
    count, parameters, by_type = _walk_tensors(cursor)
    family = model_type.split("-", 1)[0].lower() or None
    return ModelInfo(
        format=FORMAT,
        name=f"{model_type} v{major}.{minor}.{patch}",
        architecture=family,
        kind=SPEECH,
        parameters=parameters,
        quantization=_quantization(None, by_type),
        tensor_count=count,
        header_bytes=cursor.pos,
    )


def _walk_tensors(cursor: Cursor) -> tuple[int, int, dict[int, int]]:
    """(count, parameters, elements by type) of the tensor records up to the end of file."""
    count = parameters = 0
    by_type: dict[int, int] = {}
    while cursor.pos < cursor.size:
        if count >= MAX_TENSORS:
            raise FormatError(FORMAT, cursor.pos, f"more than {MAX_TENSORS} tensors")
        at = cursor.pos
        n_dims, name_length, ggml_type = cursor.ints("iiI", "tensor header")
        if not 0 <= n_dims <= MAX_DIMS or not 0 < name_length <= MAX_NAME:
            raise FormatError(FORMAT, at, f"tensor with {n_dims} dims, {name_length}-byte name")
        dims = cursor.ints(f"{n_dims}i", "tensor dims")
        if any(d <= 0 for d in dims):
            raise FormatError(FORMAT, at, f"tensor dims {dims} are not all positive")
        cursor.skip(name_length, "tensor name")
        elements = math.prod(dims)
        known = TENSOR_TYPES.get(ggml_type)
        if known is None:
            raise FormatError(FORMAT, at, f"unknown tensor type {ggml_type}")
        _, block, block_bytes = known
        if elements % block:
            raise FormatError(FORMAT, at, f"{elements} elements are not whole blocks of {block}")
        cursor.skip(elements // block * block_bytes, "tensor data")
        count += 1
        parameters += elements
        by_type[ggml_type] = by_type.get(ggml_type, 0) + elements
    if not count:
        raise FormatError(FORMAT, cursor.pos, "no tensors after the header")
    return count, parameters, by_type


def _quantization(ftype: int | None, by_type: dict[int, int]) -> str | None:
    if ftype is not None and ftype in _FTYPES:
        return _FTYPES[ftype]
    if not by_type:
        return None
    dominant = max(sorted(by_type.items()), key=lambda kv: kv[1])[0]
    return TENSOR_TYPES[dominant][0]
