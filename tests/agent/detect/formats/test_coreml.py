"""CoreML specifications: coremltools' own Model protobuf, models converted from PyTorch by
coremltools (an .mlmodel and the model.mlmodel inside an .mlpackage), and decoys."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from coremltools.proto import FeatureTypes_pb2, Model_pb2  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import onnx_model, outcome, parsed, saved_model

from agent.detect.formats import ModelInfo
from agent.detect.formats import coreml as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def specification(**types: bool) -> Any:
    """A dense-layer neural network spec with the metadata coremltools writes."""
    spec = Model_pb2.Model(specificationVersion=4)
    for name, io in (("x", spec.description.input), ("y", spec.description.output)):
        feature = io.add(name=name)
        feature.type.multiArrayType.shape.extend([3])
        feature.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    metadata = spec.description.metadata
    metadata.shortDescription, metadata.author, metadata.license = "tiny", "the team", "MIT"
    metadata.userDefined["com.github.apple.coremltools.version"] = "9.0"
    metadata.userDefined["com.github.apple.coremltools.source"] = "torch==2.13.0"
    if types.get("neural_network", True):
        layer = spec.neuralNetwork.layers.add(name="dense", input=["x"], output=["y"])
        layer.innerProduct.inputChannels, layer.innerProduct.outputChannels = 3, 3
        layer.innerProduct.weights.floatValue.extend([0.5] * 9)
    return spec


@cache
def spec_bytes() -> bytes:
    data: bytes = specification().SerializeToString()
    return data


def test_reads_type_licence_and_producer_of_a_specification() -> None:
    info = parsed(reader, spec_bytes())

    assert replace(info, header_bytes=0) == ModelInfo(
        format="coreml",
        architecture="neuralNetwork",
        license="MIT",
        producer="coremltools 9.0",
    )


@pytest.mark.parametrize(
    ("field", "architecture"),
    [
        ("pipeline", "pipeline"),
        ("treeEnsembleClassifier", "treeEnsembleClassifier"),
        ("glmRegressor", "glmRegressor"),
        ("mlProgram", "mlProgram"),
        ("wordEmbedding", "wordEmbedding"),
    ],
)
def test_each_model_type_is_the_architecture(field: str, architecture: str) -> None:
    spec = specification(neural_network=False)
    getattr(spec, field).SetInParent()

    info = parsed(reader, spec.SerializeToString())

    assert info.architecture == architecture


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-layer PyTorch model converted by coremltools to both CoreML model kinds."""
    import coremltools as ct  # type: ignore[import-untyped]
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    traced = torch.jit.trace(net.eval(), torch.zeros(1, 3))  # type: ignore[no-untyped-call]
    inputs = [ct.TensorType(name="x", shape=(1, 3))]
    folder = tmp_path_factory.mktemp("coreml")
    paths = {"neuralnetwork": folder / "tiny.mlmodel", "mlprogram": folder / "tiny.mlpackage"}
    for kind, path in paths.items():
        ct.convert(traced, inputs=inputs, convert_to=kind).save(str(path))
    return paths


def test_models_converted_by_coremltools_are_identified(converted: dict[str, Path]) -> None:
    network = parsed(reader, converted["neuralnetwork"].read_bytes())
    inner = converted["mlprogram"] / "Data" / "com.apple.CoreML" / "model.mlmodel"
    program = parsed(reader, inner.read_bytes())

    assert (network.architecture, program.architecture) == ("neuralNetwork", "mlProgram")
    assert network.producer is not None and network.producer.startswith("coremltools ")
    assert program.producer == network.producer


def test_converted_weights_file_is_not_a_specification(converted: dict[str, Path]) -> None:
    weights = converted["mlprogram"] / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"

    assert outcome(reader, weights.read_bytes()) is None


@pytest.mark.parametrize(
    "data",
    [
        onnx_model().SerializeToString(),
        saved_model([((4, 4), 1)]),
        Model_pb2.ModelDescription(
            input=[Model_pb2.FeatureDescription(name="x")]
        ).SerializeToString(),
        Model_pb2.Metadata(author="a", license="MIT").SerializeToString(),
        b"\x08\x04\x12\x00",
    ],
    ids=["onnx", "savedmodel", "description", "metadata", "no-model-type"],
)
def test_protobufs_that_are_no_coreml_model_are_none(data: bytes) -> None:
    assert outcome(reader, data) is None


def test_a_second_model_type_is_not_a_model() -> None:
    data = spec_bytes() + b"\xa2\x1f\x00"  # field 500 again: a second neuralNetwork

    assert outcome(reader, data) is None


def test_every_cut_inside_the_description_is_refused() -> None:
    data = spec_bytes()
    spec = specification()
    spec.ClearField("neuralNetwork")
    description_end = len(spec.SerializeToString())

    for cut in range(len(data)):
        result = outcome(reader, data[:cut])
        if 4 < cut < description_end:
            assert isinstance(result, FormatError), cut
        else:
            assert result is None or isinstance(result, (FormatError, ModelInfo))


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.integers(1, 12), st.binary(max_size=2048))
def test_bytes_after_a_spec_version_give_a_model_none_or_format_error(
    version: int, rest: bytes
) -> None:
    outcome(reader, bytes([0x08, version, 0x12]) + rest)


@FUZZ
@given(st.data())
def test_damaged_specifications_give_a_model_none_or_format_error(data: st.DataObject) -> None:
    damaged = bytearray(spec_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))


def test_protobuf_formats_never_take_each_others_files() -> None:
    from agent.detect.formats import onnx, savedmodel

    files = {
        "onnx": onnx_model().SerializeToString(),
        "coreml": spec_bytes(),
        "tf_savedmodel": saved_model([((4, 4), 1)]),
    }
    for fmt, data in files.items():
        results = {m.FORMAT: outcome(m, data) for m in (onnx, reader, savedmodel)}
        assert {k for k, v in results.items() if v is not None} == {fmt}
