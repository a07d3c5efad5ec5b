"""Read an ONNX model (a ModelProto protobuf) without the onnx package.

Initializer shapes and types are read from their field headers; raw tensor data is jumped over.
Weights held in Constant nodes count, and quantized operators' scales do not
(agent.detect.formats.onnx_weights).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from agent.detect import architectures
from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.onnx_weights import STATE_INPUTS, Node, count
from agent.detect.formats.protowire import (
    LEN,
    VARINT,
    Field,
    SchemaMismatch,
    Wire,
    check_node,
    expect,
    head_fields,
    signed64,
)
from agent.errors import FormatError

FORMAT = "onnx"
MAX_IR_VERSION = 64
MAX_DIMS = 32
MAX_TEXT = 256
MAX_LOCATION = 4096
MAX_METADATA = 1024
MAX_COMPANIONS = 1024
# Nodes past these are read leniently: a few checked ones show the graph is a graph.
CHECKED_NODES = 64
MAX_INPUTS = 64
EXTERNAL = 1
# Graph names that exporters give every graph, and prose (a description) is no model name.
_GENERIC_GRAPH_NAMES = frozenset(
    {"main_graph", "torch-jit-export", "torch_jit", "tf2onnx", "graph", "model", "test"}
)
_NAME_LIKE = re.compile(r"[\w.:/+-]{1,128}")

# ModelProto field -> wire type, as onnx.proto numbers them.
_MODEL_FIELDS = {
    1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN, 14: LEN, 20: LEN,
    25: LEN, 26: LEN,
}  # fmt: skip
_SINGULAR = frozenset({1, 2, 3, 4, 5, 6, 7})
_TEXT_FIELDS = frozenset({2, 3, 4})
_GRAPH_FIELDS = {1: LEN, 2: LEN, 5: LEN, 10: LEN, 11: LEN, 12: LEN, 13: LEN, 14: LEN, 15: LEN}
_NODE_FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: LEN}

# TensorProto.DataType -> the short names used for ai.model.quantization.
DATA_TYPES: dict[int, str] = {
    1: "F32", 2: "U8", 3: "I8", 4: "U16", 5: "I16", 6: "I32", 7: "I64", 8: "STRING",
    9: "BOOL", 10: "F16", 11: "F64", 12: "U32", 13: "U64", 14: "C64", 15: "C128", 16: "BF16",
    17: "F8_E4M3", 18: "F8_E4M3FNUZ", 19: "F8_E5M2", 20: "F8_E5M2FNUZ", 21: "U4", 22: "I4",
    23: "F4", 24: "F8_E8M0", 25: "U2", 26: "I2",
}  # fmt: skip


def claims(head: bytes, size: int) -> bool:
    """True when the head reads as the start of a ModelProto: ir_version first, then only
    ModelProto fields with their wire types, and producer/domain strings that are printable."""
    fields = head_fields(head, size)
    if not fields or (fields[0].number, fields[0].wire_type) != (1, VARINT):
        return False
    if not 1 <= fields[0].value <= MAX_IR_VERSION:
        return False
    seen: set[int] = set()
    for f in fields:
        if _MODEL_FIELDS.get(f.number) != f.wire_type or f.number in seen:
            return False
        if f.number in _SINGULAR:
            seen.add(f.number)
        if f.number in _TEXT_FIELDS and f.end <= len(head) and not _is_text(head[f.at : f.end]):
            return False
    return True


def _is_text(raw: bytes) -> bool:
    try:
        return raw.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


@dataclass
class _Model:
    producer: list[str] = field(default_factory=lambda: ["", ""])
    graph: Field | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class _Graph:
    name: str = ""
    initializers: int = 0
    tensors: dict[str, tuple[int, str]] = field(default_factory=dict)
    unnamed: list[tuple[int, str]] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    companions: dict[str, None] = field(default_factory=dict)


@dataclass
class _Tensor:
    name: str = ""
    elements: int = 0
    label: str = "?"
    location: str | None = None


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for a protobuf that is no ModelProto with a graph; FormatError when the protobuf
    framing breaks (a truncated or corrupt file) or a claim passes a cap."""
    wire = Wire(read_at, size, FORMAT)
    try:
        model = _read_model(wire)
        if model.graph is None:
            return None
        graph = _read_graph(wire, model.graph)
    except SchemaMismatch:
        return None
    meta = model.metadata
    producer = " ".join(p for p in model.producer if p)
    weights = count(graph.tensors, graph.unnamed, graph.nodes)
    family, cls = architectures.split(meta.get("architecture") or meta.get("model_type"))
    return ModelInfo(
        format=FORMAT,
        name=meta.get("name") or meta.get("model_name") or _model_name(graph.name),
        architecture=family,
        architecture_class=cls,
        parameters=weights.parameters,
        parameters_estimated=weights.recognised,
        quantization=_dominant(weights.by_label),
        license=meta.get("license") or None,
        base_model=meta.get("base_model") or None,
        producer=producer or None,
        tensor_count=graph.initializers,
        header_bytes=min(wire.bytes_read, size),
        companions=tuple(graph.companions),
    )


def _model_name(graph_name: str) -> str | None:
    """A graph name that names the model, not an exporter's default or a description."""
    if graph_name.lower() in _GENERIC_GRAPH_NAMES or not _NAME_LIKE.fullmatch(graph_name):
        return None
    return graph_name


def _read_model(wire: Wire) -> _Model:
    model = _Model()
    for f in wire.fields(0, wire.size):
        wanted = _MODEL_FIELDS.get(f.number)
        if wanted is not None:
            expect(f, wanted)
        if f.number in (2, 3):
            model.producer[f.number - 2] = wire.text(f, MAX_TEXT)
        elif f.number == 7:
            model.graph = f
        elif f.number == 14 and len(model.metadata) < MAX_METADATA:
            key, value = wire.string_pair(f, MAX_TEXT)
            model.metadata.setdefault(key, value)
    return model


def _read_graph(wire: Wire, graph_field: Field) -> _Graph:
    graph = _Graph()
    nodes = 0
    for f in wire.fields(graph_field.at, graph_field.end):
        wanted = _GRAPH_FIELDS.get(f.number)
        if wanted is not None:
            expect(f, wanted)
        if f.number == 1:
            nodes += 1
            if nodes <= CHECKED_NODES:
                check_node(wire, f, _NODE_FIELDS, 4)
            _read_node(wire, f, graph)
        elif f.number == 2:
            graph.name = wire.text(f, MAX_TEXT)
        elif f.number == 5:
            _add_initializer(wire, f, graph)
        elif f.number == 15:
            _add_sparse_tensor(wire, f, graph)
    return graph


def _read_node(wire: Wire, node: Field, graph: _Graph) -> None:
    """Keep the nodes the weight count needs: quantized operators, contrib operators, and
    Constant nodes, whose value tensor is a weight (PaddlePaddle exports hold weights so)."""
    fields = [f for f in wire.fields(node.at, node.end) if f.wire_type == LEN]
    op = next((wire.text(f, MAX_TEXT) for f in fields if f.number == 4), "")
    domain = next((wire.text(f, MAX_TEXT) for f in fields if f.number == 7), "")
    if op == "Constant":
        _add_constant(wire, fields, graph)
    elif op in STATE_INPUTS or domain == "com.microsoft":
        inputs = [wire.text(f, MAX_LOCATION) for f in fields if f.number == 1][:MAX_INPUTS]
        ints = dict(_int_attribute(wire, f) for f in fields if f.number == 5)
        graph.nodes.append(Node(op, domain, tuple(inputs), ints))


def _int_attribute(wire: Wire, attribute: Field) -> tuple[str, int]:
    name, value = "", 0
    for f in wire.fields(attribute.at, attribute.end):
        if f.number == 1 and f.wire_type == LEN:
            name = wire.text(f, MAX_TEXT)
        elif f.number == 3 and f.wire_type == VARINT:
            value = signed64(f.value)
    return name, value


def _add_constant(wire: Wire, fields: list[Field], graph: _Graph) -> None:
    output = next((wire.text(f, MAX_LOCATION) for f in fields if f.number == 2), "")
    for attribute in (f for f in fields if f.number == 5):
        for f in wire.fields(attribute.at, attribute.end):
            if f.number == 5 and f.wire_type == LEN:  # AttributeProto.t, a TensorProto
                tensor = _read_tensor(wire, f)
                graph.tensors[output or f"@{f.at}"] = (tensor.elements, tensor.label)


def _read_tensor(wire: Wire, tensor: Field) -> _Tensor:
    dims: list[int] = []
    found = _Tensor()
    external = False
    for f in wire.fields(tensor.at, tensor.end):
        if f.number == 1:
            dims += wire.varints(f, MAX_DIMS)
            if len(dims) > MAX_DIMS:
                raise FormatError(FORMAT, f.at, f"tensor has over {MAX_DIMS} dims")
        elif f.number == 2:
            expect(f, VARINT)
            found.label = DATA_TYPES.get(f.value, "?")
        elif f.number == 8:
            expect(f, LEN)
            found.name = wire.text(f, MAX_LOCATION)
        elif f.number == 13:
            expect(f, LEN)
            key, value = wire.string_pair(f, MAX_LOCATION)
            found.location = value if key == "location" else found.location
        elif f.number == 14:
            expect(f, VARINT)
            external = f.value == EXTERNAL
    if any(signed64(d) < 0 for d in dims):
        raise FormatError(FORMAT, tensor.at, f"tensor has a negative dimension in {dims}")
    found.elements = math.prod(dims)
    found.location = found.location if external else None
    return found


def _add_initializer(wire: Wire, field: Field, graph: _Graph, *, named: bool = True) -> None:
    tensor = _read_tensor(wire, field)
    graph.initializers += 1
    if named and tensor.name and tensor.name not in graph.tensors:
        graph.tensors[tensor.name] = (tensor.elements, tensor.label)
    else:
        graph.unnamed.append((tensor.elements, tensor.label))
    if tensor.location and len(graph.companions) < MAX_COMPANIONS:
        graph.companions[tensor.location] = None


def _add_sparse_tensor(wire: Wire, sparse: Field, graph: _Graph) -> None:
    """A SparseTensorProto's stored values (field 1) are its parameters."""
    for f in wire.fields(sparse.at, sparse.end):
        if f.number == 1:
            expect(f, LEN)
            _add_initializer(wire, f, graph, named=False)


def _dominant(by_label: dict[str, int]) -> str | None:
    known = {label: n for label, n in by_label.items() if label != "?" and n > 0}
    if not known:
        return None
    return max(sorted(known.items()), key=lambda kv: kv[1])[0]
