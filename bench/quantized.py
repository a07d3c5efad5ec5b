"""Header-only identification of a 70B model in each layout a laptop holds it in (GGUF Q4_K_M,
MLX 4-bit shards, GPTQ 4-bit shards, an ONNX Runtime GenAI int4 folder), written at full
apparent size with sparse data, through the path `shadowai-agent scan --no-hash` takes.

The reference, measured in the same run, is each format's own library opening the same
files' metadata (gguf.GGUFReader, safetensors.safe_open, onnx.load without external data).
Target: under one second per layout. Run alone with `python -m bench.quantized`.
"""

from __future__ import annotations

import functools
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gguf
import onnx
from safetensors import safe_open

from agent.cli import main
from bench import model_layouts as layouts

TARGET_SECONDS = 1.0
RUNS = 5
LLAMA3_TOKENS, LLAMA3_MERGES = 128_256, 280_147


def scan_once(folder: Path) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["scan", "--no-processes", "--no-hash", "--format", "json", str(folder)]
    if main(argv, out=out, err=err) != 0:
        raise RuntimeError(err.getvalue())
    (model,) = (json.loads(line) for line in out.getvalue().splitlines())
    return model


def median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _safetensors_headers(folder: Path) -> None:
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), "np") as f:
            f.keys()


def _layouts(root: Path) -> Iterator[tuple[str, Path, Callable[[], object]]]:
    config = layouts.hf_config("llama", layouts.LLAMA_70B)
    shapes = layouts.weight_shapes(config)
    gguf_path = root / "gguf" / "Llama-3.3-70B-Instruct-Q4_K_M.gguf"
    gguf_path.parent.mkdir()
    layouts.gguf_file(
        gguf_path,
        "llama",
        shapes,
        name="Llama 3.3 70B Instruct",
        context_length=131072,
        tokens=LLAMA3_TOKENS,
        merges=LLAMA3_MERGES,
    )
    yield "GGUF Q4_K_M", gguf_path.parent, lambda: gguf.GGUFReader(gguf_path)
    mlx = root / "mlx" / "Llama-3.3-70B-Instruct-4bit"
    layouts.mlx_folder(mlx, "llama", layouts.LLAMA_70B)
    yield "MLX 4-bit shards", mlx.parent, lambda: _safetensors_headers(mlx)
    gptq = root / "gptq" / "Llama-3.3-70B-Instruct-GPTQ-Int4"
    layouts.gptq_folder(gptq, "llama", layouts.LLAMA_70B)
    yield "GPTQ 4-bit shards", gptq.parent, lambda: _safetensors_headers(gptq)
    genai = root / "onnx" / "llama-3.3-70b-instruct-int4-cpu"
    layouts.onnx_genai_folder(genai, "llama", layouts.LLAMA_70B)
    model = genai / "model.onnx"
    yield "ONNX GenAI int4", genai.parent, lambda: onnx.load(model, load_external_data=False)


def run() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-quantized-") as tmp:
        for label, folder, reference in _layouts(Path(tmp)):
            model = scan_once(folder)  # warms the page cache, as a second scan would find it
            ours = median_seconds(functools.partial(scan_once, folder))
            # gguf.GGUFReader maps every tokenizer string: tens of seconds, so it runs once.
            theirs = median_seconds(reference, runs=1 if label.startswith("GGUF") else RUNS)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            verdict = "ok" if ours < TARGET_SECONDS else "OVER TARGET"
            yield (
                f"quantized 70B {label}: {ours * 1000:.0f} ms to identify "
                f"{size / 1e9:.1f} GB ({model['ai.model.parameters']:,} parameters, "
                f"{model['ai.model.quantization']}); format library {theirs * 1000:.0f} ms, "
                f"ratio {ours / theirs:.2f}; target < {TARGET_SECONDS:.0f} s: {verdict}"
            )


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
    sys.exit(0)
