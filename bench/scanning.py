"""Identification rate over a tree of real model files among non-model files, and hashing."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from safetensors.numpy import save_file

from agent.sensors.files import ScanStats, scan, sha256_file


def _gguf(path: Path, i: int) -> None:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(f"bench-{i}")
    writer.add_context_length(4096)
    writer.add_token_list([f"tok{n}" for n in range(2000)])
    writer.add_tensor("token_embd.weight", np.zeros((64, 16), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _tree(root: Path, models: int, others: int) -> None:
    for i in range(models):
        folder = root / f"proj{i % 50}"
        folder.mkdir(exist_ok=True)
        if i % 2:
            _gguf(folder / f"m{i}.gguf", i)
        else:
            save_file({"w": np.zeros((32, 32), dtype=np.float32)}, str(folder / f"m{i}.bin"))
    for i in range(others):
        folder = root / f"src{i % 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.py").write_bytes(os.urandom(64) + b"print('hello')\n" * 20)


def identification(models: int = 2000, others: int = 8000) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _tree(root, models, others)
        stats = ScanStats()
        t0 = time.perf_counter()
        found = sum(1 for _ in scan([root], hash_contents=False, stats=stats))
        elapsed = time.perf_counter() - t0
        yield (
            f"identification (warm cache): {found} models among {stats.files_seen} files in "
            f"{elapsed:.2f} s = {found / elapsed:,.0f} model files/s, "
            f"{stats.files_seen / elapsed:,.0f} files/s"
        )


def hashing(size: int = 512 * 2**20) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob.bin"
        with path.open("wb") as f:
            for _ in range(size // 2**24):
                f.write(os.urandom(2**24))
        t0 = time.perf_counter()
        with path.open("rb") as f:
            reference = hashlib.file_digest(f, "sha256").hexdigest()
        t1 = time.perf_counter()
        ours = sha256_file(path)
        t2 = time.perf_counter()
        assert ours == reference
        ref_rate, our_rate = size / (t1 - t0) / 1e9, size / (t2 - t1) / 1e9
        yield (
            f"sha256 of {size >> 20} MiB: hashlib.file_digest {ref_rate:.2f} GB/s, "
            f"sha256_file {our_rate:.2f} GB/s, ratio {our_rate / ref_rate:.2f}"
        )


def run() -> Iterator[str]:
    yield from identification()
    yield from hashing()
