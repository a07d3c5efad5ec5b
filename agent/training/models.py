"""Small real models for the capture workloads, written by each format's own library.

Nothing is downloaded: weights are random, shapes are those of a small real network, so the
runtimes load, map and run them as they would a model from a hub.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0


def onnx_mlp(path: Path, width: int = 512) -> Path:
    """A 3-layer MLP (input x: [batch, width]) in ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    shapes = [(width, 2 * width), (2 * width, width), (width, 16)]
    weights = [
        numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), f"w{i}")
        for i, s in enumerate(shapes)
    ]
    nodes, current = [], "x"
    for i in range(len(shapes)):
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"h{i}"]))
        current = f"h{i}"
        if i < len(shapes) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", 16])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _torch_mlp(width: int) -> Any:
    import torch

    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(width, 2 * width),
        torch.nn.ReLU(),
        torch.nn.Linear(2 * width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 16),
    )


def torchscript_mlp(path: Path, width: int = 512) -> Path:
    import torch

    torch.jit.script(_torch_mlp(width)).save(str(path))
    return path


def torch_state_dict(path: Path, width: int = 512) -> Path:
    import torch

    torch.save(_torch_mlp(width).state_dict(), str(path))
    return path


def hf_tiny_llama(folder: Path) -> Path:
    """A 2-layer Llama saved by transformers (config.json + model.safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=4096,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


def keras_mlp(path: Path, width: int = 256) -> Path:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras  # type: ignore[import-untyped]  # no stubs

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((width,)),
            keras.layers.Dense(2 * width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(16),
        ]
    )
    model.save(str(path))
    return path


def gguf_llama(path: Path, vocab: int = 4096, embed: int = 512, blocks: int = 2) -> Path:
    """A llama model llama.cpp loads and runs: SentencePiece-style vocabulary, F32 weights."""
    import gguf

    ff, heads = 2 * embed, 8
    special = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    words = ["▁", "a", "b", "▁a"] + [f"▁w{i}" for i in range(vocab - len(special) - 4)]
    tokens = special + words
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("capture-llama")
    writer.add_context_length(512)
    writer.add_embedding_length(embed)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(embed // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3, *([6] * 256), *([1] * len(words))])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    rng = np.random.default_rng(SEED)

    def weights(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    weights("token_embd.weight", len(tokens), embed)
    weights("output.weight", len(tokens), embed)
    writer.add_tensor("output_norm.weight", np.ones(embed, dtype=np.float32))
    for block in range(blocks):
        writer.add_tensor(f"blk.{block}.attn_norm.weight", np.ones(embed, dtype=np.float32))
        writer.add_tensor(f"blk.{block}.ffn_norm.weight", np.ones(embed, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            weights(f"blk.{block}.attn_{part}.weight", embed, embed)
        weights(f"blk.{block}.ffn_gate.weight", ff, embed)
        weights(f"blk.{block}.ffn_up.weight", ff, embed)
        weights(f"blk.{block}.ffn_down.weight", embed, ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_all(work: Path) -> dict[str, Path]:
    """Every model the workloads use, under `work`, keyed by the name the commands use."""
    for folder in (work, work / "models", work / "hf"):
        folder.mkdir(parents=True, exist_ok=True)
    built = {
        "onnx": onnx_mlp(work / "mlp.onnx"),
        "torchscript": torchscript_mlp(work / "mlp-scripted.pt"),
        "state_dict": torch_state_dict(work / "mlp-weights.pth"),
        "hf": hf_tiny_llama(work / "hf" / "tiny-llama"),
        "keras": keras_mlp(work / "mlp.keras"),
        "gguf": gguf_llama(work / "models" / "capture-llama-f32.gguf"),
    }
    # The renamed copy: a GGUF under a neutral name and folder, as a disguised runtime has it.
    disguised = work / "data" / "blob.dat"
    disguised.parent.mkdir(parents=True, exist_ok=True)
    disguised.write_bytes(built["gguf"].read_bytes())
    built["disguised"] = disguised
    return built
