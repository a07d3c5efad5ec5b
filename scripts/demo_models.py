"""Write small but real model files with the formats' own libraries, for the demo.

Also one dangerous pickle, written opcode by opcode and never loaded: loading it would run
a shell command through os.system, which is what the agent reports without loading it.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import onnx
from gguf import GGUFWriter
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

ONNX_NAME = "iris-classifier.onnx"
PICKLE_NAME = "sentiment-head.pkl"
PICKLE_COMMAND = b"echo this is what a malicious model would run"


def write_gguf(path: Path, *, name: str = "demo-llama", layers: int = 2) -> Path:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(4096)
    writer.add_license("apache-2.0")
    writer.add_file_type(1)  # MOSTLY_F16
    writer.add_tensor("token_embd.weight", np.zeros((256, 64), dtype=np.float16))
    for layer in range(layers):
        writer.add_tensor(f"blk.{layer}.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
        writer.add_tensor(f"blk.{layer}.ffn_up.weight", np.zeros((64, 128), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_safetensors(path: Path) -> Path:
    tensors = {
        "embed.weight": np.zeros((128, 32), dtype=np.float32),
        "head.weight": np.zeros((32, 10), dtype=np.float32),
    }
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def write_onnx(path: Path) -> Path:
    """A three-class classifier over four features: softmax(x @ W + b), batch of any size."""
    rng = np.random.default_rng(7)
    weights = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.array([0.1, 0.0, -0.1], dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["logits"]),
            helper.make_node("Add", ["logits", "b"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["y"], axis=1),
        ],
        "iris_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[weights, bias],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="shadowai-demo"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def dangerous_pickle() -> bytes:
    """os.system(PICKLE_COMMAND) on load: GLOBAL os.system, the argument, TUPLE1, REDUCE."""
    return b"".join(
        [
            pickle.PROTO + bytes([2]),
            pickle.GLOBAL + b"os\nsystem\n",
            pickle.BINUNICODE + struct.pack("<I", len(PICKLE_COMMAND)) + PICKLE_COMMAND,
            pickle.TUPLE1,
            pickle.REDUCE,
            pickle.STOP,
        ]
    )


def write_demo_folder(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.txt").write_text("Not a model: the agent must not report this file.\n")
    (folder / PICKLE_NAME).write_bytes(dangerous_pickle())
    return [
        write_gguf(folder / "demo-llama-f16.gguf"),
        # Renamed on purpose: identification is by content, not by extension.
        write_gguf(folder / "notes.bin", name="renamed-llama", layers=1),
        write_safetensors(folder / "classifier.safetensors"),
        write_onnx(folder / ONNX_NAME),
        folder / PICKLE_NAME,
    ]
