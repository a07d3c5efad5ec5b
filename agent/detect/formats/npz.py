"""Read a NumPy .npz archive: a zip of .npy members, each read only as far as its header.

Object arrays are pickles inside the member: they are walked and judged by what they import.
"""

from __future__ import annotations

import ast
import math
import struct
from dataclasses import dataclass

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.unsafe import NONE, Judgement, judge_pickle, merge
from agent.detect.formats.ziparchive import (
    Archive,
    Member,
    archive_kind,
    first_name,
    member_reader,
    read_archive,
    read_member,
)
from agent.errors import FormatError

FORMAT = "numpy"
NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 16  # numpy itself refuses headers over 10,000 bytes by default
MAX_OBJECT_PICKLE = 16 << 20  # a deflated object array's pickle is inflated up to this
MAX_DIMS = 64
MAX_TEXT = 256

_KINDS = {"f": "F", "i": "I", "u": "U", "c": "C"}


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header says: the dtype descr, the shape, and where the data starts."""

    descr: object
    shape: tuple[int, ...]
    data_offset: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def is_object(self) -> bool:
        return _has_object(self.descr, 0)


def _has_object(descr: object, depth: int) -> bool:
    """True when a dtype descr ('|O', or a record list holding one) stores Python objects."""
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list | tuple) and depth < MAX_DIMS:
        fields = descr[1:2] if isinstance(descr, tuple) else descr
        return any(_has_object(f, depth + 1) for f in fields)
    return False


def dtype_name(descr: str) -> str | None:
    """'<f4' -> 'F32', '|b1' -> 'BOOL', ...; None for strings, objects, dates and records."""
    text = descr.lstrip("<>|=")
    kind, digits = text[:1], text[1:]
    if not digits.isdigit() or len(digits) > 3:
        return None
    if kind == "b":
        return "BOOL"
    prefix = _KINDS.get(kind)
    return f"{prefix}{int(digits) * 8}" if prefix else None


def claims(head: bytes, size: int) -> bool:
    """A zip whose first member is a .npy file."""
    name = first_name(head)
    return name is not None and name.endswith(".npy")


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None when the zip holds anything but .npy members; FormatError for a broken header."""
    archive = read_archive(read_at, size, FORMAT)
    if archive is None or archive_kind(archive, read_at(0, min(size, 64))) != "npz":
        return None
    elements: dict[str, int] = {}
    found: list[Judgement] = []
    for member in archive.members:
        head = read_member(read_at, archive, member, limit=MAX_NPY_HEADER + 12, fmt=FORMAT)
        header = parse_npy_header(head, member.name)
        if header.is_object:
            found.append(_object_judgement(read_at, archive, member, header))
            continue
        name = dtype_name(header.descr) if isinstance(header.descr, str) else None
        key = name or "OTHER"
        elements[key] = elements.get(key, 0) + header.elements
    known = {k: v for k, v in elements.items() if k != "OTHER"}
    judgement = merge(*found) if found else Judgement(NONE)
    return ModelInfo(
        format=FORMAT,
        parameters=sum(elements.values()) if elements else None,
        quantization=max(sorted(known.items()), key=lambda kv: kv[1])[0] if known else None,
        tensor_count=len(archive.members),
        header_bytes=size - archive.directory_offset,
        producer="numpy",
        unsafe=judgement.unsafe,
        unsafe_reasons=judgement.reasons,
        risk=judgement.risk,
    )


def parse_npy_header(data: bytes, where: str = "") -> NpyHeader:
    """Read a .npy header (versions 1-3) from the first bytes of the file or member."""
    if data[:6] != NPY_MAGIC or len(data) < 10:
        raise FormatError(FORMAT, 0, f"{where[:MAX_TEXT]!r} has no .npy magic")
    major = data[6]
    if major == 1:
        n, start = struct.unpack_from("<H", data, 8)[0], 10
    elif major in (2, 3) and len(data) >= 12:
        n, start = struct.unpack_from("<I", data, 8)[0], 12
    else:
        raise FormatError(FORMAT, 6, f"{where[:MAX_TEXT]!r} has .npy version {major}")
    if n > MAX_NPY_HEADER or start + n > len(data):
        raise FormatError(FORMAT, 8, f"{where[:MAX_TEXT]!r} header of {n} bytes is cut or huge")
    fields = _literal(data[start : start + n], where)
    descr, shape = fields.get("descr"), fields.get("shape")
    if not _valid_shape(shape) or not isinstance(descr, str | list):
        raise FormatError(FORMAT, start, f"{where[:MAX_TEXT]!r} header lacks a shape or descr")
    assert isinstance(shape, tuple)
    return NpyHeader(descr, shape, start + n)


def _literal(raw: bytes, where: str) -> dict[object, object]:
    # numpy reads this header with ast.literal_eval too; nesting and size are bounded above.
    try:
        value = ast.literal_eval(raw.decode("latin-1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise FormatError(FORMAT, 10, f"{where[:MAX_TEXT]!r} header is no Python literal") from None
    if not isinstance(value, dict):
        raise FormatError(FORMAT, 10, f"{where[:MAX_TEXT]!r} header is not a dict")
    return value


def _valid_shape(shape: object) -> bool:
    return (
        isinstance(shape, tuple)
        and len(shape) <= MAX_DIMS
        and all(type(d) is int and 0 <= d < 1 << 63 for d in shape)
    )


def _object_judgement(
    read_at: ReadAt, archive: Archive, member: Member, header: NpyHeader
) -> Judgement:
    """An object array is a pickle after the header: loading it needs allow_pickle=True."""
    reader, size = member_reader(read_at, archive, member, limit=MAX_OBJECT_PICKLE, fmt=FORMAT)
    scan = ps.scan(reader, size, header.data_offset, fmt=FORMAT, capped=size < member.file_size)
    found = judge_pickle(scan)
    return Judgement(
        found.risk, (f"numpy object array in {member.name[:MAX_TEXT]!r}", *found.reasons)
    )
