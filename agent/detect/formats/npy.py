"""Read a NumPy .npy header: magic, version 1-3, and a Python dict literal describing the array.

Every .npy file is reported (format `numpy`, parameters = element count): weights are often
saved this way, and a plain data array costs one entry. An array of dtype object holds a
pickle, which runs code on load; it gets the risk of what that pickle imports.
"""

from __future__ import annotations

import ast
import math
import re
import struct

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.unsafe import NONE, Judgement, judge_pickle
from agent.errors import FormatError

FORMAT = "numpy"
MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 16
MAX_DIMS = 64
MAX_FIELD_DEPTH = 8
OBJECT_REASON = "numpy object array (pickle)"
_KEYS = frozenset({"descr", "fortran_order", "shape"})
# Version -> (width of the header length, encoding of the header).
_VERSIONS = {1: ("<H", "latin1"), 2: ("<I", "latin1"), 3: ("<I", "utf8")}
_SIMPLE_DESCR = re.compile(r"[<>|=]?([a-zA-Z])(\d{0,12})(\[\w{1,16}\])?")
_LONG_SUFFIX = re.compile(r"(?<=\d)L(?=[,)\s])")
_NAMES = {
    ("f", 2): "F16", ("f", 4): "F32", ("f", 8): "F64", ("f", 16): "F128", ("i", 1): "I8",
    ("i", 2): "I16", ("i", 4): "I32", ("i", 8): "I64", ("u", 1): "U8", ("u", 2): "U16",
    ("u", 4): "U32", ("u", 8): "U64", ("b", 1): "BOOL", ("c", 8): "C64", ("c", 16): "C128",
}  # fmt: skip


def claims(head: bytes, size: int) -> bool:
    """True when the head starts with the .npy magic and a version numpy writes."""
    return len(head) >= 10 and head[:6] == MAGIC and head[6] in _VERSIONS


def parse(read_at: ReadAt, size: int) -> ModelInfo:
    """Read the header dict; FormatError names the byte offset and the broken rule."""
    prefix = read_at(0, min(12, size))
    if len(prefix) < 10 or prefix[:6] != MAGIC or prefix[6] not in _VERSIONS:
        raise FormatError(FORMAT, 0, "no .npy magic and version")
    length_code, encoding = _VERSIONS[prefix[6]]
    start = 8 + struct.calcsize(length_code)
    if len(prefix) < start:
        raise FormatError(FORMAT, 8, "file ends inside the header length")
    length: int = struct.unpack_from(length_code, prefix, 8)[0]
    if length > MAX_HEADER or start + length > size:
        raise FormatError(FORMAT, 8, f"header length {length} does not fit (cap {MAX_HEADER})")
    raw = read_at(start, length)
    if len(raw) < length:
        raise FormatError(FORMAT, start, "file shorter than its size")
    descr, shape = _header(raw, encoding, start)
    elements = math.prod(shape)
    is_object = _has_object(descr, 0, start)
    itemsize = _itemsize(descr)
    if not is_object and itemsize is not None and start + length + elements * itemsize > size:
        reason = f"{elements} items of {itemsize} bytes do not fit the {size}-byte file"
        raise FormatError(FORMAT, start + length, reason)
    # The format can carry a pickle; this array does not.
    found = _object_judgement(read_at, size, start + length) if is_object else Judgement(NONE)
    return ModelInfo(
        format=FORMAT,
        parameters=elements,
        quantization=_quantization(descr),
        tensor_count=1,
        header_bytes=start + length,
        unsafe=found.unsafe,
        unsafe_reasons=found.reasons,
        risk=found.risk,
    )


def _object_judgement(read_at: ReadAt, size: int, at: int) -> Judgement:
    """An object array is a pickle after the header: judged by what it imports."""
    found = judge_pickle(ps.scan(read_at, size, at, fmt=FORMAT))
    return Judgement(found.risk, (OBJECT_REASON, *found.reasons))


def _header(raw: bytes, encoding: str, at: int) -> tuple[object, tuple[int, ...]]:
    """(descr, shape) of the header dict, checked the way numpy checks it."""
    try:
        header = _literal(raw.decode(encoding))
    except UnicodeDecodeError as e:
        raise FormatError(FORMAT, at + e.start, f"header is not {encoding}") from None
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise FormatError(FORMAT, at, f"header is not a Python literal: {e}") from None
    if not isinstance(header, dict) or set(header) != _KEYS:
        raise FormatError(FORMAT, at, f"header is not a dict of {sorted(_KEYS)}")
    shape = header["shape"]
    if not (isinstance(shape, tuple) and len(shape) <= MAX_DIMS):
        raise FormatError(FORMAT, at, f"shape is not a tuple of at most {MAX_DIMS} dims")
    if not all(type(d) is int and 0 <= d < 1 << 63 for d in shape):
        raise FormatError(FORMAT, at, "shape holds something other than non-negative integers")
    if not isinstance(header["fortran_order"], bool):
        raise FormatError(FORMAT, at, "fortran_order is not a bool")
    return header["descr"], shape


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except SyntaxError:
        # Python 2 wrote shapes with long integers, as in (2L,); numpy reads them still.
        return ast.literal_eval(_LONG_SUFFIX.sub("", text))


def _has_object(descr: object, depth: int, at: int) -> bool:
    """True when the dtype, or any field of a structured dtype, is object ('O')."""
    if depth > MAX_FIELD_DEPTH:
        raise FormatError(FORMAT, at, f"descr nests deeper than {MAX_FIELD_DEPTH}")
    if isinstance(descr, str):
        match = _SIMPLE_DESCR.fullmatch(descr)
        if match is None:
            raise FormatError(FORMAT, at, f"descr {descr[:64]!r} is no dtype")
        return match.group(1) == "O"
    if not isinstance(descr, list):
        raise FormatError(FORMAT, at, "descr is neither a string nor a list of fields")
    for entry in descr:
        if not (isinstance(entry, tuple) and 2 <= len(entry) <= 3):
            raise FormatError(FORMAT, at, "a structured descr field is not (name, dtype[, shape])")
        if _has_object(entry[1], depth + 1, at):
            return True
    return False


def _itemsize(descr: object) -> int | None:
    """Bytes per item of a simple dtype; None for structured and object dtypes."""
    match = _SIMPLE_DESCR.fullmatch(descr) if isinstance(descr, str) else None
    if match is None or not match.group(2):
        return None
    kind, count = match.group(1), int(match.group(2))
    return count * 4 if kind == "U" else count


def _quantization(descr: object) -> str | None:
    match = _SIMPLE_DESCR.fullmatch(descr) if isinstance(descr, str) else None
    if match is None or not match.group(2):
        return None
    return _NAMES.get((match.group(1), int(match.group(2))))
