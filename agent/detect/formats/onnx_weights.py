"""An ONNX graph's weights before quantization: which initializers the quantized operators
read as packed weights (MatMulNBits, GatherBlockQuantized, MatMulBnb4) and which as scales
and zero points, which are no weights at all.

Pure: the graph's tensors and a few of its nodes in, a count out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

U8 = 2
MS_DOMAIN = "com.microsoft"

# op -> input positions that hold quantization state (scales, zero points, group indices).
STATE_INPUTS: dict[str, tuple[int, ...]] = {
    "MatMulNBits": (2, 3, 4),
    "MatMulBnb4": (2,),
    "GatherBlockQuantized": (2, 3),
    "DequantizeLinear": (1, 2),
    "QuantizeLinear": (1, 2),
    "DynamicQuantizeLinear": (),
    "DynamicQuantizeMatMul": (2, 3),
    "MatMulInteger": (2, 3),
    "ConvInteger": (2, 3),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "QLinearConv": (1, 2, 4, 5, 6, 7),
    "QGemm": (1, 2, 4, 5, 7, 8),
}
# Operators whose packed weight input (position 1 or 0) stores several weights per byte; the
# attributes K and N, or `bits`, give the count.
_PACKED_BY_SHAPE = frozenset({"MatMulNBits", "MatMulBnb4"})


@dataclass(frozen=True)
class Node:
    """What the count needs of one node: operator, domain, inputs, integer attributes."""

    op: str
    domain: str
    inputs: tuple[str, ...]
    ints: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Weights:
    """Weights before quantization, elements by quantization label, and whether every
    packed layout was one we know."""

    parameters: int
    by_label: dict[str, int]
    recognised: bool


def count(
    tensors: dict[str, tuple[int, str]], unnamed: list[tuple[int, str]], nodes: list[Node]
) -> Weights:
    """`tensors` maps initializer and Constant names to (elements, dtype label); `unnamed`
    holds tensors no node can refer to (sparse values); `nodes` the graph's nodes."""
    state: set[str] = set()
    unpacked: dict[str, tuple[int, str]] = {}
    recognised = True
    for node in nodes:
        known = STATE_INPUTS.get(node.op)
        if known is None:
            recognised &= not _packed_input_of_unknown_op(node, tensors)
            continue
        state.update(node.inputs[i] for i in known if i < len(node.inputs) and node.inputs[i])
        weight = _unpacked(node, tensors)
        if weight is not None:
            unpacked[weight[0]] = weight[1]
    by_label: dict[str, int] = {}
    total = 0
    for name, (elements, label) in tensors.items():
        if name in state:
            continue
        elements, label = unpacked.get(name, (elements, label))
        total += elements
        by_label[label] = by_label.get(label, 0) + elements
    for elements, label in unnamed:
        total += elements
        by_label[label] = by_label.get(label, 0) + elements
    return Weights(total, by_label, recognised)


def _unpacked(
    node: Node, tensors: dict[str, tuple[int, str]]
) -> tuple[str, tuple[int, str]] | None:
    """(initializer name, (weights, label)) for the packed weight of a node, if it has one."""
    bits = node.ints.get("bits", 4)
    if node.op in _PACKED_BY_SHAPE and len(node.inputs) > 1:
        k, n = node.ints.get("K", 0), node.ints.get("N", 0)
        if k > 0 and n > 0:
            return node.inputs[1], (k * n, f"INT{bits}" if node.op == "MatMulNBits" else "NF4")
    if node.op == "GatherBlockQuantized" and node.inputs and 0 < bits <= 8:
        found = tensors.get(node.inputs[0])
        if found is not None and found[1] == "U8":
            return node.inputs[0], (found[0] * 8 // bits, f"INT{bits}")
    return None


def _packed_input_of_unknown_op(node: Node, tensors: dict[str, tuple[int, str]]) -> bool:
    """A contrib operator we do not know reading a uint8 initializer: packed weights of an
    unknown layout, so the stored count is reported as such."""
    if node.domain != MS_DOMAIN:
        return False
    return any(tensors.get(name, (0, ""))[1] == "U8" for name in node.inputs[1:])
