"""Writers for the binary-header format tests: real files from the formats' own libraries.

onnx.helper, tflite's generated FlatBuffer builders, coremltools' Model protobuf, tensorboard's
MetaGraphDef, numpy and h5py write these; where a library has no writer for a legacy layout
(GGML), the bytes are packed by hand after llama.cpp's old loader.
"""

from __future__ import annotations

import importlib
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import flatbuffers  # type: ignore[import-untyped]
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from agent.detect.formats import ModelInfo, ReadAt
from agent.errors import FormatError


@dataclass
class Reads:
    """A ReadAt over bytes that records every request, to check reads stay inside the file."""

    data: bytes
    largest: int = 0
    furthest: int = 0
    calls: int = 0

    def __call__(self, offset: int, length: int) -> bytes:
        assert offset >= 0 and length >= 0
        self.calls += 1
        self.largest = max(self.largest, length)
        self.furthest = max(self.furthest, offset + length)
        return self.data[offset : offset + length]

    def within_file(self) -> bool:
        return self.furthest <= len(self.data)


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


class FormatModule(Protocol):
    """What every format module offers."""

    def claims(self, head: bytes, size: int) -> bool: ...

    def parse(self, read_at: ReadAt, size: int) -> ModelInfo | None: ...


def outcome(
    module: FormatModule, data: bytes, *, force: bool = False
) -> ModelInfo | FormatError | None:
    """What identification makes of `data` through one module: claims on the first 4096
    bytes, then parse (always, with force). Any exception but FormatError propagates, and
    no read may reach past the end of the data."""
    reads = Reads(data)
    try:
        if not (force or module.claims(data[:4096], len(data))):
            return None
        return module.parse(reads, len(data))
    except FormatError as e:
        return e
    finally:
        assert reads.within_file(), f"read up to {reads.furthest} of {len(data)} bytes"


def parsed(module: FormatModule, data: bytes) -> ModelInfo:
    """The ModelInfo of data the module must claim and read."""
    assert module.claims(data[:4096], len(data))
    info = module.parse(reader(data), len(data))
    assert info is not None
    return info


# ONNX ---------------------------------------------------------------------------------------

ONNX_WEIGHT_SHAPE = (64, 32)
ONNX_PARAMETERS = 64 * 32 + 32


def onnx_model(
    *, weight_type: type = np.float16, metadata: dict[str, str] | None = None
) -> onnx.ModelProto:
    """y = x @ W + b with W of `weight_type` (64x32) and an F32 bias (32), as an exporter writes."""
    weight: np.ndarray[Any, Any] = np.ones(ONNX_WEIGHT_SHAPE, dtype=weight_type)
    bias = np.zeros(32, dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["W"], ["Wf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["x", "Wf"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(
        graph,
        producer_name="pytorch",
        producer_version="2.3.0",
        opset_imports=[helper.make_opsetid("", 17)],
    )
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model)
    return model


# TFLite -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TfliteTensor:
    name: str
    shape: tuple[int, ...]
    tensor_type: int  # tflite TensorType: 0 FLOAT32, 1 FLOAT16, 9 INT8, ...
    data: bytes | None = None  # constant data; None for an activation


def _tfl(name: str) -> Any:
    """A module of tflite's generated code; the package re-exports its classes under the
    module names, and the builder functions live in the modules."""
    return importlib.import_module(f"tflite.{name}")


def tflite_model(
    tensors: Sequence[TfliteTensor],
    *,
    description: str = "MLIR Converted.",
    metadata: bytes | None = None,
) -> bytes:
    """A TFLite Model with one subgraph holding `tensors` and one FULLY_CONNECTED operator;
    `metadata` goes into the last buffer under the name TFLITE_METADATA."""
    model = _tfl("Model")
    b = flatbuffers.Builder(1024)
    blobs: list[bytes] = [b""] + [t.data for t in tensors if t.data is not None]
    if metadata is not None:
        blobs.append(metadata)
    buffers = [_tflite_buffer(b, blob) for blob in blobs]
    tensor_tables = _tflite_tensors(b, tensors)
    operator = _tflite_operator(b, _tfl("Operator"), len(tensors))
    subgraph = _tflite_subgraph(b, _tfl("SubGraph"), tensor_tables, operator)
    code = _tflite_operator_code(b)
    meta = None if metadata is None else _tflite_metadata_entry(b, len(blobs) - 1)
    desc = b.CreateString(description)
    codes = _table_vector(b, model.ModelStartOperatorCodesVector, [code])
    subgraphs = _table_vector(b, model.ModelStartSubgraphsVector, [subgraph])
    buffer_vector = _table_vector(b, model.ModelStartBuffersVector, buffers)
    metas = None if meta is None else _table_vector(b, model.ModelStartMetadataVector, [meta])
    model.ModelStart(b)
    model.ModelAddVersion(b, 3)
    model.ModelAddOperatorCodes(b, codes)
    model.ModelAddSubgraphs(b, subgraphs)
    model.ModelAddDescription(b, desc)
    model.ModelAddBuffers(b, buffer_vector)
    if metas is not None:
        model.ModelAddMetadata(b, metas)
    b.Finish(model.ModelEnd(b), file_identifier=b"TFL3")
    data = bytes(b.Output())
    assert model.Model.GetRootAs(data).SubgraphsLength() == 1
    return data


def _tflite_buffer(b: Any, blob: bytes) -> int:
    buffer = _tfl("Buffer")
    data = b.CreateByteVector(blob) if blob else None
    buffer.BufferStart(b)
    if data is not None:
        buffer.BufferAddData(b, data)
    result: int = buffer.BufferEnd(b)
    return result


def _tflite_tensors(b: Any, tensors: Sequence[TfliteTensor]) -> list[int]:
    """Tensor tables; constants name buffers 1, 2, ... in order (0 is the empty sentinel)."""
    tensor = _tfl("Tensor")
    tables = []
    next_buffer = 1
    for t in tensors:
        name = b.CreateString(t.name)
        shape = _int_vector(b, t.shape)
        tensor.TensorStart(b)
        tensor.TensorAddShape(b, shape)
        tensor.TensorAddType(b, t.tensor_type)
        tensor.TensorAddName(b, name)
        if t.data is not None:
            tensor.TensorAddBuffer(b, next_buffer)
            next_buffer += 1
        tables.append(tensor.TensorEnd(b))
    return tables


def _tflite_operator_code(b: Any) -> int:
    code = _tfl("OperatorCode")
    code.OperatorCodeStart(b)
    code.OperatorCodeAddBuiltinCode(b, 9)  # FULLY_CONNECTED
    code.OperatorCodeAddDeprecatedBuiltinCode(b, 9)
    code.OperatorCodeAddVersion(b, 1)
    result: int = code.OperatorCodeEnd(b)
    return result


def _tflite_metadata_entry(b: Any, buffer_index: int) -> int:
    metadata = _tfl("Metadata")
    name = b.CreateString("TFLITE_METADATA")
    metadata.MetadataStart(b)
    metadata.MetadataAddName(b, name)
    metadata.MetadataAddBuffer(b, buffer_index)
    result: int = metadata.MetadataEnd(b)
    return result


def _table_vector(b: Any, start: Callable[[Any, int], None], tables: Sequence[int]) -> int:
    start(b, len(tables))
    for table in reversed(tables):
        b.PrependUOffsetTRelative(table)
    result: int = b.EndVector()
    return result


def _int_vector(b: Any, values: Sequence[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependInt32(v)
    result: int = b.EndVector()
    return result


def _tflite_operator(b: Any, operator: Any, n_tensors: int) -> int:
    inputs = _int_vector(b, list(range(n_tensors - 1)))
    outputs = _int_vector(b, [n_tensors - 1])
    operator.OperatorStart(b)
    operator.OperatorAddOpcodeIndex(b, 0)
    operator.OperatorAddInputs(b, inputs)
    operator.OperatorAddOutputs(b, outputs)
    result: int = operator.OperatorEnd(b)
    return result


def _tflite_subgraph(b: Any, subgraph: Any, tensors: Sequence[int], operator: int) -> int:
    tensor_vector = _table_vector(b, subgraph.SubGraphStartTensorsVector, tensors)
    inputs = _int_vector(b, [0])
    outputs = _int_vector(b, [len(tensors) - 1])
    operators = _table_vector(b, subgraph.SubGraphStartOperatorsVector, [operator])
    name = b.CreateString("main")
    subgraph.SubGraphStart(b)
    subgraph.SubGraphAddTensors(b, tensor_vector)
    subgraph.SubGraphAddInputs(b, inputs)
    subgraph.SubGraphAddOutputs(b, outputs)
    subgraph.SubGraphAddOperators(b, operators)
    subgraph.SubGraphAddName(b, name)
    result: int = subgraph.SubGraphEnd(b)
    return result


def tflite_metadata(name: str, license: str) -> bytes:
    """A ModelMetadata FlatBuffer ("M001") as metadata_schema.fbs lays it out: name is field
    0, version 2, author 4, license 5."""
    b = flatbuffers.Builder(256)
    texts = [b.CreateString(s) for s in (name, "v1", "the team", license)]
    b.StartObject(6)
    for slot, text in zip((0, 2, 4, 5), texts, strict=True):
        b.PrependUOffsetTRelativeSlot(slot, text, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def tflite_weights() -> list[TfliteTensor]:
    """Input 1x16, an INT8 16x8 kernel, an F32 bias of 8, output 1x8: 136 parameters."""
    return [
        TfliteTensor("input", (1, 16), 0),
        TfliteTensor("kernel", (16, 8), 9, bytes(16 * 8)),
        TfliteTensor("bias", (8,), 0, bytes(8 * 4)),
        TfliteTensor("output", (1, 8), 0),
    ]


# GGML (legacy llama.cpp) --------------------------------------------------------------------


@dataclass(frozen=True)
class GgmlTensor:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    block: tuple[int, int] = (1, 4)  # elements per block, bytes per block


def ggml_file(
    magic: bytes,
    version: int | None,
    tensors: Sequence[GgmlTensor],
    *,
    ftype: int = 0,
    vocab: Sequence[bytes] = (b"<s>", b"</s>", b"hello"),
) -> bytes:
    """A legacy file as llama.cpp's old writer laid it out: magic, version, seven int32 hparams,
    the vocabulary (with f32 scores from GGMF on), then tensors, 32-byte aligned in GGJT."""
    out = bytearray(magic)
    if version is not None:
        out += struct.pack("<I", version)
    out += struct.pack("<7i", len(vocab), 64, 256, 4, 2, 16, ftype)
    for token in vocab:
        out += struct.pack("<I", len(token)) + token
        if magic != b"lmgg":
            out += struct.pack("<f", 0.0)
    for t in tensors:
        name = t.name.encode()
        out += struct.pack("<iiI", len(t.dims), len(name), t.ggml_type)
        out += struct.pack(f"<{len(t.dims)}i", *t.dims) + name
        if magic == b"tjgg":
            out += bytes(-len(out) % 32)
        elements = math.prod(t.dims)
        out += bytes(elements // t.block[0] * t.block[1])
    return bytes(out)


# SavedModel ---------------------------------------------------------------------------------


def saved_model_class() -> Any:
    """tensorflow's SavedModel message, described with protobuf's descriptor API on top of the
    MetaGraphDef that tensorboard compiles: the same two fields as saved_model.proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorboard.compat.proto import meta_graph_pb2  # type: ignore[import-untyped]

    pool = descriptor_pool.Default()
    name = "shadowai_test/saved_model.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(
            name=name,
            package="shadowai_test",
            syntax="proto3",
            dependency=[meta_graph_pb2.DESCRIPTOR.name],
        )
        message = proto.message_type.add(name="SavedModel")
        field = descriptor_pb2.FieldDescriptorProto
        message.field.add(
            name="saved_model_schema_version", number=1, type=field.TYPE_INT64,
            label=field.LABEL_OPTIONAL,
        )  # fmt: skip
        message.field.add(
            name="meta_graphs", number=2, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
            type_name="." + meta_graph_pb2.MetaGraphDef.DESCRIPTOR.full_name,
        )  # fmt: skip
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shadowai_test.SavedModel"))


def saved_model(
    variables: Sequence[tuple[tuple[int, ...], int]], *, version: str = "2.15.0", graphs: int = 1
) -> bytes:
    """A SavedModel whose object graph holds variables of (shape, tensorflow DataType)."""
    message = saved_model_class()(saved_model_schema_version=1)
    for _ in range(graphs):
        meta_graph = message.meta_graphs.add()
        meta_graph.meta_info_def.tags.append("serve")
        meta_graph.meta_info_def.tensorflow_version = version
        meta_graph.meta_info_def.tensorflow_git_version = f"v{version}-rc0"
        meta_graph.graph_def.node.add(name="x", op="Placeholder")
        meta_graph.graph_def.node.add(name="dense/kernel", op="VarHandleOp")
        meta_graph.signature_def["serving_default"].method_name = "tensorflow/serving/predict"
        for shape, dtype in variables:
            node = meta_graph.object_graph_def.nodes.add()
            node.variable.dtype = dtype
            for d in shape:
                node.variable.shape.dim.add(size=d)
    data: bytes = message.SerializeToString()
    return data
