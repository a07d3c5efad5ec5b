"""Read a GGUF header (llama.cpp's model format, versions 1-3, either byte order).

Only the key/value metadata and the tensor infos are read; large arrays are skipped, and
every length the file claims is capped before anything is read for it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.unsafe import DANGEROUS, NONE, SUSPICIOUS, worst
from agent.errors import FormatError

FORMAT = "gguf"
MAGIC = b"GGUF"
MAX_STRING = 1 << 20
MAX_ARRAY = 16 << 20
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_DIMS = 8
MAX_HEADER = 64 << 20
MAX_NESTING = 3
MAX_TEXT = 256
DEFAULT_ALIGNMENT = 32
_CHUNK = 64 << 10
_SUPPORTED = (1, 2, 3)

# GGUF metadata value types -> struct codes; 8 is a string and 9 an array.
_SCALARS = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9
CHAT_TEMPLATE = "tokenizer.chat_template"
TEMPLATE_REASON = "chat template reaches for Python internals"
MAX_HAZARDS = 8
_ODD = ("{%", "self._")  # hazards that are odd in a chat template, not an escape by themselves

# What Jinja2 sandbox escapes reach for: dunder attributes (__class__, __globals__, __mro__,
# __subclasses__ ...), the attr filter, imports, and os/subprocess calls. A chat template
# only formats messages and needs none of them.
_HAZARDS = re.compile(
    r"__[A-Za-z]\w*?__|\|\s*attr\b|\{%-?\s*(?:import|from)\b|(?<![\w.])os\.\w+|popen"
    r"|\bsubprocess\b|\b(?:eval|exec|compile)\s*\(|\bself\._\w+"
)

# ggml tensor types: id -> (name, elements per block, bytes per block), as in ggml.h.
TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}  # fmt: skip

# general.file_type (llama_ftype) -> the short name people search for.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 33: "Q4_0_4_4", 34: "Q4_0_4_8",
    35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip
_FILE_TYPE_GUESSED = 1024

# Metadata kept as values; everything else is stepped over.
_WANTED = frozenset(
    [
        "general.name",
        "general.architecture",
        "general.license",
        "general.file_type",
        "general.alignment",
    ]
)


def claims(head: bytes) -> bool:
    """True when the head is GGUF magic followed by a plausible version in either byte order.

    A text that merely starts with "GGUF" has letters where the version goes, so it is not
    treated as a broken model file.
    """
    if len(head) < 8 or head[:4] != MAGIC:
        return False
    return min(_version_pair(head)) < 1 << 16


def parse(read_at: ReadAt, size: int) -> ModelInfo:
    """Read a GGUF header; FormatError names the byte offset and the broken rule."""
    head = read_at(0, 8)
    order = _byte_order(head)
    r = _Reader(read_at, size, order)
    r.skip(4, "magic")
    version = r.u32("version")
    r.wide = version >= 2
    tensor_count = _capped_count(r, MAX_TENSORS, "tensor count")
    kv_count = _capped_count(r, MAX_KV, "metadata count")
    meta = _Meta()
    for _ in range(kv_count):
        _read_kv(r, meta)
    tensors = _Tensors()
    for _ in range(tensor_count):
        _read_tensor_info(r, tensors)
    header_end = r.pos
    _check_data_fits(r, meta, tensors, header_end)
    return _model_info(meta, tensors, tensor_count, header_end)


def _version_pair(head: bytes) -> tuple[int, int]:
    little: int = struct.unpack_from("<I", head, 4)[0]
    big: int = struct.unpack_from(">I", head, 4)[0]
    return little, big


def _byte_order(head: bytes) -> str:
    if len(head) < 8 or head[:4] != MAGIC:
        raise FormatError(FORMAT, 0, "no GGUF magic")
    little, big = _version_pair(head)
    if little in _SUPPORTED:
        return "<"
    if big in _SUPPORTED:
        return ">"
    raise FormatError(FORMAT, 4, f"unsupported version {min(little, big)}")


@dataclass
class _Reader:
    """A cursor over ReadAt that reads in bounded chunks and refuses claims past the file."""

    read_at: ReadAt
    size: int
    order: str
    wide: bool = True
    pos: int = 0
    buf: bytes = b""
    buf_at: int = 0

    def _check(self, n: int, what: str) -> None:
        end = self.pos + n
        if end > self.size:
            reason = f"{what} needs {n} bytes but the file ends at {self.size}"
            raise FormatError(FORMAT, self.pos, reason)
        if end > MAX_HEADER:
            raise FormatError(FORMAT, self.pos, f"{what} takes the header past {MAX_HEADER} bytes")

    def take(self, n: int, what: str) -> bytes:
        self._check(n, what)
        start = self.pos - self.buf_at
        if start < 0 or start + n > len(self.buf):
            want = min(max(n, _CHUNK), self.size - self.pos, MAX_HEADER - self.pos)
            self.buf, self.buf_at, start = self.read_at(self.pos, want), self.pos, 0
            if len(self.buf) < n:
                raise FormatError(FORMAT, self.pos, f"{what}: file shorter than its size")
        self.pos += n
        return self.buf[start : start + n]

    def skip(self, n: int, what: str) -> None:
        self._check(n, what)
        self.pos += n

    def unpack(self, code: str, what: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(
            self.order + code, self.take(struct.calcsize(code), what)
        )[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("I", what))

    def count(self, what: str) -> int:
        """Counts and lengths are 32-bit in version 1 and 64-bit from version 2."""
        return int(self.unpack("Q" if self.wide else "I", what))

    def string_length(self, what: str) -> int:
        at = self.pos
        n = self.count(what)
        if n > MAX_STRING:
            raise FormatError(FORMAT, at, f"{what} claims {n} bytes (cap {MAX_STRING})")
        return n

    def skip_strings(self, n: int, what: str) -> None:
        """Step over n strings without keeping them.

        Vocabularies hold 32k-256k strings, so the walk over lengths that sit in the buffer is
        a tight loop of locals; a string that crosses the buffer's end takes the checked path,
        which refills the buffer.
        """
        code = struct.Struct(self.order + ("Q" if self.wide else "I"))
        unpack, width = code.unpack_from, code.size
        while n > 0:
            buf, base = self.buf, self.buf_at
            at, end = self.pos - base, len(self.buf)
            while n > 0 and at >= 0 and at + width <= end:
                length: int = unpack(buf, at)[0]
                if length > MAX_STRING or at + width + length > end:
                    break
                at += width + length
                n -= 1
            self.pos = base + at
            if n > 0:
                self._skip_one_string(what)
                n -= 1

    def _skip_one_string(self, what: str) -> None:
        at = self.pos
        length = self.count(what)
        if length > MAX_STRING:
            raise FormatError(FORMAT, at, f"{what} claims {length} bytes (cap {MAX_STRING})")
        self.skip(length, what)

    def string(self, what: str) -> str:
        raw = self.take(self.string_length(what), what)
        return raw.decode("utf-8", errors="replace")


@dataclass
class _Meta:
    values: dict[str, int | float | bool | str] = field(default_factory=dict)
    context_lengths: dict[str, int] = field(default_factory=dict)
    chat_template_sha256: str | None = None
    templates_checked: bool = False
    template_reasons: list[str] = field(default_factory=list)
    template_risk: str | None = None


@dataclass
class _Tensors:
    parameters: int = 0
    elements_by_type: dict[int, int] = field(default_factory=dict)
    data_end: int = 0
    data_end_at: int = 0


def _capped_count(r: _Reader, cap: int, what: str) -> int:
    at = r.pos
    n = r.count(what)
    if n > cap:
        raise FormatError(FORMAT, at, f"{what} {n} is over the cap of {cap}")
    return n


def _read_kv(r: _Reader, meta: _Meta) -> None:
    key = r.string("metadata key")
    vtype = r.u32(f"type of {key!r}")
    if key.startswith(CHAT_TEMPLATE) and vtype == _STRING:
        _read_template(r, meta, key)
        return
    wanted = key in _WANTED or key.endswith(".context_length")
    if not wanted:
        _skip_value(r, vtype, key, depth=0)
    elif vtype == _STRING:
        meta.values[key] = r.string(f"value of {key!r}")[:MAX_TEXT]
    elif vtype in _SCALARS:
        value = r.unpack(_SCALARS[vtype], f"value of {key!r}")
        if key.endswith(".context_length") and type(value) is int:
            if len(meta.context_lengths) < 16:
                meta.context_lengths[key] = value
        else:
            meta.values[key] = value
    else:
        _skip_value(r, vtype, key, depth=0)


def _read_template(r: _Reader, meta: _Meta, key: str) -> None:
    """Hash the default chat template and look into every template for sandbox escapes."""
    raw = r.take(r.string_length(f"value of {key!r}"), f"value of {key!r}")
    meta.templates_checked = True
    if key == CHAT_TEMPLATE:
        meta.chat_template_sha256 = hashlib.sha256(raw).hexdigest()
    found = template_hazards(raw.decode("utf-8", errors="replace"))
    meta.template_risk = worst(meta.template_risk, template_risk(found))
    if found and len(meta.template_reasons) < MAX_HAZARDS:
        where = "" if key == CHAT_TEMPLATE else f" (in {key[:MAX_TEXT]})"
        meta.template_reasons.append(f"{TEMPLATE_REASON}: {', '.join(found)}{where}")


def template_risk(hazards: tuple[str, ...]) -> str:
    """dangerous when a hazard is a known sandbox escape (dunder attributes, |attr with a
    computed name, os, popen, subprocess, eval); suspicious for odd but not escaping
    constructs (template imports, private attributes); none without hazards."""
    if any(not h.startswith(_ODD) for h in hazards):
        return DANGEROUS
    return SUSPICIOUS if hazards else NONE


def template_hazards(template: str) -> tuple[str, ...]:
    """What a Jinja2 chat template reaches for beyond formatting, in order of first use."""
    found: dict[str, None] = {}
    for match in _HAZARDS.finditer(template):
        found.setdefault(" ".join(match.group().split())[:64], None)
        if len(found) >= MAX_HAZARDS:
            break
    return tuple(found)


def _skip_value(r: _Reader, vtype: int, key: str, depth: int) -> None:
    if vtype in _SCALARS:
        r.skip(struct.calcsize(_SCALARS[vtype]), f"value of {key!r}")
    elif vtype == _STRING:
        r.skip(r.string_length(f"string in {key!r}"), f"string in {key!r}")
    elif vtype == _ARRAY:
        _skip_array(r, key, depth)
    else:
        raise FormatError(FORMAT, r.pos - 4, f"unknown value type {vtype} for {key!r}")


def _skip_array(r: _Reader, key: str, depth: int) -> None:
    """Step over an array without keeping it; strings are stepped over one length at a time."""
    if depth >= MAX_NESTING:
        raise FormatError(FORMAT, r.pos, f"arrays in {key!r} nest deeper than {MAX_NESTING}")
    item_type = r.u32(f"item type of {key!r}")
    at = r.pos
    n = r.count(f"length of {key!r}")
    if n > MAX_ARRAY:
        raise FormatError(FORMAT, at, f"array {key!r} claims {n} items (cap {MAX_ARRAY})")
    if item_type in _SCALARS:
        r.skip(n * struct.calcsize(_SCALARS[item_type]), f"array {key!r}")
        return
    if item_type == _STRING:
        r.skip_strings(n, f"string in {key!r}")
    elif item_type == _ARRAY:
        for _ in range(n):
            _skip_array(r, key, depth + 1)
    else:
        raise FormatError(FORMAT, at - 4, f"unknown item type {item_type} in {key!r}")


def _read_tensor_info(r: _Reader, tensors: _Tensors) -> None:
    at = r.pos
    name = r.string("tensor name")
    n_dims = r.u32(f"dimension count of {name!r}")
    if n_dims > MAX_DIMS:
        raise FormatError(FORMAT, r.pos - 4, f"tensor {name!r} has {n_dims} dims (cap {MAX_DIMS})")
    elements = 1
    for _ in range(n_dims):
        elements *= r.count(f"dimension of {name!r}")
    ggml_type = r.u32(f"type of {name!r}")
    offset = int(r.unpack("Q", f"offset of {name!r}"))
    tensors.parameters += elements
    known = TENSOR_TYPES.get(ggml_type)
    if known is None:
        # A type newer than this table still counts towards parameters.
        return
    _, block, block_bytes = known
    if elements % block:
        reason = f"tensor {name!r} has {elements} elements, not whole blocks of {block}"
        raise FormatError(FORMAT, at, reason)
    tensors.elements_by_type[ggml_type] = tensors.elements_by_type.get(ggml_type, 0) + elements
    end = offset + elements // block * block_bytes
    if end > tensors.data_end:
        tensors.data_end, tensors.data_end_at = end, at


def _alignment(meta: _Meta) -> int:
    value = meta.values.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(value) is not int or value <= 0 or value & (value - 1):
        raise FormatError(FORMAT, 0, f"general.alignment {value!r} is not a power of two")
    return value


def _check_data_fits(r: _Reader, meta: _Meta, tensors: _Tensors, header_end: int) -> None:
    align = _alignment(meta)
    data_start = (header_end + align - 1) // align * align
    if data_start + tensors.data_end > r.size:
        reason = f"tensor data ends at {data_start + tensors.data_end}, past the file's {r.size}"
        raise FormatError(FORMAT, tensors.data_end_at, reason)


def _model_info(meta: _Meta, tensors: _Tensors, tensor_count: int, header_end: int) -> ModelInfo:
    architecture = _text(meta, "general.architecture")
    context = meta.context_lengths.get(f"{architecture}.context_length")
    return ModelInfo(
        format=FORMAT,
        name=_text(meta, "general.name"),
        architecture=architecture,
        parameters=tensors.parameters,
        # Block-quantized tensors count their elements: the weights before quantization.
        parameters_estimated=True if tensors.parameters is not None else None,
        quantization=_quantization(meta, tensors),
        context_length=context,
        license=_text(meta, "general.license"),
        tensor_count=tensor_count,
        header_bytes=header_end,
        chat_template_sha256=meta.chat_template_sha256,
        unsafe=meta.template_risk == DANGEROUS if meta.templates_checked else None,
        unsafe_reasons=tuple(meta.template_reasons),
        risk=meta.template_risk if meta.templates_checked else None,
    )


def _text(meta: _Meta, key: str) -> str | None:
    value = meta.values.get(key)
    return value if isinstance(value, str) and value else None


def _quantization(meta: _Meta, tensors: _Tensors) -> str | None:
    file_type = meta.values.get("general.file_type")
    if type(file_type) is int:
        # llama.cpp sets the GUESSED bit when it inferred the type; the name still holds.
        name = FILE_TYPES.get(file_type & ~_FILE_TYPE_GUESSED)
        if name is not None:
            return name
    if not tensors.elements_by_type:
        return None
    dominant = max(tensors.elements_by_type.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return TENSOR_TYPES[dominant][0]
