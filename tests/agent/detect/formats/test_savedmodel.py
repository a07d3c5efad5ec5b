"""SavedModel protobufs (saved_model.pb) and the protobufs that must not pass for one.

TensorFlow itself is not installed for tests: the files are written with the MetaGraphDef that
tensorboard compiles from tensorflow's meta_graph.proto, wrapped in a SavedModel message
described with protobuf's descriptor API (saved_model.proto's two fields, same numbers).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import onnx_model, outcome, parsed, saved_model, saved_model_class
from tensorboard.compat.proto import meta_graph_pb2, types_pb2  # type: ignore[import-untyped]

from agent.detect.formats import ModelInfo
from agent.detect.formats import savedmodel as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KERNEL, BIAS = ((64, 32), types_pb2.DT_HALF), ((32,), types_pb2.DT_FLOAT)


@cache
def model_bytes() -> bytes:
    return saved_model([KERNEL, BIAS])


def test_reads_version_and_variables_of_a_saved_model() -> None:
    info = parsed(reader, model_bytes())

    assert replace(info, header_bytes=0) == ModelInfo(
        format="tf_savedmodel",
        parameters=64 * 32 + 32,
        quantization="F16",
        producer="tensorflow 2.15.0",
        tensor_count=2,
    )


def test_variables_of_later_meta_graphs_are_not_counted_twice() -> None:
    info = parsed(reader, saved_model([KERNEL, BIAS], graphs=3))

    assert (info.parameters, info.tensor_count) == (64 * 32 + 32, 2)


def test_a_tf1_saved_model_without_object_graph_has_no_parameter_count() -> None:
    info = parsed(reader, saved_model([]))

    assert (info.parameters, info.quantization, info.producer) == (None, None, "tensorflow 2.15.0")


def test_unknown_dimension_counts_no_elements() -> None:
    info = parsed(reader, saved_model([((-1, 8), types_pb2.DT_FLOAT), ((4,), types_pb2.DT_FLOAT)]))

    assert info.parameters == 4


@pytest.mark.parametrize(
    "data",
    [
        onnx_model().SerializeToString(),
        meta_graph_pb2.MetaGraphDef(
            meta_info_def=meta_graph_pb2.MetaGraphDef.MetaInfoDef(tags=["serve"])
        ).SerializeToString(),
        saved_model_class()(saved_model_schema_version=1).SerializeToString(),
        b"\x08\x01\x12\x02\x08\x01",
        b"\x08\x01\x12\x00\x18\x01",
    ],
    ids=["onnx", "meta-graph-alone", "no-meta-graphs", "varint-meta-graph", "foreign-field"],
)
def test_protobufs_that_are_no_saved_model_are_none(data: bytes) -> None:
    assert outcome(reader, data) is None


def test_meta_graph_without_info_or_graph_is_none() -> None:
    message = saved_model_class()(saved_model_schema_version=1)
    message.meta_graphs.add().collection_def["x"].bytes_list.value.append(b"y")

    assert outcome(reader, message.SerializeToString()) is None


def test_graph_node_without_op_is_none() -> None:
    message = saved_model_class()(saved_model_schema_version=1)
    message.meta_graphs.add().graph_def.node.add(name="x")

    assert outcome(reader, message.SerializeToString()) is None


def test_every_cut_inside_the_meta_graph_is_refused() -> None:
    data = model_bytes()
    payload = saved_model_class().FromString(data).meta_graphs[0].ByteSize()

    for cut in range(len(data)):
        result = outcome(reader, data[:cut])
        if len(data) - payload <= cut < len(data):
            assert isinstance(result, FormatError), cut
        else:
            assert result is None or isinstance(result, ModelInfo)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.binary(max_size=2048))
def test_bytes_after_a_schema_version_give_a_model_none_or_format_error(rest: bytes) -> None:
    outcome(reader, b"\x08\x01\x12" + rest)


@FUZZ
@given(st.data())
def test_damaged_saved_models_give_a_model_none_or_format_error(data: st.DataObject) -> None:
    damaged = bytearray(model_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))
