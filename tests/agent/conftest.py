"""Small real model files, written at test time by the formats' own writer libraries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
import pytest
from safetensors.numpy import save_file

TOKEN_COUNT = 5000

MakeGguf = Callable[..., Path]


def _write_gguf(
    path: Path,
    *,
    file_type: int | None = gguf.LlamaFileType.MOSTLY_Q8_0,
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
    tokens: int = TOKEN_COUNT,
) -> Path:
    writer = gguf.GGUFWriter(path, "llama", endianess=endianess)
    writer.add_name("Tiny Llama Test")
    writer.add_context_length(4096)
    writer.add_license("apache-2.0")
    if file_type is not None:
        writer.add_file_type(file_type)
    if tokens:
        writer.add_token_list([f"tok{i}" for i in range(tokens)])
        writer.add_token_scores([float(i) for i in range(tokens)])
        writer.add_token_types([1] * tokens)
    rng = np.random.default_rng(7)
    writer.add_tensor("token_embd.weight", rng.random((64, 32), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((32, 32), dtype=np.float16))
    # Q8_0 is written as raw blocks: 34 bytes hold 32 elements, so 32x68 bytes are 32x64.
    q8_blocks = np.zeros((32, 68), dtype=np.uint8)
    writer.add_tensor("blk.0.ffn_down.weight", q8_blocks, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def make_gguf(tmp_path_factory: pytest.TempPathFactory) -> MakeGguf:
    """Build a small llama-style GGUF; keywords vary file type, byte order and vocabulary."""

    def make(name: str = "model.gguf", **options: Any) -> Path:
        path = tmp_path_factory.mktemp("gguf") / name
        return _write_gguf(path, **options)

    return make


@pytest.fixture(scope="session")
def gguf_model(make_gguf: MakeGguf) -> Path:
    return make_gguf()


@pytest.fixture(scope="session")
def small_gguf(make_gguf: MakeGguf) -> Path:
    """The same model with an 8-token vocabulary: small enough to cut at every length."""
    return make_gguf("small.gguf", tokens=8)


@pytest.fixture(scope="session")
def safetensors_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mixed dtypes where F16 holds most elements, with string metadata."""
    path = tmp_path_factory.mktemp("safetensors") / "model.safetensors"
    tensors: dict[str, npt.NDArray[Any]] = {
        "embed.weight": np.ones((100, 16), dtype=np.float16),
        "layer.0.weight": np.ones((16, 16), dtype=np.float32),
        "layer.1.weight": np.ones((16, 16), dtype=np.float32),
        "layer.1.bias": np.ones(16, dtype=np.int8),
    }
    save_file(tensors, str(path), metadata={"format": "pt", "architecture": "TinyNet"})
    return path
