"""Read a safetensors header: an 8-byte little-endian length, then that many bytes of JSON.

Each tensor entry is checked against the file (known dtype, shape, offsets inside the data), and
the tensors must tile the data region exactly, as the safetensors library requires.
"""

from __future__ import annotations

import json
import math
import struct

from agent.detect import architectures, quantized
from agent.detect.formats import ModelInfo, ReadAt
from agent.errors import FormatError

FORMAT = "safetensors"
MAX_HEADER = 100 << 20
METADATA_KEY = "__metadata__"
MAX_TEXT = 256
MAX_DIMS = 32
MAX_DIM = (1 << 63) - 1

# dtype -> bits per element, as the safetensors specification lists them.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8,
    "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
    "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}  # fmt: skip

# __metadata__ keys that writers use to say what the model is.
_ARCHITECTURE_KEYS = ("architecture", "modelspec.architecture", "model_type", "arch")


def claims(head: bytes, size: int) -> bool:
    """True when the head is a sane header length followed by the start of a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n: int = struct.unpack_from("<Q", head)[0]
    return n <= MAX_HEADER and 8 + n <= size


def parse(read_at: ReadAt, size: int) -> ModelInfo:
    """Read and check the JSON header; FormatError names the byte offset and the broken rule."""
    n: int = struct.unpack("<Q", _exact(read_at, 0, 8))[0]
    if n > MAX_HEADER or 8 + n > size:
        raise FormatError(FORMAT, 0, f"header length {n} does not fit a {size}-byte file")
    header = _decode(_exact(read_at, 8, n))
    data_size = size - 8 - n
    plain = 0
    kept: list[quantized.Tensor] = []
    spans: list[tuple[int, int, str]] = []
    elements_by_dtype: dict[str, int] = {}
    architecture: str | None = None
    for name, entry in header.items():
        if name == METADATA_KEY:
            architecture = _architecture(entry)
            continue
        dtype, shape, span = _check_tensor(name, entry, data_size)
        spans.append((*span, name))
        elements = math.prod(shape)
        elements_by_dtype[dtype] = elements_by_dtype.get(dtype, 0) + elements
        if quantized.may_be_packed(name, dtype):
            kept.append(quantized.Tensor(name, dtype, tuple(shape), DTYPE_BITS[dtype]))
        else:
            plain += elements
    _check_tiling(spans, data_size)
    packed = quantized.Packed(plain, tuple(kept)) if kept else None
    counted = quantized.count(packed, None) if packed else quantized.Count(plain, True)
    family, cls = architectures.split(architecture)
    return ModelInfo(
        format=FORMAT,
        architecture=family,
        architecture_class=cls,
        parameters=counted.parameters,
        parameters_estimated=counted.recognised,
        quantization=_dominant(elements_by_dtype),
        tensor_count=len(header) - (METADATA_KEY in header),
        header_bytes=8 + n,
        packed=packed,
    )


def _check_tiling(spans: list[tuple[int, int, str]], data_size: int) -> None:
    """Tensors follow each other without gaps or overlaps and end where the data ends: the
    library refuses anything else, so overlapping entries cannot inflate the count."""
    expected = 0
    for begin, end, name in sorted(spans):
        if begin != expected:
            raise _bad(name, f"data starts at {begin}, not where the previous tensor ends")
        expected = end
    if expected != data_size:
        raise FormatError(FORMAT, 8, f"tensors cover {expected} of the {data_size} data bytes")


def _exact(read_at: ReadAt, offset: int, length: int) -> bytes:
    data = read_at(offset, length)
    if len(data) != length:
        raise FormatError(FORMAT, offset, f"file ends before {length} bytes at {offset}")
    return data


def _decode(raw: bytes) -> dict[str, object]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FormatError(FORMAT, 8 + e.start, "header is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise FormatError(FORMAT, 8 + e.pos, f"header is not JSON: {e.msg}") from None
    except (ValueError, RecursionError) as e:
        # Python's own limits: integers too long to convert, nesting too deep.
        raise FormatError(FORMAT, 8, f"header JSON is unreadable: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(FORMAT, 8, "header is not a JSON object")
    return header


def _check_tensor(
    name: str, entry: object, data_size: int
) -> tuple[str, list[int], tuple[int, int]]:
    """Return (dtype, shape, data span) of one tensor entry, or raise naming the tensor."""
    if not isinstance(entry, dict):
        raise _bad(name, "entry is not an object")
    dtype = entry.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _bad(name, f"unknown dtype {dtype!r}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise _bad(name, f"shape is not a list of at most {MAX_DIMS} dims")
    if not all(_natural(d) and d <= MAX_DIM for d in shape):
        raise _bad(name, "shape is not a list of non-negative 64-bit integers")
    offsets = entry.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_natural, offsets))):
        raise _bad(name, "data_offsets is not two non-negative integers")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise _bad(name, f"data_offsets [{begin}, {end}] outside the {data_size} data bytes")
    elements = math.prod(shape)
    if (end - begin) * 8 != elements * DTYPE_BITS[dtype]:
        raise _bad(name, f"{end - begin} bytes do not hold {elements} {dtype} elements")
    return dtype, shape, (begin, end)


def _natural(value: object) -> bool:
    return type(value) is int and value >= 0


def _bad(name: str, reason: str) -> FormatError:
    return FormatError(FORMAT, 8, f"tensor {name[:MAX_TEXT]!r}: {reason}")


def _architecture(metadata: object) -> str | None:
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise FormatError(FORMAT, 8, f"{METADATA_KEY} is not a string-to-string object")
    for key in _ARCHITECTURE_KEYS:
        value = metadata.get(key)
        if value:
            return str(value)[:MAX_TEXT]
    return None


def _dominant(elements_by_dtype: dict[str, int]) -> str | None:
    if not elements_by_dtype:
        return None
    return max(sorted(elements_by_dtype.items()), key=lambda kv: kv[1])[0]
