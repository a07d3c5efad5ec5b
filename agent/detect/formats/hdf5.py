"""Tell a Keras HDF5 model (.h5) apart from any other HDF5 file, and read its model config.

Keras writes `keras_version`, `backend` and `model_config` as attributes of the root group.
This module follows the superblock to the root group's object header, reads its attribute
messages (continuation blocks included), and fetches string values from the global heap.
An HDF5 file without those attributes is data, not a model: parse returns None. Attributes
in dense storage (a fractal heap, used past eight attributes) are not read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.keras_config import LAMBDA_REASON, judge_config
from agent.errors import FormatError

FORMAT = "hdf5"
SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Without a user block the superblock is at 0; with one, at the next power of two from 512.
SUPERBLOCK_OFFSETS = (0, 512, 1024, 2048)
KERAS_ATTRIBUTES = frozenset({"keras_version", "backend", "model_config"})
MAX_MESSAGES = 4096
MAX_BLOCKS = 64
MAX_BLOCK_BYTES = 1 << 20
MAX_HEAP_OBJECTS = 1 << 16
MAX_CONFIG = 16 << 20
MAX_TEXT = 256
__all__ = ["LAMBDA_REASON", "claims", "parse"]
_WINDOW = 4 << 10
_ATTRIBUTE, _CONTINUATION = 0x0C, 0x10
_FIXED_STRING, _VARIABLE_LENGTH = 3, 9
_UNDEFINED = -1


def claims(head: bytes, size: int) -> bool:
    """True when the HDF5 signature sits where a superblock may start."""
    return _superblock_offset(head) is not None


def _superblock_offset(head: bytes) -> int | None:
    for offset in SUPERBLOCK_OFFSETS:
        if head[offset : offset + 8] == SIGNATURE:
            return offset
    return None


@dataclass
class _File:
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
        """An address field, made absolute; _UNDEFINED for the all-ones 'no address'."""
        value = self.uint(pos, self.offsets, what)
        return _UNDEFINED if value == (1 << 8 * self.offsets) - 1 else self.base + value


@dataclass
class _Attribute:
    name: str
    value: str | None


@dataclass
class _Header:
    attributes: dict[str, str | None] = field(default_factory=dict)
    messages: int = 0
    blocks: int = 0


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for an HDF5 file whose root group has no Keras attributes; FormatError when the
    superblock or root object header breaks."""
    head = read_at(0, min(4096, size))
    at = _superblock_offset(head)
    if at is None:
        raise FormatError(FORMAT, 0, "no HDF5 signature")
    f = _File(read_at, size)
    root = _superblock(f, at)
    header = _Header()
    _object_header(f, root, header)
    attributes = header.attributes
    if not ("keras_version" in attributes or "model_config" in attributes):
        return None
    return _keras_info(attributes, at)


def _superblock(f: _File, at: int) -> int:
    """Set the address widths and base; return the root group's object header address."""
    raw = f.read(at, 16, "superblock")
    version = raw[8]
    if version in (0, 1):
        f.offsets, f.lengths = raw[13], raw[14]
        fields = at + 24 + (4 if version == 1 else 0)
        root_entry = fields + 4 * f.offsets
        root_field = root_entry + f.offsets
    elif version in (2, 3):
        f.offsets, f.lengths = raw[9], raw[10]
        fields = at + 12
        root_field = fields + 3 * f.offsets
    else:
        raise FormatError(FORMAT, at + 8, f"unknown superblock version {version}")
    if f.offsets not in (2, 4, 8) or f.lengths not in (2, 4, 8):
        raise FormatError(FORMAT, at + 13, f"address sizes {f.offsets}/{f.lengths}")
    f.base = f.uint(fields, f.offsets, "base address")
    root = f.address(root_field, "root group address")
    if root == _UNDEFINED:
        raise FormatError(FORMAT, root_field, "no root group")
    return root


def _object_header(f: _File, at: int, header: _Header) -> None:
    if f.read(at, 4, "object header") == b"OHDR":
        _object_header_v2(f, at, header)
        return
    prefix = f.read(at, 16, "object header")
    if prefix[0] != 1:
        raise FormatError(FORMAT, at, f"object header version {prefix[0]}")
    size = int.from_bytes(prefix[8:12], "little")
    _messages_v1(f, at + 16, size, header)


def _block_check(f: _File, at: int, size: int, header: _Header) -> None:
    header.blocks += 1
    if header.blocks > MAX_BLOCKS or size > MAX_BLOCK_BYTES:
        raise FormatError(FORMAT, at, f"object header over {MAX_BLOCKS} blocks or {size} bytes")
    if at + size > f.size:
        raise FormatError(FORMAT, at, f"object header block of {size} bytes passes the file end")


def _messages_v1(f: _File, at: int, size: int, header: _Header) -> None:
    _block_check(f, at, size, header)
    pos, end = at, at + size
    while pos + 8 <= end:
        raw = f.read(pos, 8, "header message")
        kind, length = int.from_bytes(raw[0:2], "little"), int.from_bytes(raw[2:4], "little")
        _message(f, kind, pos + 8, length, end, header, v1=True)
        pos += 8 + length


def _object_header_v2(f: _File, at: int, header: _Header) -> None:
    raw = f.read(at, 6, "object header")
    if raw[4] != 2:
        raise FormatError(FORMAT, at + 4, f"object header version {raw[4]}")
    flags = raw[5]
    pos = at + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    width = 1 << (flags & 3)
    size = f.uint(pos, width, "object header size")
    _messages_v2(f, pos + width, size, flags, header)


def _messages_v2(f: _File, at: int, size: int, flags: int, header: _Header) -> None:
    _block_check(f, at, size, header)
    prefix = 6 if flags & 0x04 else 4
    pos, end = at, at + size
    while pos + prefix <= end:
        raw = f.read(pos, 4, "header message")
        kind, length = raw[0], int.from_bytes(raw[1:3], "little")
        _message(f, kind, pos + prefix, length, end, header, v1=False, flags=flags)
        pos += prefix + length


def _message(
    f: _File,
    kind: int,
    at: int,
    length: int,
    end: int,
    header: _Header,
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
    elif kind == _ATTRIBUTE:
        attribute = _attribute(f, at, length)
        if attribute is not None and attribute.name in KERAS_ATTRIBUTES:
            header.attributes[attribute.name] = attribute.value


def _attribute(f: _File, at: int, length: int) -> _Attribute | None:
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


def _string_value(f: _File, type_at: int, type_size: int, data_at: int, end: int) -> str | None:
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


def _heap_string(f: _File, collection: int, index: int) -> str | None:
    """Object `index` of the global heap collection at `collection`; None past MAX_CONFIG."""
    if collection == _UNDEFINED:
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


def _keras_info(attributes: dict[str, str | None], at: int) -> ModelInfo:
    version = attributes.get("keras_version")
    config_text = attributes.get("model_config")
    architecture = name = None
    found = None
    if config_text:
        config = _json(config_text, at)
        architecture, name = _class_and_name(config)
        found = judge_config(config)
    return ModelInfo(
        format=FORMAT,
        name=name,
        architecture=architecture,
        producer=f"keras {version[:MAX_TEXT]}" if version else "keras",
        unsafe=found.unsafe if found else None,
        unsafe_reasons=found.reasons if found else (),
        risk=found.risk if found else None,
    )


def _json(text: str, at: int) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatError(FORMAT, at, f"model_config is not JSON: {e}") from None


def _class_and_name(config: object) -> tuple[str | None, str | None]:
    if not isinstance(config, dict):
        return None, None
    class_name = config.get("class_name")
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    return (
        class_name[:MAX_TEXT] if isinstance(class_name, str) else None,
        name[:MAX_TEXT] if isinstance(name, str) else None,
    )
