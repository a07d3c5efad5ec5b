"""Read a TensorFlow Lite model: a FlatBuffer with the file identifier "TFL3".

Tables are followed offset by offset through ReadAt; constant tensors (those backed by a
non-empty buffer) give the parameter count and the dominant type. Buffer data is never read,
except the small TFLITE_METADATA buffer that carries the model's name and licence.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from agent.detect.formats import ModelInfo, ReadAt
from agent.errors import FormatError

FORMAT = "tflite"
IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
MAX_SUBGRAPHS = 1 << 10
MAX_TENSORS = 1 << 17
MAX_BUFFERS = 1 << 17
MAX_METADATA = 256
MAX_DIMS = 16
MAX_TEXT = 256
MAX_METADATA_BYTES = 1 << 20
MAX_VTABLE = 1 << 10
_WINDOW = 4 << 10

# TensorType -> the short names used for ai.model.quantization.
TENSOR_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "I32", 3: "U8", 4: "I64", 5: "STRING", 6: "BOOL", 7: "I16",
    8: "C64", 9: "I8", 10: "F64", 11: "C128", 12: "U64", 15: "U32", 16: "U16", 17: "I4",
    18: "BF16",
}  # fmt: skip
# Field indexes in schema.fbs.
_MODEL_SUBGRAPHS, _MODEL_DESCRIPTION, _MODEL_BUFFERS, _MODEL_METADATA = 2, 3, 4, 6
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER = 0, 1, 2


def claims(head: bytes, size: int) -> bool:
    """True when bytes 4..8 are "TFL3" and the root offset points inside the file."""
    if len(head) < 8 or head[4:8] != IDENTIFIER:
        return False
    root: int = struct.unpack_from("<I", head)[0]
    return 8 <= root < size


@dataclass
class _Flat:
    """FlatBuffer primitives over ReadAt; every offset is checked against the buffer's size."""

    read_at: ReadAt
    size: int
    base: int = 0  # where this FlatBuffer starts (nested buffers live inside the file)
    buf: bytes = b""
    buf_at: int = -1
    bytes_read: int = 0

    def raw(self, pos: int, n: int, what: str) -> bytes:
        if pos < 0 or pos + n > self.size:
            raise FormatError(FORMAT, self.base + pos, f"{what} lies outside the buffer")
        start = pos - self.buf_at
        if self.buf_at < 0 or start < 0 or start + n > len(self.buf):
            want = min(max(n, _WINDOW), self.size - pos)
            self.buf, self.buf_at, start = self.read_at(self.base + pos, want), pos, 0
            self.bytes_read += len(self.buf)
            if len(self.buf) < n:
                raise FormatError(FORMAT, self.base + pos, "file shorter than its size")
        return self.buf[start : start + n]

    def scalar(self, code: str, pos: int, what: str) -> int:
        value: int = struct.unpack("<" + code, self.raw(pos, struct.calcsize(code), what))[0]
        return value

    def deref(self, pos: int, what: str) -> int:
        return pos + self.scalar("I", pos, what)

    def field(self, table: int, index: int, what: str) -> int | None:
        """Where field `index` of the table at `table` is stored, or None when absent."""
        vtable = table - self.scalar("i", table, what)
        vtable_size = self.scalar("H", vtable, f"vtable of {what}")
        if vtable_size < 4 or vtable_size > MAX_VTABLE or vtable_size % 2:
            raise FormatError(FORMAT, self.base + vtable, f"{what} has a vtable of {vtable_size}")
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return None
        offset = self.scalar("H", vtable + slot, f"vtable of {what}")
        return table + offset if offset else None

    def ref(self, table: int, index: int, what: str) -> int | None:
        at = self.field(table, index, what)
        return None if at is None else self.deref(at, what)

    def vector(self, at: int, width: int, cap: int, what: str) -> tuple[int, int]:
        """(start of the elements, count) of the vector at `at`, capped and inside the buffer."""
        count = self.scalar("I", at, what)
        if count > cap or at + 4 + count * width > self.size:
            raise FormatError(FORMAT, self.base + at, f"{what} claims {count} elements")
        return at + 4, count

    def string(self, at: int, what: str) -> str:
        start, length = self.vector(at, 1, self.size, what)
        return self.raw(start, min(length, MAX_TEXT), what).decode("utf-8", errors="replace")

    def tables(self, table: int, index: int, cap: int, what: str) -> list[int]:
        """The tables of a vector-of-tables field; an absent field is an empty list."""
        at = self.ref(table, index, what)
        if at is None:
            return []
        start, count = self.vector(at, 4, cap, what)
        return [self.deref(start + 4 * i, what) for i in range(count)]


@dataclass
class _Weights:
    tensors: int = 0
    constants: int = 0
    parameters: int = 0
    elements_by_type: dict[int, int] = field(default_factory=dict)


def parse(read_at: ReadAt, size: int) -> ModelInfo:
    """Walk subgraphs and tensors; FormatError names the offset of what breaks the schema."""
    flat = _Flat(read_at, size)
    if flat.raw(4, 4, "file identifier") != IDENTIFIER:
        raise FormatError(FORMAT, 4, "no TFL3 file identifier")
    model = flat.deref(0, "root table")
    subgraphs = flat.tables(model, _MODEL_SUBGRAPHS, MAX_SUBGRAPHS, "subgraphs")
    if not subgraphs:
        raise FormatError(FORMAT, model, "model has no subgraphs")
    buffers = _buffer_vector(flat, model)
    weights = _Weights()
    for subgraph in subgraphs:
        for tensor in flat.tables(subgraph, 0, MAX_TENSORS - weights.tensors, "tensors"):
            _add_tensor(flat, tensor, buffers, weights)
    description = flat.ref(model, _MODEL_DESCRIPTION, "description")
    meta = _model_metadata(flat, model, buffers)
    return ModelInfo(
        format=FORMAT,
        name=meta.get(0),
        parameters=weights.parameters,
        quantization=_dominant(weights.elements_by_type),
        license=meta.get(5),
        producer=_text_or_none(flat, description),
        tensor_count=weights.constants,
        header_bytes=min(flat.bytes_read, size),
    )


def _buffer_vector(flat: _Flat, model: int) -> tuple[int, int]:
    at = flat.ref(model, _MODEL_BUFFERS, "buffers")
    return (0, 0) if at is None else flat.vector(at, 4, MAX_BUFFERS, "buffers")


def _buffer_data(flat: _Flat, buffers: tuple[int, int], index: int) -> tuple[int, int]:
    """(start, length) of buffer `index`'s bytes: inline data, or offset/size past 2 GiB."""
    start, count = buffers
    if index >= count:
        raise FormatError(FORMAT, start, f"tensor names buffer {index} of {count}")
    buffer = flat.deref(start + 4 * index, "buffer")
    data = flat.ref(buffer, 0, "buffer")
    if data is not None:
        return flat.vector(data, 1, flat.size, "buffer data")
    offset_at, size_at = flat.field(buffer, 1, "buffer"), flat.field(buffer, 2, "buffer")
    if offset_at is None or size_at is None:
        return 0, 0
    return flat.scalar("Q", offset_at, "buffer offset"), flat.scalar("Q", size_at, "buffer size")


def _add_tensor(flat: _Flat, tensor: int, buffers: tuple[int, int], weights: _Weights) -> None:
    weights.tensors += 1
    buffer_at = flat.field(tensor, _TENSOR_BUFFER, "tensor")
    index = flat.scalar("I", buffer_at, "tensor buffer") if buffer_at is not None else 0
    # Buffer 0 is the empty sentinel; activations point at it or at other empty buffers.
    if index == 0 or _buffer_data(flat, buffers, index)[1] == 0:
        return
    type_at = flat.field(tensor, _TENSOR_TYPE, "tensor")
    tensor_type = flat.scalar("b", type_at, "tensor type") if type_at is not None else 0
    shape_at = flat.ref(tensor, _TENSOR_SHAPE, "tensor")
    dims: tuple[int, ...] = ()
    if shape_at is not None:
        start, count = flat.vector(shape_at, 4, MAX_DIMS, "tensor shape")
        dims = struct.unpack(f"<{count}i", flat.raw(start, 4 * count, "tensor shape"))
    elements = math.prod(max(d, 0) for d in dims)
    weights.constants += 1
    weights.parameters += elements
    weights.elements_by_type[tensor_type] = weights.elements_by_type.get(tensor_type, 0) + elements


def _model_metadata(flat: _Flat, model: int, buffers: tuple[int, int]) -> dict[int, str]:
    """ModelMetadata's string fields (0 name, 5 license, ...) from the TFLITE_METADATA buffer."""
    for entry in flat.tables(model, _MODEL_METADATA, MAX_METADATA, "metadata"):
        name_at = flat.ref(entry, 0, "metadata")
        if name_at is None or flat.string(name_at, "metadata name") != "TFLITE_METADATA":
            continue
        buffer_at = flat.field(entry, 1, "metadata")
        index = flat.scalar("I", buffer_at, "metadata buffer") if buffer_at is not None else 0
        start, length = _buffer_data(flat, buffers, index)
        if not 8 <= length <= MAX_METADATA_BYTES or start + length > flat.size:
            return {}
        return _metadata_strings(_Flat(flat.read_at, length, base=flat.base + start))
    return {}


def _metadata_strings(nested: _Flat) -> dict[int, str]:
    if nested.raw(4, 4, "metadata identifier") != METADATA_IDENTIFIER:
        return {}
    table = nested.deref(0, "metadata root")
    found: dict[int, str] = {}
    for index in (0, 5):
        at = nested.ref(table, index, "model metadata")
        if at is not None:
            found[index] = nested.string(at, "model metadata")
    return {k: v for k, v in found.items() if v}


def _dominant(elements_by_type: dict[int, int]) -> str | None:
    known = {t: n for t, n in elements_by_type.items() if t in TENSOR_TYPES and n > 0}
    if not known:
        return None
    return TENSOR_TYPES[max(sorted(known.items()), key=lambda kv: kv[1])[0]]


def _text_or_none(flat: _Flat, at: int | None) -> str | None:
    return (flat.string(at, "description") or None) if at is not None else None
