"""TFLite FlatBuffers written with the `tflite` package's generated builders (schema.fbs) and
the `flatbuffers` library, with and without a TFLITE_METADATA buffer; broken and hostile ones."""

from __future__ import annotations

import struct
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import (
    Reads,
    TfliteTensor,
    outcome,
    parsed,
    tflite_metadata,
    tflite_model,
    tflite_weights,
)

from agent.detect.formats import ModelInfo
from agent.detect.formats import tflite as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARAMETERS = 16 * 8 + 8


@cache
def model_bytes() -> bytes:
    return tflite_model(tflite_weights(), metadata=tflite_metadata("tiny classifier", "Apache-2.0"))


def test_reads_weights_and_metadata_of_a_written_model() -> None:
    info = parsed(reader, model_bytes())

    assert replace(info, header_bytes=0) == ModelInfo(
        format="tflite",
        name="tiny classifier",
        parameters=PARAMETERS,
        quantization="I8",
        license="Apache-2.0",
        producer="MLIR Converted.",
        tensor_count=2,
    )


def test_model_without_metadata_has_no_name() -> None:
    info = parsed(reader, tflite_model(tflite_weights(), description="TOCO Converted."))

    assert (info.name, info.license, info.producer) == (None, None, "TOCO Converted.")
    assert info.parameters == PARAMETERS


def test_float16_weights_make_the_quantization_f16() -> None:
    tensors = [
        TfliteTensor("input", (1, 4), 0),
        TfliteTensor("kernel", (4, 100), 1, bytes(4 * 100 * 2)),
        TfliteTensor("output", (1, 100), 0),
    ]

    info = parsed(reader, tflite_model(tensors))

    assert (info.quantization, info.parameters, info.tensor_count) == ("F16", 400, 1)


def test_constant_data_is_not_read() -> None:
    tensors = [
        TfliteTensor("input", (1, 512), 0),
        TfliteTensor("kernel", (512, 512), 0, bytes(512 * 512 * 4)),
        TfliteTensor("output", (1, 512), 0),
    ]
    data = tflite_model(tensors)
    reads = Reads(data)

    info = reader.parse(reads, len(data))

    assert info is not None and info.parameters == 512 * 512
    assert info.header_bytes < 64 << 10 and reads.largest <= 4096


@pytest.mark.parametrize(
    "data",
    [
        tflite_metadata("x", "MIT"),
        b"\x1c\x00\x00\x00TFL2" + bytes(64),
        b"\xff\xff\xff\x7fTFL3" + bytes(64),
        b"TFL3" + bytes(64),
    ],
    ids=["metadata-flatbuffer", "other-identifier", "root-past-end", "identifier-at-0"],
)
def test_lookalikes_are_not_claimed(data: bytes) -> None:
    assert not reader.claims(data[:4096], len(data))


def test_random_bytes_with_the_identifier_are_refused() -> None:
    data = b"\x10\x00\x00\x00TFL3" + b"\x07" * 120

    assert isinstance(outcome(reader, data), FormatError)


def patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


def test_vector_claiming_more_elements_than_the_file_holds_is_refused() -> None:
    data = tflite_model(tflite_weights())
    # The kernel's 512 data bytes follow their u32 length, which is unique in this file.
    broken = patched(
        data, struct.pack("<I", 128) + bytes(128), struct.pack("<I", 1 << 30) + bytes(128)
    )

    result = outcome(reader, broken)

    assert isinstance(result, FormatError) and "claims" in result.reason


def test_model_without_subgraphs_is_refused() -> None:
    import flatbuffers  # type: ignore[import-untyped]

    b = flatbuffers.Builder(64)
    b.StartObject(1)
    b.PrependUint32Slot(0, 3, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")

    result = outcome(reader, bytes(b.Output()))

    assert isinstance(result, FormatError) and "no subgraphs" in result.reason


def test_every_cut_of_a_written_model_is_refused_or_read_the_same() -> None:
    data = model_bytes()
    whole = replace(parsed(reader, data), header_bytes=0)

    for cut in range(len(data)):
        result = outcome(reader, data[:cut])
        # A FlatBuffer has no length: a cut through tables nothing reads goes unnoticed.
        if isinstance(result, ModelInfo):
            assert replace(result, header_bytes=0) == whole, cut
        else:
            assert result is None or isinstance(result, FormatError), cut


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.integers(8, 600), st.binary(min_size=8, max_size=2048))
def test_bytes_after_the_identifier_give_a_model_none_or_format_error(
    root: int, rest: bytes
) -> None:
    outcome(reader, struct.pack("<I", root) + b"TFL3" + rest)


@FUZZ
@given(st.data())
def test_damaged_models_give_a_model_none_or_format_error(data: st.DataObject) -> None:
    damaged = bytearray(model_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))
