"""The committed classifier is what training makes of the committed dataset; the dataset keeps
its provenance and its held-out split keeps programs apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime  # type: ignore[import-untyped]  # the wheel ships no stubs

from agent.training import derived
from agent.training.dataset import DATASET_DIR, load, read_rows, row_to_json
from agent.training.evaluate import FOLDS, choose_threshold, folds_of, matrices, sorted_rows
from agent.training.groups import group_of
from agent.training.jobs import INFERENCE, ORDINARY
from agent.training.load import required_cpu
from agent.training.train import META_NAME, MODEL_DIR, MODEL_NAME, build, dataset_digest, meta_text


def test_training_reproduces_the_committed_model_byte_for_byte() -> None:
    onnx_bytes, meta, _ = build(load())
    meta["dataset_sha256"] = dataset_digest()
    committed = (MODEL_DIR / MODEL_NAME).read_bytes()

    if onnx_bytes != committed:  # say how far apart they are before failing
        rows = sorted_rows(load())
        x = matrices(rows).x.astype(np.float32)
        ours, theirs = (
            onnxruntime.InferenceSession(b).run(["score"], {"features": x})[0]
            for b in (onnx_bytes, committed)
        )
        raise AssertionError(
            f"classifier.onnx differs; max score gap {np.abs(ours - theirs).max()}"
            " (run `make train` and commit both files)"
        )
    assert meta_text(meta) == (MODEL_DIR / META_NAME).read_text(encoding="utf-8")


def test_every_row_has_provenance_and_derived_rows_name_their_source() -> None:
    rows = load()

    assert {row.label for row in rows} == {"inference", "ordinary"}
    for row in rows:
        assert row.provenance.host and row.provenance.date and row.provenance.how, row.program
        assert bool(row.provenance.source) == row.provenance.derived, row.program
    captured = {row.program for row in rows if not row.provenance.derived}
    assert len(captured) >= 30


def test_the_derived_file_is_what_derived_py_writes() -> None:
    expected = [row_to_json(row) for row in derived.rows()]
    committed = [row_to_json(row) for row in read_rows(DATASET_DIR / "derived.jsonl")]

    assert committed == expected


def test_held_out_folds_never_split_a_fold_group_and_hold_both_labels() -> None:
    rows = sorted_rows(load())
    data = matrices(rows)
    folds = folds_of(data, np.ones(len(rows), dtype=bool), FOLDS)
    by_fold: dict[int, set[str]] = {}
    labels: dict[int, set[str]] = {}
    for row, fold in zip(rows, folds, strict=True):
        by_fold.setdefault(int(fold), set()).add(group_of(row.program))
        labels.setdefault(int(fold), set()).add(row.label)

    assert sorted(by_fold) == list(range(FOLDS))
    for fold, groups in by_fold.items():
        others = set().union(*(g for f, g in by_fold.items() if f != fold))
        assert not groups & others
        assert labels[fold] == {"inference", "ordinary"}


def test_the_renamed_copy_is_held_out_with_the_program_it_copies() -> None:
    rows = sorted_rows(load())
    folds = folds_of(matrices(rows), np.ones(len(rows), dtype=bool), FOLDS)
    fold = {row.program: int(f) for row, f in zip(rows, folds, strict=True)}

    assert fold["llama-renamed-binary"] == fold["node-llama-cpp-server"]
    assert fold["python-http-server"] == fold["python-http-server-8000"]


def test_the_threshold_is_the_highest_recall_within_the_false_positive_budget() -> None:
    negatives = np.linspace(0.0, 0.5, 200)  # 0.5% of 200: one false positive allowed
    positives = np.asarray([0.45, 0.6, 0.9])
    scores = np.concatenate([negatives, positives])
    y = np.concatenate([np.zeros(200), np.ones(3)])

    threshold = choose_threshold(scores, y)

    assert (negatives >= threshold).sum() <= 1
    assert (positives >= threshold).sum() == 2  # 0.45 would cost more false positives
    assert threshold > negatives[-2]


def test_dataset_files_are_small_json_lines() -> None:
    total = sum(p.stat().st_size for p in Path(DATASET_DIR).glob("*.jsonl"))

    assert total < 1_000_000
    for path in Path(DATASET_DIR).glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert isinstance(json.loads(line), dict)


def test_every_busy_row_of_a_loaded_workload_shows_its_load_in_the_data() -> None:
    loaded = {w.program: w for w in (*INFERENCE, *ORDINARY) if w.load}
    busy = [
        row
        for row in load()
        if row.program in loaded and row.provenance.sample >= loaded[row.program].idle
    ]

    assert {row.program for row in busy} == set(loaded)  # pgbench and mysqlslap included
    for row in busy:
        evidence = row.provenance.load
        assert evidence is not None and evidence.alive, row.program
        assert evidence.cpu_busy >= required_cpu(evidence.cpu_idle), row.program
