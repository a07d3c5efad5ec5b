"""HDF5 object headers through a bounded reader: their messages (continuation blocks
included), string attributes with values from the global heap, dataspaces and links.

Shared by the Keras reader (root attributes) and the weight count (group members)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.detect.formats import ReadAt
from agent.errors import FormatError

FORMAT = "hdf5"
MAX_MESSAGES = 4096
MAX_BLOCKS = 64
MAX_BLOCK_BYTES = 1 << 20
MAX_HEAP_OBJECTS = 1 << 16
MAX_CONFIG = 16 << 20
MAX_TEXT = 256
MAX_DIMS = 32
MAX_LINKS = 4096
_WINDOW = 4 << 10
_DATASPACE, _LINK, _SYMBOL_TABLE = 0x01, 0x06, 0x11
_ATTRIBUTE, _CONTINUATION = 0x0C, 0x10
_FIXED_STRING, _VARIABLE_LENGTH = 3, 9
UNDEFINED = -1


@dataclass
class File:
    """Bounded reads, and HDF5's variable-width addresses and lengths."""

    read_at: ReadAt
    size: int
    offsets: int = 8
    lengths: int = 8
    base: int = 0
    buf: bytes = b""
    buf_at: int = -1

    def read(self, pos: int, n: int, what: str) -> bytes:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise FormatError(FORMAT, max(pos, 0), f"{what} lies outside the file")
        start = pos - self.buf_at
        if self.buf_at >= 0 and start >= 0 and start + n <= len(self.buf):
            return self.buf[start : start + n]
        if n > _WINDOW:
            data = self.read_at(pos, n)
        else:
            self.buf, self.buf_at = self.read_at(pos, min(_WINDOW, self.size - pos)), pos
            data = self.buf[:n]
        if len(data) < n:
            raise FormatError(FORMAT, pos, "file shorter than its size")
        return data

    def uint(self, pos: int, width: int, what: str) -> int:
        return int.from_bytes(self.read(pos, width, what), "little")

    def address(self, pos: int, what: str) -> int:
        """An address field, made absolute; UNDEFINED for the all-ones 'no address'."""
        value = self.uint(pos, self.offsets, what)
        return UNDEFINED if value == (1 << 8 * self.offsets) - 1 else self.base + value


@dataclass
class _Attribute:
    name: str
    value: str | None


@dataclass
class Header:
    """What one object header holds that the readers use."""

    wanted: frozenset[str] = frozenset()  # attribute names whose values are kept
    attributes: dict[str, str | None] = field(default_factory=dict)
    messages: int = 0
    blocks: int = 0
    dims: tuple[int, ...] | None = None  # a dataset's shape
    symbol_table: tuple[int, int] | None = None  # an old-style group: B-tree, local heap
    links: dict[str, int] = field(default_factory=dict)  # a new-style group's hard links


def object_header(f: File, at: int, header: Header) -> None:
    if f.read(at, 4, "object header") == b"OHDR":
        _object_header_v2(f, at, header)
        return
    prefix = f.read(at, 16, "object header")
    if prefix[0] != 1:
        raise FormatError(FORMAT, at, f"object header version {prefix[0]}")
    size = int.from_bytes(prefix[8:12], "little")
    _messages_v1(f, at + 16, size, header)


def _block_check(f: File, at: int, size: int, header: Header) -> None:
    header.blocks += 1
    if header.blocks > MAX_BLOCKS or size > MAX_BLOCK_BYTES:
        raise FormatError(FORMAT, at, f"object header over {MAX_BLOCKS} blocks or {size} bytes")
    if at + size > f.size:
        raise FormatError(FORMAT, at, f"object header block of {size} bytes passes the file end")


def _messages_v1(f: File, at: int, size: int, header: Header) -> None:
    _block_check(f, at, size, header)
    pos, end = at, at + size
    while pos + 8 <= end:
        raw = f.read(pos, 8, "header message")
        kind, length = int.from_bytes(raw[0:2], "little"), int.from_bytes(raw[2:4], "little")
        _message(f, kind, pos + 8, length, end, header, v1=True)
        pos += 8 + length


def _object_header_v2(f: File, at: int, header: Header) -> None:
    raw = f.read(at, 6, "object header")
    if raw[4] != 2:
        raise FormatError(FORMAT, at + 4, f"object header version {raw[4]}")
    flags = raw[5]
    pos = at + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    width = 1 << (flags & 3)
    size = f.uint(pos, width, "object header size")
    _messages_v2(f, pos + width, size, flags, header)


def _messages_v2(f: File, at: int, size: int, flags: int, header: Header) -> None:
    _block_check(f, at, size, header)
    prefix = 6 if flags & 0x04 else 4
    pos, end = at, at + size
    while pos + prefix <= end:
        raw = f.read(pos, 4, "header message")
        kind, length = raw[0], int.from_bytes(raw[1:3], "little")
        _message(f, kind, pos + prefix, length, end, header, v1=False, flags=flags)
        pos += prefix + length


def _message(
    f: File,
    kind: int,
    at: int,
    length: int,
    end: int,
    header: Header,
    *,
    v1: bool,
    flags: int = 0,
) -> None:
    header.messages += 1
    if header.messages > MAX_MESSAGES:
        raise FormatError(FORMAT, at, f"more than {MAX_MESSAGES} header messages")
    if at + length > end:
        raise FormatError(FORMAT, at, f"message of {length} bytes passes its header block")
    if kind == _CONTINUATION:
        target = f.address(at, "continuation address")
        size = f.uint(at + f.offsets, f.lengths, "continuation length")
        if v1:
            _messages_v1(f, target, size, header)
        elif f.read(target, 4, "continuation block") != b"OCHK":
            raise FormatError(FORMAT, target, "continuation block without OCHK signature")
        else:
            _messages_v2(f, target + 4, size - 8, flags, header)
    elif kind == _ATTRIBUTE and header.wanted:
        attribute = _attribute(f, at, length)
        if attribute is not None and attribute.name in header.wanted:
            header.attributes[attribute.name] = attribute.value
    elif kind == _DATASPACE:
        header.dims = _dataspace(f, at)
    elif kind == _SYMBOL_TABLE:
        header.symbol_table = (f.address(at, "B-tree address"), f.address(at + f.offsets, "heap"))
    elif kind == _LINK and len(header.links) < MAX_LINKS:
        link = _link(f, at, length)
        if link is not None:
            header.links[link[0]] = link[1]


def _attribute(f: File, at: int, length: int) -> _Attribute | None:
    """An attribute's name and, for a string, its value (None for a shared datatype)."""
    raw = f.read(at, min(length, 8), "attribute")
    if len(raw) < 8 or raw[0] not in (1, 2, 3):
        raise FormatError(FORMAT, at, "attribute message without a known version")
    version, flags = raw[0], raw[1]
    name_size, type_size, space_size = (int.from_bytes(raw[i : i + 2], "little") for i in (2, 4, 6))
    align = 8 if version == 1 else 1  # version 1 pads each part to 8 bytes
    name_at = at + 8 + (1 if version == 3 else 0)
    type_at = name_at + _padded(name_size, align)
    data_at = type_at + _padded(type_size, align) + _padded(space_size, align)
    if data_at > at + length:
        raise FormatError(FORMAT, at, "attribute parts pass the end of the message")
    if name_size > MAX_TEXT:
        return None  # longer than any name looked for
    name = f.read(name_at, name_size, "attribute name").rstrip(b"\0").decode("utf-8", "replace")
    if version > 1 and flags & 1:
        return _Attribute(name, None)
    return _Attribute(name, _string_value(f, type_at, type_size, data_at, at + length))


def _padded(n: int, align: int) -> int:
    return n + -n % align


def _string_value(f: File, type_at: int, type_size: int, data_at: int, end: int) -> str | None:
    if type_size < 8:
        return None
    datatype = f.read(type_at, 8, "attribute datatype")
    kind, size = datatype[0] & 0x0F, int.from_bytes(datatype[4:8], "little")
    if kind == _FIXED_STRING:
        if data_at + size > end:
            return None  # an empty dataspace stores no value
        raw = f.read(data_at, min(size, MAX_CONFIG), "attribute value")
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    if kind == _VARIABLE_LENGTH and datatype[1] & 0x0F == 1:
        if data_at + 8 + f.offsets > end:
            return None
        collection = f.address(data_at + 4, "global heap address")
        index = f.uint(data_at + 4 + f.offsets, 4, "global heap index")
        return _heap_string(f, collection, index)
    return None


def _heap_string(f: File, collection: int, index: int) -> str | None:
    """Object `index` of the global heap collection at `collection`; None past MAX_CONFIG."""
    if collection == UNDEFINED:
        return None
    if f.read(collection, 4, "global heap") != b"GCOL":
        raise FormatError(FORMAT, collection, "global heap collection without GCOL signature")
    end = collection + f.uint(collection + 8, f.lengths, "global heap size")
    pos = collection + 8 + f.lengths
    for _ in range(MAX_HEAP_OBJECTS):
        if pos + 8 + f.lengths > end:
            break
        number = f.uint(pos, 2, "heap object index")
        size = f.uint(pos + 8, f.lengths, "heap object size")
        data = pos + 8 + f.lengths
        if number == 0 or data + size > end:
            break
        if number == index:
            if size > MAX_CONFIG:
                return None
            return f.read(data, size, "heap object").decode("utf-8", "replace")
        pos = data + size + -size % 8
    raise FormatError(FORMAT, collection, f"global heap has no object {index}")


def _dataspace(f: File, at: int) -> tuple[int, ...]:
    """The current dimensions of a dataspace message (versions 1 and 2)."""
    raw = f.read(at, 8, "dataspace")
    version, rank = raw[0], raw[1]
    if version not in (1, 2) or rank > MAX_DIMS:
        raise FormatError(FORMAT, at, f"dataspace version {version} of rank {rank}")
    first = at + (8 if version == 1 else 4)
    return tuple(f.uint(first + i * f.lengths, f.lengths, "dimension") for i in range(rank))


def _link(f: File, at: int, length: int) -> tuple[str, int] | None:
    """(name, object header address) of a hard link message; None for soft/external ones."""
    raw = f.read(at, 2, "link")
    if raw[0] != 1:
        raise FormatError(FORMAT, at, f"link message version {raw[0]}")
    flags, pos = raw[1], at + 2
    kind = 0
    if flags & 0x08:
        kind = f.uint(pos, 1, "link type")
        pos += 1
    pos += (8 if flags & 0x04 else 0) + (1 if flags & 0x10 else 0)
    width = 1 << (flags & 3)
    n = f.uint(pos, width, "link name length")
    if pos + width + n > at + length:
        raise FormatError(FORMAT, at, "link name passes the end of its message")
    name = f.read(pos + width, min(n, MAX_TEXT), "link name").decode("utf-8", "replace")
    if kind != 0:
        return None
    return name, f.address(pos + width + n, "link target")
