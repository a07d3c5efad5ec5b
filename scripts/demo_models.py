"""Write small but real model files with the formats' own libraries, for the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from safetensors.numpy import save_file


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


def write_demo_folder(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.txt").write_text("Not a model: the agent must not report this file.\n")
    return [
        write_gguf(folder / "demo-llama-f16.gguf"),
        # Renamed on purpose: identification is by content, not by extension.
        write_gguf(folder / "notes.bin", name="renamed-llama", layers=1),
        write_safetensors(folder / "classifier.safetensors"),
    ]
