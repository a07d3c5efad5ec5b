"""Read a small ONNX model whole from its bytes: opsets, nodes, initializer values, inputs and
outputs. For the few-kilobyte graphs the agent evaluates itself (agent.detect.linear_graph);
agent.detect.formats.onnx reads model files of any size without their weights.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from agent.detect.formats.protowire import I32, LEN, VARINT, Field, Wire, expect, signed64
from agent.errors import AgentError

FLOAT, INT64 = 1, 7  # TensorProto.DataType
MAX_VALUES = 4096  # elements in one initializer
MAX_ITEMS = 64  # nodes, tensors, inputs, outputs, attributes, dims: such graphs have a few
MAX_TEXT = 256
_CODES = {FLOAT: "f", INT64: "q"}


@dataclass
class Tensor:
    name: str = ""
    data_type: int = 0
    dims: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass
class Node:
    op: str = ""
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ints: dict[str, int] = field(default_factory=dict)  # integer attributes
    other_attributes: list[str] = field(default_factory=list)  # names of any other kind


@dataclass
class ValueInfo:
    name: str = ""
    elem_type: int = 0
    dims: list[int | None] = field(default_factory=list)  # None: a symbolic dimension


@dataclass
class Graph:
    opsets: dict[str, int] = field(default_factory=dict)  # domain -> version
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)  # the initializers by name
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)


def read_graph(data: bytes) -> Graph:
    """The model's graph; AgentError (FormatError for broken framing) when the bytes are no
    ModelProto with a graph, or hold more than this reader's caps or data it does not read:
    sparse initializers, external data, element types other than float and int64."""
    wire = Wire(lambda offset, length: data[offset : offset + length], len(data), "onnx")
    graph = Graph()
    found: Field | None = None
    for f in wire.fields(0, wire.size):
        if f.number == 7:
            expect(f, LEN)
            found = f
        elif f.number == 8:
            expect(f, LEN)
            domain, version = _opset(wire, f)
            graph.opsets[domain] = version
            _bound(len(graph.opsets), "opset imports")
    if found is None:
        raise AgentError("the model has no graph")
    _read_graph(wire, found, graph)
    return graph


def _opset(wire: Wire, opset: Field) -> tuple[str, int]:
    domain, version = "", 0
    for f in wire.fields(opset.at, opset.end):
        if f.number == 1:
            domain = _text(wire, f)
        elif f.number == 2:
            expect(f, VARINT)
            version = signed64(f.value)
    return domain, version


def _read_graph(wire: Wire, found: Field, graph: Graph) -> None:
    for f in wire.fields(found.at, found.end):
        if f.number in (1, 5, 11, 12, 15):
            expect(f, LEN)
            entries = len(graph.nodes) + len(graph.tensors) + len(graph.inputs)
            _bound(entries + len(graph.outputs), "graph entries")
        if f.number == 1:
            graph.nodes.append(_read_node(wire, f))
        elif f.number == 5:
            tensor = _read_tensor(wire, f)
            graph.tensors[tensor.name] = tensor
        elif f.number == 11:
            graph.inputs.append(_read_value_info(wire, f))
        elif f.number == 12:
            graph.outputs.append(_read_value_info(wire, f))
        elif f.number == 15:
            raise AgentError("the graph has a sparse initializer")


def _read_node(wire: Wire, found: Field) -> Node:
    node = Node()
    for f in wire.fields(found.at, found.end):
        if f.number == 1:
            node.inputs.append(_text(wire, f))
            _bound(len(node.inputs), "node inputs")
        elif f.number == 2:
            node.outputs.append(_text(wire, f))
            _bound(len(node.outputs), "node outputs")
        elif f.number == 4:
            node.op = _text(wire, f)
        elif f.number == 7:
            node.domain = _text(wire, f)
        elif f.number == 5:
            expect(f, LEN)
            _read_attribute(wire, f, node)
    return node


def _read_attribute(wire: Wire, found: Field, node: Node) -> None:
    name, value, others = "", None, 0
    for f in wire.fields(found.at, found.end):
        if f.number == 1:
            name = _text(wire, f)
        elif f.number == 3:
            expect(f, VARINT)
            value = signed64(f.value)
        elif f.number != 20:  # 20 is the type tag; every other field holds a value
            others += 1
    if value is None or others:
        node.other_attributes.append(name)
    else:
        node.ints[name] = value
    _bound(len(node.ints) + len(node.other_attributes), "node attributes")


def _read_tensor(wire: Wire, found: Field) -> Tensor:
    tensor = Tensor()
    data: list[Field] = []
    for f in wire.fields(found.at, found.end):
        if f.number == 1:
            tensor.dims += [signed64(d) for d in wire.varints(f, MAX_ITEMS)]
            _bound(len(tensor.dims), "tensor dims")
        elif f.number == 2:
            expect(f, VARINT)
            tensor.data_type = f.value
        elif f.number == 8:
            tensor.name = _text(wire, f)
        elif f.number in (4, 7, 9):  # float_data, int64_data, raw_data
            data.append(f)
        elif f.number in (13, 14):
            raise AgentError(f"tensor {tensor.name!r} keeps its data outside the model")
    if any(d < 0 for d in tensor.dims) or math.prod(tensor.dims) > MAX_VALUES:
        raise AgentError(f"tensor {tensor.name!r} has dims {tensor.dims}")
    if tensor.data_type not in _CODES:
        raise AgentError(f"tensor {tensor.name!r} has data type {tensor.data_type}")
    tensor.values = _values(wire, tensor, data)
    return tensor


def _values(wire: Wire, tensor: Tensor, data: list[Field]) -> list[float]:
    count, code = math.prod(tensor.dims), _CODES[tensor.data_type]
    values: list[float] = []
    for f in data:
        room = count - len(values)
        if f.number == 9 or (f.number == 4 and f.wire_type == LEN and code == "f"):
            values += _unpack(wire, f, code, room)
        elif f.number == 4 and f.wire_type == I32 and code == "f":  # one float, not packed
            values += struct.unpack("<f", f.value.to_bytes(4, "little"))
        elif f.number == 7 and code == "q":
            values += [signed64(v) for v in wire.varints(f, max(room, 1))]
        else:
            raise AgentError(f"tensor {tensor.name!r} holds data of another type")
    if len(values) != count:
        raise AgentError(f"tensor {tensor.name!r} holds {len(values)} values for {tensor.dims}")
    return values


def _unpack(wire: Wire, f: Field, code: str, room: int) -> list[float]:
    expect(f, LEN)
    width = struct.calcsize(code)
    if f.value % width or f.value // width > room:
        raise AgentError(f"{f.value} bytes at byte {f.at} do not fit the tensor's dims")
    return list(struct.unpack(f"<{f.value // width}{code}", wire.payload(f, f.value)))


def _read_value_info(wire: Wire, found: Field) -> ValueInfo:
    info = ValueInfo()
    for f in wire.fields(found.at, found.end):
        if f.number == 1:
            info.name = _text(wire, f)
        elif f.number == 2:
            for tensor_type in _children(wire, f, 1):  # TypeProto.tensor_type
                for g in wire.fields(tensor_type.at, tensor_type.end):
                    if g.number == 1:
                        expect(g, VARINT)
                        info.elem_type = g.value
                    elif g.number == 2:
                        info.dims = [_dim(wire, d) for d in _children(wire, g, 1)]
                        _bound(len(info.dims), "dims")
    return info


def _children(wire: Wire, parent: Field, number: int) -> list[Field]:
    """The LEN fields numbered `number` of the message in `parent`."""
    expect(parent, LEN)
    found = [f for f in wire.fields(parent.at, parent.end) if f.number == number]
    for f in found:
        expect(f, LEN)
    _bound(len(found), "repeated fields")
    return found


def _dim(wire: Wire, dim: Field) -> int | None:
    for f in wire.fields(dim.at, dim.end):
        if f.number == 1:  # dim_value; dim_param (2) is symbolic
            expect(f, VARINT)
            return signed64(f.value)
    return None


def _text(wire: Wire, f: Field) -> str:
    expect(f, LEN)
    return wire.text(f, MAX_TEXT)


def _bound(count: int, what: str) -> None:
    if count > MAX_ITEMS:
        raise AgentError(f"more than {MAX_ITEMS} {what}")
