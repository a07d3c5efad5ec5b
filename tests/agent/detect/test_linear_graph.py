"""The classifier's graph evaluated in plain Python: the same scores and contributions as an
ONNX Runtime session, any other graph refused by name, any bytes read or refused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime  # type: ignore[import-untyped]  # the wheel ships no stubs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from agent.detect.linear_graph import LinearGraph, read_linear_graph
from agent.errors import AgentError
from agent.training.dataset import load
from agent.training.linear import LinearModel, to_onnx

SHIPPED = Path(__file__).resolve().parents[3] / "agent" / "detect" / "classifier.onnx"
TOLERANCE = 1e-6
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def shipped() -> bytes:
    return SHIPPED.read_bytes()


@cache
def session(model: bytes) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])


@cache
def dataset() -> np.ndarray:
    return np.asarray([row.features().values for row in load()], dtype=np.float32)


def runtime(model: bytes, x: np.ndarray) -> tuple[list[float], list[list[float]]]:
    x = np.asarray(x, dtype=np.float32)
    scores, contributions = session(model).run(["score", "contributions"], {"features": x})
    return scores.tolist(), contributions.tolist()


def assert_same_as_runtime(graph: LinearGraph, model: bytes, rows: Sequence[list[float]]) -> None:
    scores, contributions = runtime(model, np.asarray(rows))
    for row, score, expected in zip(rows, scores, contributions, strict=True):
        ours, ours_contributions = graph.evaluate(row)
        assert ours == pytest.approx(score, abs=TOLERANCE, rel=0)
        assert ours_contributions == pytest.approx(expected, abs=TOLERANCE, rel=0)


def test_every_dataset_row_scores_as_in_onnx_runtime() -> None:
    rows = dataset().tolist()

    assert len(rows) >= 250
    assert_same_as_runtime(read_linear_graph(shipped(), "classifier.onnx"), shipped(), rows)


def test_the_parameters_are_the_initializers_onnx_reads() -> None:
    graph = read_linear_graph(shipped(), "classifier.onnx")
    tensors = {
        t.name: numpy_helper.to_array(t).tolist()
        for t in onnx.load_from_string(shipped()).graph.initializer
    }

    assert graph.width == 101
    assert list(graph.mean) == tensors["mean"]
    assert list(graph.inv_scale) == tensors["inv_scale"]
    assert list(graph.weights) == tensors["weights"]
    assert [graph.bias] == tensors["bias"]


@st.composite
def feature_rows(draw: st.DrawFn) -> list[float]:
    """A vector inside the dataset's range of each feature (flags 0/1, log2 sizes, counts),
    or a value the dataset holds."""
    x = dataset()
    low, high = x.min(axis=0).tolist(), x.max(axis=0).tolist()
    row = []
    for column, (lo, hi) in enumerate(zip(low, high, strict=True)):
        seen = st.sampled_from(sorted(set(x[:, column].tolist())))
        anywhere = st.floats(min(lo, 0.0), max(hi, 1.0), width=32)
        row.append(draw(seen | anywhere))
    return row


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(feature_rows(), min_size=1, max_size=4))
def test_generated_feature_vectors_score_as_in_onnx_runtime(rows: list[list[float]]) -> None:
    assert_same_as_runtime(read_linear_graph(shipped(), "classifier.onnx"), shipped(), rows)


@st.composite
def linear_models(draw: st.DrawFn) -> tuple[LinearModel, list[list[float]]]:
    """Any model training could write, with inputs in a like range."""
    width = draw(st.integers(1, 12))
    values = st.floats(-4.0, 4.0, width=32)

    def vector(elements: st.SearchStrategy[float]) -> np.ndarray:
        return np.asarray(draw(st.lists(elements, min_size=width, max_size=width)))

    model = LinearModel(
        mean=vector(values),
        scale=vector(st.floats(0.125, 8.0, width=32)),
        weights=vector(values),
        bias=draw(values),
    )
    rows = draw(st.lists(st.lists(values, min_size=width, max_size=width), min_size=1))
    return model, rows


@FUZZ
@given(linear_models())
def test_any_model_training_writes_scores_as_in_onnx_runtime(
    case: tuple[LinearModel, list[list[float]]],
) -> None:
    model, rows = case
    data = to_onnx(model, [f"f{i}" for i in range(len(model.weights))])

    assert_same_as_runtime(read_linear_graph(data, "m.onnx"), data, rows)


def edit(change: Callable[[onnx.ModelProto], None]) -> bytes:
    """The shipped model changed by `change`, written by onnx."""
    proto = onnx.load_from_string(shipped())
    change(proto)
    return proto.SerializeToString()


def insert_relu(proto: onnx.ModelProto) -> None:
    proto.graph.node[2].output[0] = "raw"
    proto.graph.node.insert(3, helper.make_node("Relu", ["raw"], ["contributions"]))


def weights_by_matmul(proto: onnx.ModelProto) -> None:
    proto.graph.node[2].op_type = "MatMul"


def sum_keeping_dims(proto: onnx.ModelProto) -> None:
    proto.graph.node[3].attribute[0].i = 1


def sum_without_keepdims(proto: onnx.ModelProto) -> None:
    del proto.graph.node[3].attribute[:]


def sum_over_the_batch(proto: onnx.ModelProto) -> None:
    axes = next(t for t in proto.graph.initializer if t.name == "axes")
    axes.CopyFrom(numpy_helper.from_array(np.asarray([0], dtype=np.int64), "axes"))


def old_opset(proto: onnx.ModelProto) -> None:
    proto.opset_import[0].version = 11


def double_weights(proto: onnx.ModelProto) -> None:
    weights = next(t for t in proto.graph.initializer if t.name == "weights")
    values = numpy_helper.to_array(weights).astype(np.float64)
    weights.CopyFrom(numpy_helper.from_array(values, "weights"))


def custom_domain(proto: onnx.ModelProto) -> None:
    proto.graph.node[0].domain = "com.microsoft"


def extra_output(proto: onnx.ModelProto) -> None:
    proto.graph.output.append(helper.make_tensor_value_info("logit", TensorProto.FLOAT, None))


def skipped_step(proto: onnx.ModelProto) -> None:
    proto.graph.node[1].input[0] = "features"


def trailing_node(proto: onnx.ModelProto) -> None:
    proto.graph.node[5].output[0] = "raw"
    proto.graph.node.append(helper.make_node("Identity", ["raw"], ["score"]))


def no_sigmoid(proto: onnx.ModelProto) -> None:
    proto.graph.node[4].output[0] = "score"
    del proto.graph.node[5]


def external_weights(proto: onnx.ModelProto) -> None:
    weights = next(t for t in proto.graph.initializer if t.name == "weights")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="weights.bin")


def weights_from_input(proto: onnx.ModelProto) -> None:
    proto.graph.node[2].input[1] = "features"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (insert_relu, "node 3 is 'Relu', where the linear model has ReduceSum"),
        (weights_by_matmul, "node 2 is 'MatMul', where the linear model has Mul"),
        (sum_keeping_dims, "node 3 (ReduceSum) has attributes"),
        (sum_without_keepdims, "keeps the reduced axis"),
        (sum_over_the_batch, "axes [0]"),
        (old_opset, "opset 11"),
        (double_weights, "tensor 'weights' has data type 11"),
        (custom_domain, "node 0 is com.microsoft.'Sub'"),
        (extra_output, "outputs ['score', 'contributions', 'logit']"),
        (skipped_step, "node 1 (Mul) is not fed by 'centred'"),
        (trailing_node, "node 6 is 'Identity', where the linear model has no node"),
        (no_sigmoid, "5 nodes, where the linear model has 6"),
        (external_weights, "tensor 'weights' keeps its data outside the model"),
        (weights_from_input, "takes 'features', not an initializer"),
    ],
)
def test_any_other_graph_is_refused_naming_the_file_and_what_differs(
    change: Callable[[onnx.ModelProto], None], reason: str
) -> None:
    with pytest.raises(AgentError) as refused:
        read_linear_graph(edit(change), "agent/detect/classifier.onnx")

    message = str(refused.value)
    assert message.startswith("agent/detect/classifier.onnx: not the linear classifier graph")
    assert reason in message


def test_a_vector_of_another_width_is_refused() -> None:
    graph = read_linear_graph(shipped(), "classifier.onnx")

    with pytest.raises(AgentError, match="100 features given to a model of 101"):
        graph.evaluate([0.0] * 100)


def test_values_past_float32_and_missing_ones_give_what_onnx_runtime_gives() -> None:
    graph = read_linear_graph(shipped(), "classifier.onnx")

    for value in (1e30, 3e38, float("inf"), float("-inf"), float("nan")):
        (score,), (contributions,) = runtime(shipped(), np.full((1, graph.width), value))
        ours, our_contributions = graph.evaluate([value] * graph.width)
        assert np.array_equal([ours], [score], equal_nan=True), value
        assert np.array_equal(our_contributions, contributions, equal_nan=True), value


def outcome(data: bytes) -> LinearGraph | AgentError:
    try:
        return read_linear_graph(data, "m.onnx")
    except AgentError as exc:
        assert str(exc).startswith("m.onnx: ")
        return exc


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_graph_or_an_agent_error(data: bytes) -> None:
    outcome(data)


@FUZZ
@given(st.data())
def test_damaged_models_give_a_graph_or_an_agent_error(data: st.DataObject) -> None:
    damaged = bytearray(shipped())
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(bytes(damaged[:cut]))
