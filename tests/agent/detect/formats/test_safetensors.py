"""safetensors headers: files from safetensors.numpy, hand-built broken headers, truncations."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p_fixtures import outcome
from safetensors.numpy import save_file

from agent.detect.formats import ModelInfo, ReadAt, identify
from agent.detect.formats import safetensors as reader
from agent.errors import FormatError

# What the conftest writes: embed 100x16 F16, two 16x16 F32, a 16-element I8 bias.
SAFETENSORS_PARAMETERS = 100 * 16 + 2 * 16 * 16 + 16


def read_bytes(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def identify_bytes(data: bytes) -> ModelInfo | None:
    return identify(read_bytes(data), len(data))


def build(header: object, data: bytes = b"", *, raw: bytes | None = None) -> bytes:
    encoded = json.dumps(header).encode() if raw is None else raw
    return struct.pack("<Q", len(encoded)) + encoded + data


def test_reads_parameters_and_dominant_dtype_of_a_written_file(safetensors_model: Path) -> None:
    data = safetensors_model.read_bytes()
    header_length = struct.unpack_from("<Q", data)[0]

    info = identify_bytes(data)

    assert info == ModelInfo(
        format="safetensors",
        architecture_class="TinyNet",
        parameters=SAFETENSORS_PARAMETERS,
        parameters_estimated=True,
        quantization="F16",
        tensor_count=4,
        header_bytes=8 + header_length,
    )


def test_file_without_metadata_has_no_architecture(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(path))

    info = identify_bytes(path.read_bytes())

    assert info is not None
    assert (info.architecture, info.parameters, info.quantization) == (None, 16, "F32")


def test_file_without_tensors_is_an_empty_model(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    save_file({}, str(path))

    info = identify_bytes(path.read_bytes())

    assert info is not None
    assert (info.tensor_count, info.parameters, info.quantization) == (0, 0, None)


def test_sub_byte_dtypes_are_sized_in_bits() -> None:
    data = build({"w": {"dtype": "F4", "shape": [4, 4], "data_offsets": [0, 8]}}, bytes(8))

    info = identify_bytes(data)

    assert info is not None and (info.parameters, info.quantization) == (16, "F4")


def test_length_claiming_2_to_the_63_bytes_is_not_a_model() -> None:
    assert identify_bytes(struct.pack("<Q", 2**63) + b'{"a": 1}' + bytes(64)) is None


def test_length_beyond_the_file_is_not_a_model() -> None:
    assert identify_bytes(struct.pack("<Q", 1000) + b"{}" + bytes(64)) is None


def tensor(dtype: object = "F32", shape: object = None, offsets: object = None) -> object:
    return {
        "dtype": dtype,
        "shape": [2, 2] if shape is None else shape,
        "data_offsets": [0, 16] if offsets is None else offsets,
    }


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"w": tensor(dtype="F128")}, "unknown dtype"),
        ({"w": tensor(dtype=7)}, "unknown dtype"),
        ({"w": tensor(shape=[2, -2])}, "non-negative"),
        ({"w": tensor(shape=[2, 2.0])}, "non-negative"),
        ({"w": tensor(shape=[True, 4])}, "non-negative"),
        ({"w": tensor(shape=[2**64, 1])}, "64-bit"),
        ({"w": tensor(shape=[1] * 33)}, "at most 32 dims"),
        ({"w": tensor(shape="2x2")}, "at most 32 dims"),
        ({"w": tensor(offsets=[0, 17])}, "outside"),
        ({"w": tensor(offsets=[8, 4])}, "outside"),
        ({"w": tensor(offsets=[0])}, "two non-negative"),
        ({"w": tensor(offsets=[0, 8])}, "do not hold 4 F32"),
        ({"w": [1, 2]}, "not an object"),
        ({"__metadata__": {"a": 1}}, "string-to-string"),
        ({"__metadata__": "x"}, "string-to-string"),
    ],
)
def test_broken_tensor_entries_are_refused(header: object, reason: str) -> None:
    with pytest.raises(FormatError, match=reason) as e:
        identify_bytes(build(header, bytes(16)))
    assert e.value.format == "safetensors"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json}", "not JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"{" + b'"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "unreadable"),
        (b'{"a": ' + b"9" * 5000 + b"}", "unreadable"),
    ],
)
def test_header_that_is_no_json_object_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        identify_bytes(build(None, raw=raw))


def test_json_that_is_not_an_object_is_not_a_model() -> None:
    assert identify_bytes(build([1, 2, 3])) is None


def test_every_truncation_of_a_real_file_is_refused_or_ignored(safetensors_model: Path) -> None:
    data = safetensors_model.read_bytes()
    header_end = 8 + struct.unpack_from("<Q", data)[0]

    for n in range(len(data)):
        if n < header_end:
            assert identify_bytes(data[:n]) is None
        else:
            with pytest.raises(FormatError, match="outside"):
                identify_bytes(data[:n])


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (np.bool_, "BOOL"),
        (np.uint8, "U8"),
        (np.int8, "I8"),
        (np.int16, "I16"),
        (np.uint16, "U16"),
        (np.float16, "F16"),
        (np.int32, "I32"),
        (np.uint32, "U32"),
        (np.float32, "F32"),
        (np.float64, "F64"),
        (np.int64, "I64"),
        (np.uint64, "U64"),
    ],
)
def test_every_dtype_numpy_writes_is_known(tmp_path: Path, dtype: type, name: str) -> None:
    path = tmp_path / "one.safetensors"
    save_file({"w": np.zeros((3, 5), dtype=dtype)}, str(path))

    info = identify_bytes(path.read_bytes())

    assert info is not None and (info.quantization, info.parameters) == (name, 15)
    assert name in reader.DTYPE_BITS


def library_refuses(data: bytes) -> bool:
    """Whether the safetensors library itself refuses to load the bytes."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        load(data)
    except SafetensorError:
        return True
    return False


def test_a_hundred_tensors_over_the_same_bytes_are_refused_as_the_library_does() -> None:
    span = 1024 * 1024 * 4
    entry = {"dtype": "F32", "shape": [1024, 1024], "data_offsets": [0, span]}
    data = build({f"t{i}": entry for i in range(100)}, bytes(span))

    with pytest.raises(FormatError, match="not where the previous tensor ends"):
        reader.parse(read_bytes(data), len(data))
    assert library_refuses(data)


@pytest.mark.parametrize(
    ("offsets", "data_bytes", "reason"),
    [
        ([[0, 16], [32, 48]], 48, "not where the previous tensor ends"),  # a gap
        ([[0, 16], [8, 24]], 24, "not where the previous tensor ends"),  # an overlap
        ([[0, 16], [16, 32]], 40, "tensors cover 32 of the 40 data bytes"),  # bytes left over
    ],
)
def test_tensors_must_tile_the_data_region(
    offsets: list[list[int]], data_bytes: int, reason: str
) -> None:
    header = {
        f"t{i}": {"dtype": "F32", "shape": [4], "data_offsets": o} for i, o in enumerate(offsets)
    }
    data = build(header, bytes(data_bytes))

    with pytest.raises(FormatError, match=reason):
        reader.parse(read_bytes(data), len(data))
    assert library_refuses(data)


def test_tensors_listed_out_of_order_but_tiling_the_data_are_a_model() -> None:
    header = {
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]},
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "empty": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]},
    }
    data = build(header, bytes(32))

    info = reader.parse(read_bytes(data), len(data))

    assert (info.parameters, info.tensor_count) == (8, 3)
    assert not library_refuses(data)


def test_mlx_shard_alone_is_its_stored_count_flagged_as_such() -> None:
    header = {
        "l.weight": {"dtype": "U32", "shape": [8, 8], "data_offsets": [0, 256]},
        "l.scales": {"dtype": "F16", "shape": [8, 1], "data_offsets": [256, 272]},
        "l.biases": {"dtype": "F16", "shape": [8, 1], "data_offsets": [272, 288]},
    }
    data = build(header, bytes(288))

    info = reader.parse(read_bytes(data), len(data))

    assert (info.parameters, info.parameters_estimated) == (64 + 16, False)
    assert info.packed is not None and len(info.packed.tensors) == 3


entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["U32", "I32", "U8", "I8", "F16", "BF16", "I64", "F4"]),
        "shape": st.lists(st.integers(0, 64), max_size=3),
        "data_offsets": st.lists(st.integers(0, 1 << 14), min_size=2, max_size=2).map(sorted),
    }
)
names = st.sampled_from(["weight", "scales", "biases", "qweight", "qzeros", "g_idx", "SCB",
                         "weight_packed", "q_weight", "q_invperm", "weight.absmax"])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.builds("l{}.{}".format, st.integers(0, 3), names), entries, max_size=8),
    st.integers(0, 1 << 14),
)
def test_packed_looking_headers_parse_or_raise_format_error(
    header: dict[str, object], data_bytes: int
) -> None:
    found = outcome(reader, build(header, bytes(data_bytes)))

    if isinstance(found, ModelInfo):
        assert found.parameters is not None and found.parameters >= 0
        assert found.parameters_estimated in (True, False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.builds("l{}.{}".format, st.integers(0, 3), names),
            st.sampled_from(["U32", "I32", "U8", "I8", "F16", "BF16", "I16"]),
            st.lists(st.integers(0, 64), max_size=3),
        ),
        max_size=10,
        unique_by=lambda t: t[0],
    )
)
def test_valid_files_of_packed_looking_tensors_always_give_a_count(
    tensors: list[tuple[str, str, list[int]]],
) -> None:
    header, offset = {}, 0
    for name, dtype, shape in tensors:
        end = offset + math.prod(shape) * reader.DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}
        offset = end

    info = reader.parse(read_bytes(build(header, bytes(offset))), len(build(header, bytes(offset))))

    # No scheme holds a weight in less than one bit.
    bits = sum(math.prod(shape) * reader.DTYPE_BITS[dtype] for _, dtype, shape in tensors)
    assert info.parameters is not None and info.parameters <= bits
    assert info.parameters_estimated is not None
