"""A bounded reader of the protobuf wire format, shared by the ONNX, CoreML and SavedModel parsers.

It reads field headers and lengths through ReadAt and jumps over payloads by offset, so a
message of gigabytes costs a few reads of its small fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from agent.detect.formats import ReadAt
from agent.errors import AgentError, FormatError

VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_FIELD_NUMBER = (1 << 29) - 1
MAX_FIELDS = 1 << 20
WINDOW = 8 << 10
MAX_VARINT_BYTES = 10
_FIXED = {I64: 8, I32: 4}
_UNBOUNDED = 1 << 64


class SchemaMismatch(AgentError):
    """Well-formed protobuf that is not the message a parser looks for; parsers return None."""


class Field(NamedTuple):
    """One field: `value` is the integer of a VARINT/I32/I64 or the payload length of a LEN;
    `at` is where the value or payload starts, `end` where the next field starts."""

    number: int
    wire_type: int
    value: int
    at: int
    end: int


def scan_varint(buf: bytes, pos: int, stop: int) -> tuple[int, int] | None:
    """(value, next position) of the varint at buf[pos:stop]; None when `stop` cuts it.

    ValueError when it runs longer than ten bytes or past 64 bits.
    """
    value = shift = 0
    for i in range(pos, min(stop, pos + MAX_VARINT_BYTES)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> 64:
                raise ValueError("varint does not fit 64 bits")
            return value, i + 1
        shift += 7
    if stop - pos >= MAX_VARINT_BYTES:
        raise ValueError(f"varint is longer than {MAX_VARINT_BYTES} bytes")
    return None


def next_field(buf: bytes, pos: int, stop: int, remaining: int, shift: int = 0) -> Field | None:
    """The field whose key starts at buf[pos]; `remaining` bytes of its message are left from
    pos, `stop` is where buf ends. None when buf ends inside the field's key or fixed value.

    ValueError names what breaks the framing. The Field's positions are indexes into buf plus
    `shift` (the file offset of buf[0]).
    """
    limit = pos + remaining
    key = scan_varint(buf, pos, min(stop, limit))
    if key is None:
        _check_cut(limit, stop, "field key")
        return None
    number, wire_type = key[0] >> 3, key[0] & 7
    if not 0 < number <= MAX_FIELD_NUMBER:
        raise ValueError(f"field number {number} is out of range")
    at = key[1]
    if wire_type in (VARINT, LEN):
        what = f"field {number}" if wire_type == VARINT else f"length of field {number}"
        value = scan_varint(buf, at, min(stop, limit))
        if value is None:
            _check_cut(limit, stop, what)
            return None
        if wire_type == VARINT:
            return Field(number, wire_type, value[0], at + shift, value[1] + shift)
        if value[1] + value[0] > limit:
            raise ValueError(f"field {number} claims {value[0]} bytes, past the end of its message")
        body = value[1] + shift
        return Field(number, wire_type, value[0], body, body + value[0])
    if wire_type in _FIXED:
        width = _FIXED[wire_type]
        if at + width > limit:
            raise ValueError(f"field {number} runs past the end of its message")
        if at + width > stop:
            return None
        fixed = int.from_bytes(buf[at : at + width], "little")
        return Field(number, wire_type, fixed, at + shift, at + width + shift)
    raise ValueError(f"field {number} has unsupported wire type {wire_type}")


def _check_cut(limit: int, stop: int, what: str) -> None:
    """A varint cut by its message's end is broken; one cut by the buffer's end is not yet."""
    if stop >= limit:
        raise ValueError(f"{what} runs past the end of its message")
    return None


@dataclass
class Wire:
    """Field iteration over ReadAt through one small window; every read stays inside `size`."""

    read_at: ReadAt
    size: int
    fmt: str
    fields_left: int = MAX_FIELDS
    bytes_read: int = 0
    _buf: bytes = b""
    _buf_at: int = 0

    def _window(self, pos: int, need: int) -> tuple[bytes, int]:
        """The window and the index of `pos` in it, holding `need` bytes from pos."""
        start = pos - self._buf_at
        if start >= 0 and start + need <= len(self._buf):
            return self._buf, start
        want = min(max(need, WINDOW), self.size - pos)
        self._buf, self._buf_at = self.read_at(pos, want), pos
        self.bytes_read += len(self._buf)
        if len(self._buf) < need:
            raise FormatError(self.fmt, pos, "file shorter than its size")
        return self._buf, 0

    def fields(self, start: int, end: int) -> Iterator[Field]:
        """The fields of the message at [start, end); FormatError when its framing breaks."""
        if end > self.size:
            raise FormatError(
                self.fmt, start, f"message ends at {end}, past the file's {self.size}"
            )
        pos = start
        while pos < end:
            if self.fields_left <= 0:
                raise FormatError(self.fmt, pos, f"more than {MAX_FIELDS} fields")
            self.fields_left -= 1
            field = self._next(pos, end)
            yield field
            pos = field.end

    def _next(self, pos: int, end: int) -> Field:
        # A key and its value or length take at most 15 bytes: when the window cuts them,
        # it is refilled once from pos.
        for refill in (False, True):
            need = min(2 * MAX_VARINT_BYTES, end - pos) if refill else 1
            buf, i = self._window(pos, need)
            try:
                field = next_field(buf, i, len(buf), end - pos, shift=pos - i)
            except ValueError as e:
                raise FormatError(self.fmt, pos, str(e)) from None
            if field is not None:
                return field
        raise FormatError(self.fmt, pos, "file shorter than its size")

    def payload(self, field: Field, cap: int) -> bytes:
        """The first `cap` bytes of a LEN field's payload."""
        expect(field, LEN)
        n = min(field.value, cap)
        if n == 0:
            return b""
        buf, i = self._window(field.at, n)
        return buf[i : i + n]

    def text(self, field: Field, cap: int = 256) -> str:
        return self.payload(field, cap).decode("utf-8", errors="replace")

    def string_pair(self, entry: Field, cap: int = 256) -> tuple[str, str]:
        """A map entry or string-string message: text fields 1 and 2."""
        texts = ["", ""]
        for f in self.fields(entry.at, entry.end):
            if f.number in (1, 2):
                expect(f, LEN)
                texts[f.number - 1] = self.text(f, cap)
        return texts[0], texts[1]

    def varints(self, field: Field, cap: int) -> list[int]:
        """A repeated integer field's values: one VARINT, or a packed LEN of at most `cap`."""
        if field.wire_type == VARINT:
            return [field.value]
        expect(field, LEN)
        if field.value > cap * MAX_VARINT_BYTES:
            raise FormatError(self.fmt, field.at, f"packed field {field.number} is over its cap")
        raw = self.payload(field, field.value)
        values: list[int] = []
        pos = 0
        while pos < len(raw):
            try:
                scanned = scan_varint(raw, pos, len(raw))
            except ValueError as e:
                raise FormatError(self.fmt, field.at + pos, str(e)) from None
            if scanned is None or len(values) >= cap:
                reason = f"packed field {field.number} is cut or has over {cap} values"
                raise FormatError(self.fmt, field.at + pos, reason)
            values.append(scanned[0])
            pos = scanned[1]
        return values


def expect(field: Field, wire_type: int) -> None:
    """SchemaMismatch unless the field has the wire type the schema gives it."""
    if field.wire_type != wire_type:
        raise SchemaMismatch(
            f"field {field.number} has wire type {field.wire_type}, not {wire_type}"
        )


def check_node(wire: Wire, node: Field, schema: Mapping[int, int], op_field: int) -> None:
    """A graph node (ONNX NodeProto, TensorFlow NodeDef) has its known fields' wire types and
    names its operator in `op_field`; anything else is another message, not a graph node."""
    has_op = False
    for f in wire.fields(node.at, node.end):
        wanted = schema.get(f.number)
        if wanted is not None:
            expect(f, wanted)
        has_op |= f.number == op_field and f.value > 0
    if not has_op:
        raise SchemaMismatch(f"graph node at byte {node.at} names no operator")


def signed64(value: int) -> int:
    """An int64 varint as the signed number it encodes."""
    return value - (1 << 64) if value >> 63 else value


def head_fields(
    head: bytes, size: int, start: int = 0, end: int | None = None
) -> list[Field] | None:
    """The fields of the message at [start, end) that begin inside `head`, the file's first
    bytes; None when those bytes are no protobuf. Lets claims() test a message's shape
    without a reader. Without `end` the message is the whole file, and a payload may claim
    to run past the file's end: a cut-off model is still claimed, and parse says it is cut."""
    limit = size if end is None else end
    fields: list[Field] = []
    pos = start
    while pos < min(limit, len(head)) and len(fields) < 256:
        remaining = _UNBOUNDED if end is None else end - pos
        try:
            field = next_field(head, pos, len(head), remaining)
        except ValueError:
            return None
        if field is None:
            break
        fields.append(field)
        pos = field.end
    return fields
