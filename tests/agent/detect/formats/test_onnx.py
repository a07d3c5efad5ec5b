"""ONNX by content: onnx.helper models, external data, the models the onnx package ships, and
protobufs of other message types that must not pass for ONNX."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from p_fixtures import ONNX_PARAMETERS, Reads, onnx_model, outcome, parsed

from agent.detect.formats import ModelInfo
from agent.detect.formats import onnx as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIPPED = Path(onnx.__file__).parent / "backend" / "test" / "data"
METADATA = {"name": "tiny-mlp", "license": "mit", "base_model": "meta-llama/Llama-3.2-1B"}


@cache
def model_bytes() -> bytes:
    return onnx_model(metadata=METADATA).SerializeToString()


def test_reads_producer_metadata_and_initializers_of_a_helper_model() -> None:
    info = parsed(reader, model_bytes())

    assert replace(info, header_bytes=0) == ModelInfo(
        format="onnx",
        name="tiny-mlp",
        parameters=ONNX_PARAMETERS,
        parameters_estimated=True,
        quantization="F16",
        license="mit",
        base_model="meta-llama/Llama-3.2-1B",
        producer="pytorch 2.3.0",
        tensor_count=2,
    )
    assert 0 < info.header_bytes <= len(model_bytes())


def test_graph_name_names_a_model_without_metadata() -> None:
    info = parsed(reader, onnx_model().SerializeToString())

    assert (info.name, info.license, info.base_model) == ("tiny_mlp", None, None)


def test_int8_weights_make_the_quantization_i8() -> None:
    info = parsed(reader, onnx_model(weight_type=np.int8).SerializeToString())

    assert (info.quantization, info.parameters) == ("I8", ONNX_PARAMETERS)


def test_external_data_file_is_a_companion(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    onnx.save_model(
        onnx_model(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="tiny.onnx.data",
        size_threshold=0,
    )
    data = path.read_bytes()

    info = parsed(reader, data)

    assert info.companions == ("tiny.onnx.data",)
    assert info.parameters == ONNX_PARAMETERS
    assert len(data) < 1024 < (tmp_path / "tiny.onnx.data").stat().st_size


def test_one_external_file_per_tensor_names_each_once(tmp_path: Path) -> None:
    path = tmp_path / "split.onnx"
    onnx.save_model(
        onnx_model(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
    )

    info = parsed(reader, path.read_bytes())

    assert sorted(info.companions) == sorted(p.name for p in tmp_path.iterdir() if p != path)
    assert len(info.companions) == 2


def test_raw_tensor_data_is_jumped_over() -> None:
    big = np.ones((1024, 1024), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["y"])],
        "big",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024, 1024])],
        initializer=[numpy_helper.from_array(big, "W")],
    )
    data = helper.make_model(graph, producer_name="test").SerializeToString()
    reads = Reads(data)

    info = reader.parse(reads, len(data))

    assert info is not None and info.parameters == 1024 * 1024
    assert reads.furthest == len(data) and info.header_bytes < 64 << 10


def shipped_models() -> list[Path]:
    return sorted(SHIPPED.rglob("*.onnx"))


def test_models_shipped_with_the_onnx_package_are_identified() -> None:
    paths = shipped_models()
    assert len(paths) > 100

    for path in paths:
        data = path.read_bytes()
        expected = onnx.load_from_string(data)
        info = parsed(reader, data)

        parameters = sum(int(np.prod(t.dims)) for t in expected.graph.initializer)
        constants = [
            int(np.prod(a.t.dims))
            for node in expected.graph.node
            if node.op_type == "Constant"
            for a in node.attribute
            if a.type == onnx.AttributeProto.TENSOR
        ]
        assert info.parameters == parameters + sum(constants), path
        assert info.tensor_count == len(expected.graph.initializer), path
        assert info.producer == f"{expected.producer_name} {expected.producer_version}".strip()


def test_tensor_protos_shipped_as_test_data_are_not_models() -> None:
    paths = sorted(SHIPPED.rglob("*.pb"))
    assert len(paths) > 100

    for path in paths:
        assert outcome(reader, path.read_bytes()) is None, path


@pytest.mark.parametrize(
    "message",
    [
        numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "t"),
        onnx_model().graph,
        helper.make_model(helper.make_graph([], "g", [], [])).opset_import[0],
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
    ],
    ids=["tensor", "graph", "opset", "value_info"],
)
def test_other_onnx_messages_are_not_models(message: Message) -> None:
    assert outcome(reader, message.SerializeToString()) is None


def test_model_proto_without_a_graph_is_not_a_model() -> None:
    data = onnx.ModelProto(ir_version=8, producer_name="pytorch").SerializeToString()

    assert outcome(reader, data) is None


@pytest.mark.parametrize(
    ("graph", "why"),
    [(b"\x08\x01", "a varint where nodes go"), (b"\x0a\x02\x12\x00", "a node without op_type")],
)
def test_field_7_that_is_no_graph_is_not_a_model(graph: bytes, why: str) -> None:
    data = b"\x08\x08" + b"\x3a" + bytes([len(graph)]) + graph

    assert outcome(reader, data) is None, why


def test_printable_producer_is_required_to_claim() -> None:
    assert not reader.claims(b"\x08\x08\x12\x03\x00\x01\x02", 7)
    assert reader.claims(b"\x08\x08\x12\x03abc", 7)


def tensor_model(tensor: TensorProto) -> bytes:
    graph = helper.make_graph([], "g", [], [], initializer=[tensor])
    return helper.make_model(graph).SerializeToString()


def test_negative_dimension_is_refused() -> None:
    tensor = TensorProto(name="w", dims=[4, -1], data_type=TensorProto.FLOAT)

    with pytest.raises(FormatError, match="negative dimension"):
        reader.parse(lambda o, n: tensor_model(tensor)[o : o + n], len(tensor_model(tensor)))


def test_too_many_dimensions_are_refused() -> None:
    data = tensor_model(TensorProto(name="w", dims=[1] * 40, data_type=TensorProto.FLOAT))

    result = outcome(reader, data)

    assert isinstance(result, FormatError) and "dims" in result.reason


def graph_span(model: onnx.ModelProto) -> tuple[int, int]:
    """Where the graph field (7) starts and ends: fields are written in number order."""
    before = onnx.ModelProto()
    before.CopyFrom(model)
    for name in ("graph", "opset_import", "metadata_props"):
        before.ClearField(name)
    with_graph = onnx.ModelProto()
    with_graph.CopyFrom(before)
    with_graph.graph.CopyFrom(model.graph)
    return len(before.SerializeToString()), len(with_graph.SerializeToString())


def test_every_cut_inside_the_graph_is_refused() -> None:
    data = model_bytes()
    start, end = graph_span(onnx_model(metadata=METADATA))

    for cut in range(len(data)):
        result = outcome(reader, data[:cut])
        if start < cut < end:
            assert isinstance(result, FormatError), cut
        else:
            assert result is None or isinstance(result, (FormatError, ModelInfo))


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.integers(1, 20), st.binary(max_size=2048))
def test_bytes_after_an_ir_version_give_a_model_none_or_format_error(
    version: int, rest: bytes
) -> None:
    outcome(reader, bytes([0x08, version]) + rest)


@FUZZ
@given(st.data())
def test_damaged_models_give_a_model_none_or_format_error(data: st.DataObject) -> None:
    damaged = bytearray(model_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))


def graph_model(
    nodes: list[onnx.NodeProto], initializers: list[TensorProto], name: str = "g"
) -> bytes:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(
        graph, producer_name="paddle2onnx", opset_imports=opsets
    ).SerializeToString()


def test_weights_in_constant_nodes_are_counted_as_paddlepaddle_exports_hold_them() -> None:
    weight = numpy_helper.from_array(np.ones((64, 32), np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(32, np.float32), "b")
    nodes = [
        helper.make_node("Constant", [], ["w"], value=weight),
        helper.make_node("Constant", [], ["b"], value=bias),
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
    ]

    info = parsed(reader, graph_model(nodes, []))

    assert (info.parameters, info.quantization, info.tensor_count) == (64 * 32 + 32, "F32", 0)


def matmul_nbits(k: int, n: int, block: int = 32) -> tuple[onnx.NodeProto, list[TensorProto]]:
    blocks = k // block
    packed = numpy_helper.from_array(np.zeros((n, blocks, block // 2), np.uint8), "B")
    scales = numpy_helper.from_array(np.ones(n * blocks, np.float16), "scales")
    zero_points = numpy_helper.from_array(np.zeros(n * ((blocks + 1) // 2), np.uint8), "zp")
    node = helper.make_node(
        "MatMulNBits", ["x", "B", "scales", "zp"], ["y"], domain="com.microsoft",
        K=k, N=n, bits=4, block_size=block,
    )  # fmt: skip
    return node, [packed, scales, zero_points]


def test_matmulnbits_int4_weights_count_k_by_n_and_their_scales_not_at_all() -> None:
    node, initializers = matmul_nbits(64, 48)

    info = parsed(reader, graph_model([node], initializers))

    assert (info.parameters, info.parameters_estimated, info.quantization) == (
        64 * 48,
        True,
        "INT4",
    )
    assert info.tensor_count == 3


def test_dequantize_linear_int8_weights_count_once_without_scale_and_zero_point() -> None:
    weight = numpy_helper.from_array(np.zeros((64, 32), np.int8), "wq")
    scale = numpy_helper.from_array(np.ones(32, np.float32), "ws")
    zero_point = numpy_helper.from_array(np.zeros(32, np.int8), "wz")
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]

    info = parsed(reader, graph_model(nodes, [weight, scale, zero_point]))

    assert (info.parameters, info.quantization) == (64 * 32, "I8")


def test_packed_bytes_read_by_an_unknown_contrib_operator_are_flagged() -> None:
    packed = numpy_helper.from_array(np.zeros((32, 16), np.uint8), "B")
    node = helper.make_node("MatMulFuture", ["x", "B"], ["y"], domain="com.microsoft")

    info = parsed(reader, graph_model([node], [packed]))

    assert (info.parameters, info.parameters_estimated) == (32 * 16, False)


@pytest.mark.parametrize(
    ("graph_name", "name"),
    [
        ("tiny_mlp", "tiny_mlp"),
        ("main_graph", None),  # torch.onnx's name for every graph
        ("torch-jit-export", None),
        ("Model from PaddlePaddle.", None),  # prose, not a name
        ("A description of what this network does", None),
    ],
)
def test_only_a_graph_name_that_names_something_names_the_model(
    graph_name: str, name: str | None
) -> None:
    model = onnx_model()
    model.graph.name = graph_name
    model.graph.doc_string = "Converted from a PaddlePaddle program"
    model.doc_string = "An exporter's description"

    assert parsed(reader, model.SerializeToString()).name == name


@cache
def quantized_graph_bytes() -> bytes:
    """MatMulNBits, DequantizeLinear and Constant nodes: every node kind the count reads."""
    node, initializers = matmul_nbits(64, 48)
    weight = numpy_helper.from_array(np.zeros((64, 32), np.int8), "wq")
    scale = numpy_helper.from_array(np.ones(32, np.float32), "ws")
    constant = numpy_helper.from_array(np.ones((4, 4), np.float32), "c")
    nodes = [
        node,
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=1),
        helper.make_node("Constant", [], ["c"], value=constant),
    ]
    return graph_model(nodes, [*initializers, weight, scale])


@FUZZ
@given(st.data())
def test_damaged_quantized_graphs_give_a_model_none_or_format_error(data: st.DataObject) -> None:
    damaged = bytearray(quantized_graph_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    found = outcome(reader, bytes(damaged[:cut]))

    if isinstance(found, ModelInfo):
        assert found.parameters is not None and found.parameters >= 0
