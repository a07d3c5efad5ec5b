"""Fit the process classifier on the committed dataset and write what the agent ships.

`python -m agent.training.train [--out agent/detect]`: classifier.onnx (the model) and
classifier.json (feature names, threshold, the model's digest). Same data, same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.detect.features import FEATURE_NAMES, FEATURE_VERSION
from agent.training.dataset import DATASET_DIR, Row, load
from agent.training.evaluate import MAX_FPR, evaluate, matrices, sorted_rows, train_model
from agent.training.linear import OUTPUTS, SEED, to_onnx

MODEL_DIR = Path(__file__).resolve().parents[1] / "detect"
MODEL_NAME = "classifier.onnx"
META_NAME = "classifier.json"
TOP_FEATURES = 3


def dataset_digest(folder: Path = DATASET_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.jsonl")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(rows: Sequence[Row]) -> tuple[bytes, dict[str, object], list[str]]:
    """(model bytes, metadata, evaluation report) for these rows."""
    ordered = sorted_rows(rows)
    found = evaluate(ordered)
    data = matrices(ordered)
    model = train_model(data, np.ones(len(data.y), dtype=bool))
    onnx_bytes = to_onnx(model, FEATURE_NAMES)
    meta: dict[str, object] = {
        "format": 1,
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "outputs": list(OUTPUTS),
        "threshold": found.threshold,
        "max_fpr": MAX_FPR,
        "top_features": TOP_FEATURES,
        "model_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "training": {
            "rows": len(ordered),
            "programs": len({row.program for row in ordered}),
            "seed": SEED,
            "model": "logistic regression, L2, standardised features",
        },
        "held_out": found.summary,
        "weights": dict(zip(FEATURE_NAMES, (float(w) for w in model.weights), strict=True)),
    }
    return onnx_bytes, meta, found.lines


def meta_text(meta: dict[str, object]) -> str:
    return json.dumps(meta, indent=1, sort_keys=False) + "\n"


def write(out: Path, onnx_bytes: bytes, meta: dict[str, object]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_NAME).write_bytes(onnx_bytes)
    (out / META_NAME).write_text(meta_text(meta), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.training.train")
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--dataset", type=Path, default=DATASET_DIR)
    args = parser.parse_args(argv)
    np.random.seed(SEED)  # nothing here draws at random; fixed all the same
    onnx_bytes, meta, report = build(load(args.dataset))
    meta["dataset_sha256"] = dataset_digest(args.dataset)
    write(args.out, onnx_bytes, meta)
    print("\n".join(report))
    print(f"\nwrote {args.out / MODEL_NAME} and {args.out / META_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
