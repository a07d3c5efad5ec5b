"""The process classifier's ONNX graph evaluated in plain Python, without ONNX Runtime.

Only the linear model agent.training.linear writes is accepted; any other graph is refused by
the operator or tensor that differs, so a model of another shape is never scored as linear.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.detect.onnx_graph import FLOAT, INT64, Graph, Node, Tensor, ValueInfo, read_graph
from agent.errors import AgentError

# Node by node: each takes the previous node's output (the first, the graph's input) and,
# but for Sigmoid, one initializer.
OPS = ("Sub", "Mul", "Mul", "ReduceSum", "Add", "Sigmoid")
# ReduceSum takes its axes as an input from opset 13; up to opset 28 (onnx 1.23) none of the
# six operators has a version after 14, so their meaning on float tensors is the same.
MIN_OPSET, MAX_OPSET = 13, 28
DEFAULT_DOMAINS = ("", "ai.onnx")
MAX_FEATURES = 4096


@dataclass(frozen=True)
class LinearGraph:
    """contributions = (x - mean) * inv_scale * weights; score = sigmoid(sum + bias), every
    step rounded to float32 as ONNX Runtime computes the graph's float tensors: the
    contributions come out bit for bit the same, the score within a float32 rounding."""

    mean: tuple[float, ...]
    inv_scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    @property
    def width(self) -> int:
        return len(self.weights)

    def evaluate(self, values: Sequence[float]) -> tuple[float, list[float]]:
        """(score, contributions) of one feature vector of `width` values."""
        if len(values) != self.width:
            raise AgentError(f"{len(values)} features given to a model of {self.width}")
        centred = _f32([x - m for x, m in zip(_f32(values), self.mean, strict=True)])
        standardised = _f32([c * s for c, s in zip(centred, self.inv_scale, strict=True)])
        contributions = _f32([s * w for s, w in zip(standardised, self.weights, strict=True)])
        # ONNX Runtime sums in a vectorised order of its own; the exact sum rounded once is
        # within that order's rounding error of it.
        finite = all(map(math.isfinite, contributions))  # fsum raises on inf - inf
        total = _f32([math.fsum(contributions) if finite else sum(contributions)])[0]
        logit = _f32([total + self.bias])[0]
        return _f32([_sigmoid(logit)])[0], contributions


def _f32(values: Iterable[float]) -> list[float]:
    """Each value rounded to the nearest float32; past float32's range, infinity, as in C.
    (A float32 sum, difference or product computed in double and rounded once is exact.)"""
    return array("f", values).tolist()


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    if x < 0:
        e = math.exp(x)  # never overflows for a very negative x
        return e / (1.0 + e)
    return x  # NaN


def read_linear_graph(data: bytes, where: str) -> LinearGraph:
    """The linear model in an ONNX model's bytes; AgentError naming `where` and what differs
    (the framing, the opset, an operator, a tensor) for anything else."""
    try:
        return linear(read_graph(data))
    except AgentError as exc:
        raise AgentError(f"{where}: not the linear classifier graph: {exc}") from None


def linear(graph: Graph) -> LinearGraph:
    """The parameters of `graph` when it is exactly the linear model's graph."""
    version = max(graph.opsets.get(domain, 0) for domain in DEFAULT_DOMAINS)
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise AgentError(
            f"opset {version}, where these operators are known: {MIN_OPSET}-{MAX_OPSET}"
        )
    data = _data_input(graph)
    source = data.name
    constants: list[Tensor] = []
    for i, node in enumerate(graph.nodes):
        expected = OPS[i] if i < len(OPS) else "no node"
        if node.op != expected or node.domain not in DEFAULT_DOMAINS:
            where = f"{node.domain}." if node.domain not in DEFAULT_DOMAINS else ""
            raise AgentError(
                f"node {i} is {where}{node.op!r}, where the linear model has {expected}"
            )
        constants += _check_node(graph, node, i, source)
        source = node.outputs[0]
    if len(graph.nodes) != len(OPS):
        raise AgentError(f"{len(graph.nodes)} nodes, where the linear model has {len(OPS)}")
    contributions, score = graph.nodes[2].outputs[0], graph.nodes[5].outputs[0]
    if sorted(o.name for o in graph.outputs) != sorted((score, contributions)):
        raise AgentError(
            f"outputs {[o.name for o in graph.outputs]}, not {score!r} and {contributions!r}"
        )
    return _parameters(data, constants)


def _data_input(graph: Graph) -> ValueInfo:
    """The graph's one input that no initializer fills: float32, [batch, features]."""
    inputs = [i for i in graph.inputs if i.name not in graph.tensors]
    if len(inputs) != 1:
        raise AgentError(f"{len(inputs)} inputs, where the linear model has one")
    if inputs[0].elem_type != FLOAT or len(inputs[0].dims) != 2:
        raise AgentError(f"input {inputs[0].name!r} is not a float matrix")
    return inputs[0]


def _check_node(graph: Graph, node: Node, i: int, source: str) -> list[Tensor]:
    """The node's initializer after checking it reads `source` and has one output."""
    arity = 1 if node.op == "Sigmoid" else 2
    if len(node.inputs) != arity or node.inputs[0] != source or len(node.outputs) != 1:
        raise AgentError(f"node {i} ({node.op}) is not fed by {source!r} alone")
    allowed = {"keepdims": 0, "noop_with_empty_axes": 0} if node.op == "ReduceSum" else {}
    if node.other_attributes or any(allowed.get(k) != v for k, v in node.ints.items()):
        raise AgentError(f"node {i} ({node.op}) has attributes the linear model does not set")
    if node.op == "ReduceSum" and "keepdims" not in node.ints:
        raise AgentError(f"node {i} (ReduceSum) keeps the reduced axis")
    if arity == 1:
        return []
    constant = graph.tensors.get(node.inputs[1])
    if constant is None:
        raise AgentError(f"node {i} ({node.op}) takes {node.inputs[1]!r}, not an initializer")
    return [constant]


def _parameters(data: ValueInfo, constants: list[Tensor]) -> LinearGraph:
    mean, inv_scale, weights, axes, bias = constants
    width = len(weights.values)
    for tensor in (mean, inv_scale, weights):
        if tensor.data_type != FLOAT or tensor.dims != [width] or not 0 < width <= MAX_FEATURES:
            raise AgentError(f"{tensor.name!r} is not a float vector of {width} values")
    if axes.data_type != INT64 or axes.values not in ([1], [-1]):
        raise AgentError(f"ReduceSum over axes {axes.values!r}, not over the features")
    if bias.data_type != FLOAT or bias.dims not in ([], [1]):
        raise AgentError(f"{bias.name!r} is not one float")
    if data.dims[1] not in (None, width):
        raise AgentError(f"input {data.name!r} has {data.dims[1]} features, the weights {width}")
    return LinearGraph(
        mean=tuple(mean.values),
        inv_scale=tuple(inv_scale.values),
        weights=tuple(weights.values),
        bias=float(bias.values[0]),
    )
