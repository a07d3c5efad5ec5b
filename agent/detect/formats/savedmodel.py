"""Read the saved_model.pb of a TensorFlow SavedModel directory (a SavedModel protobuf).

The TensorFlow version comes from each MetaGraphDef's meta_info_def; parameters from
the shapes of the variables in the object graph (TF2). The variables/ files are not opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agent.detect.formats import ModelInfo, ReadAt
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

FORMAT = "tf_savedmodel"
MAX_SCHEMA_VERSION = 8
MAX_TEXT = 256
MAX_DIMS = 32
CHECKED_NODES = 32

# MetaInfoDef field -> wire type; 7 (stripped_default_attrs) is the only scalar.
_META_INFO_FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: VARINT, 8: LEN}
_META_GRAPH_FIELDS = frozenset(range(1, 8))
_GRAPH_DEF_FIELDS = {1: LEN, 2: LEN, 3: VARINT, 4: LEN, 5: LEN}
_NODE_DEF_FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN}
_OBJECT_GRAPH = 7  # MetaGraphDef.object_graph_def
_VARIABLE = 7  # SavedObject.variable

# tensorflow DataType -> the short names used for ai.model.quantization.
DATA_TYPES: dict[int, str] = {
    1: "F32", 2: "F64", 3: "I32", 4: "U8", 5: "I16", 6: "I8", 7: "STRING", 8: "C64", 9: "I64",
    10: "BOOL", 11: "QI8", 12: "QU8", 13: "QI32", 14: "BF16", 15: "QI16", 16: "QU16",
    17: "U16", 18: "C128", 19: "F16", 22: "U32", 23: "U64", 24: "F8_E5M2", 25: "F8_E4M3",
    29: "I4", 30: "U4",
}  # fmt: skip


def claims(head: bytes, size: int) -> bool:
    """True when the head reads as a SavedModel: saved_model_schema_version, then meta graphs
    whose leading fields are MetaGraphDef's."""
    fields = head_fields(head, size)
    if not fields or (fields[0].number, fields[0].wire_type) != (1, VARINT):
        return False
    if not 1 <= fields[0].value <= MAX_SCHEMA_VERSION or len(fields) < 2:
        return False
    for f in fields[1:]:
        if (f.number, f.wire_type) != (2, LEN):
            return False
        inner = head_fields(head, size, f.at, f.end)
        if inner is None or any(
            g.number not in _META_GRAPH_FIELDS or g.wire_type != LEN for g in inner
        ):
            return False
    return True


@dataclass
class _Found:
    tensorflow_version: str = ""
    variables: int = 0
    parameters: int = 0
    elements_by_type: dict[int, int] = field(default_factory=dict)


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for a protobuf that is no SavedModel; FormatError when the framing breaks."""
    wire = Wire(read_at, size, FORMAT)
    found = _Found()
    try:
        _read_saved_model(wire, found)
    except SchemaMismatch:
        return None
    has_variables = found.variables > 0
    return ModelInfo(
        format=FORMAT,
        parameters=found.parameters if has_variables else None,
        quantization=_dominant(found.elements_by_type),
        producer=f"tensorflow {found.tensorflow_version}" if found.tensorflow_version else None,
        tensor_count=found.variables,
        header_bytes=min(wire.bytes_read, size),
    )


def _read_saved_model(wire: Wire, found: _Found) -> None:
    meta_graphs = 0
    for f in wire.fields(0, wire.size):
        if f.number == 1:
            expect(f, VARINT)
        elif f.number == 2:
            expect(f, LEN)
            meta_graphs += 1
            _read_meta_graph(wire, f, found, first=meta_graphs == 1)
        else:
            raise SchemaMismatch(f"field {f.number} is no SavedModel field")
    if meta_graphs == 0:
        raise SchemaMismatch("no meta graph")


def _read_meta_graph(wire: Wire, meta_graph: Field, found: _Found, *, first: bool) -> None:
    """Checks every meta graph; variables come from the first (they all share one set)."""
    parts = 0
    for f in wire.fields(meta_graph.at, meta_graph.end):
        if f.number not in _META_GRAPH_FIELDS:
            continue
        expect(f, LEN)
        if f.number == 1:
            parts += 1
            _read_meta_info(wire, f, found)
        elif f.number == 2:
            parts += 1
            _check_graph_def(wire, f)
        elif f.number == _OBJECT_GRAPH and first:
            _read_object_graph(wire, f, found)
    if not parts:
        raise SchemaMismatch(f"meta graph at byte {meta_graph.at} has no meta info or graph")


def _read_meta_info(wire: Wire, info: Field, found: _Found) -> None:
    for f in wire.fields(info.at, info.end):
        wanted = _META_INFO_FIELDS.get(f.number)
        if wanted is not None:
            expect(f, wanted)
        if f.number == 5 and not found.tensorflow_version:
            found.tensorflow_version = wire.text(f, MAX_TEXT)


def _check_graph_def(wire: Wire, graph: Field) -> None:
    """The first nodes of a GraphDef each name an op."""
    nodes = 0
    for f in wire.fields(graph.at, graph.end):
        wanted = _GRAPH_DEF_FIELDS.get(f.number)
        if wanted is not None:
            expect(f, wanted)
        if f.number == 1 and nodes < CHECKED_NODES:
            nodes += 1
            check_node(wire, f, _NODE_DEF_FIELDS, 2)


def _read_object_graph(wire: Wire, graph: Field, found: _Found) -> None:
    """SavedObjectGraph.nodes (1) -> SavedObject.variable (7) -> dtype (1), shape (2)."""
    for node in wire.fields(graph.at, graph.end):
        if node.number != 1:
            continue
        expect(node, LEN)
        for f in wire.fields(node.at, node.end):
            if f.number == _VARIABLE:
                expect(f, LEN)
                _add_variable(wire, f, found)


def _add_variable(wire: Wire, variable: Field, found: _Found) -> None:
    dtype = 0
    dims: list[int] = []
    for f in wire.fields(variable.at, variable.end):
        if f.number == 1:
            expect(f, VARINT)
            dtype = f.value
        elif f.number == 2:
            expect(f, LEN)
            dims = _shape(wire, f)
    elements = math.prod(dims)
    found.variables += 1
    found.parameters += elements
    found.elements_by_type[dtype] = found.elements_by_type.get(dtype, 0) + elements


def _shape(wire: Wire, shape: Field) -> list[int]:
    """TensorShapeProto.dim (2) -> Dim.size (1); an unknown size (-1) counts as 0 elements."""
    dims: list[int] = []
    for f in wire.fields(shape.at, shape.end):
        if f.number != 2:
            continue
        expect(f, LEN)
        if len(dims) >= MAX_DIMS:
            raise FormatError(FORMAT, f.at, f"variable shape has over {MAX_DIMS} dims")
        size = 0
        for g in wire.fields(f.at, f.end):
            if g.number == 1:
                expect(g, VARINT)
                size = signed64(g.value)
        dims.append(max(size, 0))
    return dims


def _dominant(elements_by_type: dict[int, int]) -> str | None:
    known = {t: n for t, n in elements_by_type.items() if t in DATA_TYPES and n > 0}
    if not known:
        return None
    return DATA_TYPES[max(sorted(known.items()), key=lambda kv: kv[1])[0]]
