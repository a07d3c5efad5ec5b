"""Model folders laid out as MLX, GPTQ, bitsandbytes, ONNX Runtime GenAI and GGUF write them,
at their full apparent size: headers and configs are real, the data regions are sparse.

Tensor names and shapes come from transformers' own model classes built on the meta device,
so a layout holds exactly the weights the real model has; the tests and bench/quantized.py
share these writers.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import onnx
import torch
import transformers
from onnx import TensorProto, helper

Tensor = tuple[str, str, tuple[int, ...]]  # name, safetensors dtype, shape
BITS = {"BF16": 16, "F16": 16, "F32": 32, "U32": 32, "I32": 32, "U8": 8, "I8": 8, "I64": 64}
SHARD_BYTES = 5 << 30

LLAMA_70B = {
    "vocab_size": 128256,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "architectures": ["LlamaForCausalLM"],
}
QWEN25_7B = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "architectures": ["Qwen2ForCausalLM"],
}
# NVIDIA Nemotron 3 Nano 30B-A3B: Mamba-2 (M), MoE (E) and attention (*) layers.
NEMOTRON_3_NANO = {
    "hidden_size": 2688,
    "num_hidden_layers": 52,
    "hybrid_override_pattern": "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME",
    "n_routed_experts": 128,
    "num_experts_per_tok": 6,
    "moe_intermediate_size": 1856,
    "moe_shared_expert_intermediate_size": 3712,
    "n_shared_experts": 1,
    "mamba_num_heads": 64,
    "mamba_head_dim": 64,
    "ssm_state_size": 128,
    "n_groups": 8,
    "num_attention_heads": 32,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "vocab_size": 131072,
    "max_position_embeddings": 262144,
    "architectures": ["NemotronHForCausalLM"],
}


def hf_config(model_type: str, values: dict[str, Any]) -> transformers.PretrainedConfig:
    """transformers' own config class for `model_type` with the given values."""
    return transformers.AutoConfig.for_model(model_type, **values)


def weight_shapes(config: transformers.PretrainedConfig) -> dict[str, tuple[int, ...]]:
    """Every stored weight of the model transformers builds from `config`, without memory."""
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        shapes.pop("lm_head.weight", None)
    return shapes


def parameters(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes.values())


def _linear(name: str, shape: tuple[int, ...]) -> bool:
    return name.endswith(".weight") and len(shape) == 2 and "norm" not in name


def plain_tensors(shapes: dict[str, tuple[int, ...]], dtype: str = "BF16") -> list[Tensor]:
    return [(name, dtype, shape) for name, shape in shapes.items()]


def mlx_tensors(shapes: dict[str, tuple[int, ...]], bits: int, group_size: int) -> list[Tensor]:
    """mlx-lm's affine quantization of every Linear and Embedding: a uint32 weight packing
    32 / bits values per word, BF16 scales and biases per group."""
    out: list[Tensor] = []
    for name, shape in shapes.items():
        if _linear(name, shape) and shape[-1] % group_size == 0:
            module = name.removesuffix(".weight")
            rows, cols = shape
            out.append((name, "U32", (rows, cols * bits // 32)))
            out.append((module + ".scales", "BF16", (rows, cols // group_size)))
            out.append((module + ".biases", "BF16", (rows, cols // group_size)))
        else:
            out.append((name, "BF16", shape))
    return out


def gptq_tensors(shapes: dict[str, tuple[int, ...]], bits: int, group_size: int) -> list[Tensor]:
    """AutoGPTQ's layout for the decoder's Linear layers; embeddings and head stay F16."""
    out: list[Tensor] = []
    for name, shape in shapes.items():
        if _linear(name, shape) and ".layers." in name:
            module = name.removesuffix(".weight")
            n_out, n_in = shape
            groups = n_in // group_size
            out.append((module + ".qweight", "I32", (n_in * bits // 32, n_out)))
            out.append((module + ".qzeros", "I32", (groups, n_out * bits // 32)))
            out.append((module + ".scales", "F16", (groups, n_out)))
            out.append((module + ".g_idx", "I32", (n_in,)))
        else:
            out.append((name, "F16", shape))
    return out


def bnb4_tensors(shapes: dict[str, tuple[int, ...]], block: int = 64) -> list[Tensor]:
    """bitsandbytes NF4 as transformers serializes it: weights packed two per byte in a
    [n / 2, 1] uint8, absmax per block, a 16-entry quant map and the JSON quant state."""
    out: list[Tensor] = []
    for name, shape in shapes.items():
        if _linear(name, shape) and ".layers." in name:
            n = math.prod(shape)
            out.append((name, "U8", (n // 2, 1)))
            out.append((name + ".absmax", "F32", (n // block,)))
            out.append((name + ".quant_map", "F32", (16,)))
            out.append((name + ".quant_state.bitsandbytes__nf4", "U8", (120,)))
        else:
            out.append((name, "F16", shape))
    return out


def _nbytes(dtype: str, shape: Sequence[int]) -> int:
    return math.prod(shape) * BITS[dtype] // 8


def write_safetensors(
    path: Path, tensors: Sequence[Tensor], metadata: dict[str, str] | None = None
) -> int:
    """A safetensors file: the real header, a sparse data region. Returns its size."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, dtype, shape in tensors:
        end = offset + _nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        f.truncate(8 + len(encoded) + offset)
    return 8 + len(encoded) + offset


def write_shards(
    folder: Path,
    tensors: Sequence[Tensor],
    *,
    metadata: dict[str, str] | None = None,
    shard_bytes: int = SHARD_BYTES,
) -> list[Path]:
    """transformers' / mlx-lm's shards: model-0000i-of-0000N.safetensors and the index."""
    shards: list[list[Tensor]] = [[]]
    size = 0
    for tensor in tensors:
        nbytes = _nbytes(tensor[1], tensor[2])
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(tensor)
        size += nbytes
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(folder / name, shard, metadata)
        weight_map.update((t[0], name) for t in shard)
        paths.append(folder / name)
    total = sum(_nbytes(t[1], t[2]) for t in tensors)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return paths


def write_config(folder: Path, config: transformers.PretrainedConfig, **extra: Any) -> None:
    """config.json as save_pretrained writes it, plus the quantizer's keys."""
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    path = folder / "config.json"
    values = json.loads(path.read_text())
    values.update(extra)
    path.write_text(json.dumps(values, indent=2))


def mlx_folder(
    folder: Path, model_type: str, values: dict[str, Any], bits: int = 4, group_size: int = 64
) -> int:
    """An mlx-community folder; returns the weights before quantization."""
    config = hf_config(model_type, values)
    shapes = weight_shapes(config)
    quantization = {"group_size": group_size, "bits": bits}
    write_config(folder, config, quantization=quantization, quantization_config=quantization)
    write_shards(folder, mlx_tensors(shapes, bits, group_size), metadata={"format": "mlx"})
    return parameters(shapes)


def gptq_folder(
    folder: Path, model_type: str, values: dict[str, Any], bits: int = 4, group_size: int = 128
) -> int:
    config = hf_config(model_type, values)
    shapes = weight_shapes(config)
    quantization = {
        "quant_method": "gptq",
        "bits": bits,
        "group_size": group_size,
        "desc_act": True,
        "sym": True,
    }
    write_config(folder, config, quantization_config=quantization)
    write_shards(folder, gptq_tensors(shapes, bits, group_size))
    return parameters(shapes)


def plain_folder(folder: Path, model_type: str, values: dict[str, Any]) -> int:
    config = hf_config(model_type, values)
    shapes = weight_shapes(config)
    write_config(folder, config)
    write_shards(folder, plain_tensors(shapes))
    return parameters(shapes)


def _external(name: str, dtype: int, shape: Sequence[int], offset: int, nbytes: int) -> Any:
    tensor = TensorProto(name=name, data_type=dtype, dims=list(shape))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "model.onnx.data"), ("offset", offset), ("length", nbytes)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)
    return tensor


def onnx_genai_folder(
    folder: Path, model_type: str, values: dict[str, Any], block_size: int = 32
) -> int:
    """ONNX Runtime GenAI's int4 layout: every Linear a MatMulNBits (4 bits, blocks of
    `block_size`, uint8 zero points), embeddings and norms F16, weights in model.onnx.data."""
    config = hf_config(model_type, values)
    shapes = weight_shapes(config)
    folder.mkdir(parents=True, exist_ok=True)
    initializers, nodes, offset = [], [], 0

    def add(name: str, dtype: int, shape: Sequence[int], nbytes: int) -> None:
        nonlocal offset
        initializers.append(_external(name, dtype, shape, offset, nbytes))
        offset += nbytes

    for name, shape in shapes.items():
        if _linear(name, shape) and "embed" not in name:
            n, k = shape
            blocks = k // block_size
            add(name + ".qweight", TensorProto.UINT8, (n, blocks, block_size // 2), n * k // 2)
            add(name + ".scales", TensorProto.FLOAT16, (n * blocks,), n * blocks * 2)
            zero_points = n * math.ceil(blocks / 2)
            add(name + ".zp", TensorProto.UINT8, (zero_points,), zero_points)
            inputs = ["hidden", name + ".qweight", name + ".scales", name + ".zp"]
            nodes.append(
                helper.make_node(
                    "MatMulNBits",
                    inputs,
                    [name + ".out"],
                    domain="com.microsoft",
                    K=k,
                    N=n,
                    bits=4,
                    block_size=block_size,
                    accuracy_level=4,
                )
            )
        else:
            add(name, TensorProto.FLOAT16, shape, math.prod(shape) * 2)
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, shapes_hidden(shapes)])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="onnxruntime-genai",
        producer_version="0.8.0",
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
    )
    onnx.save(model, folder / "model.onnx")
    with open(folder / "model.onnx.data", "wb") as f:
        f.truncate(offset)
    genai = {
        "model": {
            "type": model_type,
            "context_length": config.max_position_embeddings,
            "vocab_size": config.vocab_size,
            "decoder": {"filename": "model.onnx", "num_hidden_layers": config.num_hidden_layers},
        },
        "search": {"max_length": config.max_position_embeddings},
    }
    (folder / "genai_config.json").write_text(json.dumps(genai, indent=2))
    return parameters(shapes)


def shapes_hidden(shapes: dict[str, tuple[int, ...]]) -> int:
    return next(s[-1] for n, s in shapes.items() if "embed" in n)


def gguf_file(
    path: Path,
    arch: str,
    shapes: dict[str, tuple[int, ...]],
    *,
    name: str,
    context_length: int,
    qtype: gguf.GGMLQuantizationType = gguf.GGMLQuantizationType.Q4_K,
    file_type: int = gguf.LlamaFileType.MOSTLY_Q4_K_M,
    tokens: int = 0,
    merges: int = 0,
) -> int:
    """A GGUF written by the gguf package: `qtype` for 2-D weights whose rows split into its
    blocks, F32 for the rest, a BPE tokenizer of `tokens` and `merges` as llama.cpp's
    converter stores it; the data region sparse. Returns the weights it holds."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_file_type(file_type)
    if tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"tok{i}" for i in range(tokens)])
        writer.add_token_types([1] * tokens)
        writer.add_token_merges([f"t{i} k{i}" for i in range(merges)])
    block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    data = 0
    for tensor_name, shape in shapes.items():
        quantized = len(shape) == 2 and shape[-1] % block == 0
        if quantized:
            byte_shape = (*shape[:-1], shape[-1] // block * block_bytes)
            nbytes = math.prod(byte_shape)
            writer.add_tensor_info(tensor_name, byte_shape, np.dtype(np.uint8), nbytes, qtype)
        else:
            nbytes = math.prod(shape) * 4
            writer.add_tensor_info(tensor_name, shape, np.dtype(np.float32), nbytes)
        data += nbytes + (-nbytes % gguf.GGUF_DEFAULT_ALIGNMENT)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    align = gguf.GGUF_DEFAULT_ALIGNMENT
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size + (-size % align) + data)
    return parameters(shapes)


def apparent_size(paths: Iterable[Path]) -> int:
    return sum(os.path.getsize(p) for p in paths)
