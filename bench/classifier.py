"""Process classifier cost: features per process, scoring latency for one process and for a
batch of 500, and the memory the scoring adds; the reference, measured after ours in the same
process, is an ONNX Runtime session of the same model (what the agent used before).

Run alone, in a fresh interpreter (the memory figures need one): `python -m bench.classifier`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from agent.detect.features import FeatureVector

BATCH = 500
ROUNDS = 7
MB = 2**20


def _memory() -> tuple[int, int]:
    """(resident, private) bytes of this process."""
    found = psutil.Process().memory_full_info()
    return int(found.rss), int(found.uss)


def _grew(before: tuple[int, int], after: tuple[int, int]) -> str:
    return f"+{(after[0] - before[0]) / MB:.1f} MiB RSS, +{(after[1] - before[1]) / MB:.1f} private"


def _best(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, best) seconds per call over ROUNDS rounds of `repeat` calls."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        rounds.append((time.perf_counter() - start) / repeat)
    return statistics.median(rounds), min(rounds)


def run() -> Iterator[str]:
    before = _memory()  # agent.detect.features is imported already: the daemon has it too
    from agent.classifier import Classifier

    imported = _memory()
    classifier = Classifier.shipped()
    loaded = _memory()
    yield f"classifier: import agent.classifier {_grew(before, imported)}"
    yield f"classifier: the model read and checked {_grew(imported, loaded)}"

    from agent.detect import features as features_module
    from agent.detect.runtimes import identify
    from agent.training.dataset import load

    rows = load()
    vectors = [row.features() for row in rows]
    batch = (vectors * (BATCH // len(vectors) + 1))[:BATCH]
    matches = [identify(row.observation) for row in rows]

    def cold() -> None:
        features_module.clear_cache()  # a first look: every library list is new
        for row, match in zip(rows, matches, strict=True):
            features_module.features(row.observation, match, row.gpu_use(), sizes=row.sizes)

    def warm() -> None:
        for row, match in zip(rows, matches, strict=True):
            features_module.features(row.observation, match, row.gpu_use(), sizes=row.sizes)

    median, _ = _best(lambda: [identify(row.observation) for row in rows], 5)
    yield f"classifier: identify() per process {median / len(rows) * 1e6:.0f} µs (for reference)"
    median, _ = _best(cold, 5)
    yield f"classifier: features() per process, first look {median / len(rows) * 1e6:.0f} µs"
    median, _ = _best(warm, 5)
    per = median / len(rows) * 1e6
    yield f"classifier: features() per process, libraries seen before {per:.0f} µs"
    one, best = _best(lambda: classifier.score(batch[:1]), 2000)
    yield f"classifier: score 1 process {one * 1e6:.1f} µs (best {best * 1e6:.1f})"
    many, best = _best(lambda: classifier.score(batch), 20)
    yield f"classifier: score batch of {BATCH} {many * 1e3:.2f} ms (best {best * 1e3:.2f}),"
    yield f"classifier:   {many / BATCH * 1e6:.1f} µs per process"
    steady = _memory()
    for _ in range(200):
        classifier.score(batch)
    grown = (_memory()[1] - steady[1]) / MB
    yield f"classifier: private memory growth over 200 more batches of {BATCH}: {grown:+.1f} MiB"
    yield from _reference(batch, one, many)


def _reference(batch: list[FeatureVector], one: float, many: float) -> Iterator[str]:
    """ONNX Runtime on the same model and rows, with the top features named as ours are."""
    before = _memory()
    import numpy as np
    import onnxruntime  # type: ignore[import-untyped]  # the wheel ships no stubs

    from agent.classifier import MODEL_NAME, top_features

    imported = _memory()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    model = (Path(__file__).resolve().parents[1] / "agent" / "detect" / MODEL_NAME).read_bytes()
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    loaded = _memory()
    yield f"reference: import onnxruntime and numpy {_grew(before, imported)}"
    yield f"reference: the session {_grew(imported, loaded)}"

    def score(vectors: list[FeatureVector]) -> list[tuple[str, ...]]:
        x = np.asarray([v.values for v in vectors], dtype=np.float32)
        _, contributions = session.run(["score", "contributions"], {"features": x})
        return [top_features(row, 3) for row in contributions.tolist()]

    ref_one, _ = _best(lambda: score(batch[:1]), 2000)
    ref_many, _ = _best(lambda: score(batch), 20)
    yield f"reference: score 1 process {ref_one * 1e6:.1f} µs; ours / reference {one / ref_one:.1f}"
    yield (
        f"reference: score batch of {BATCH} {ref_many * 1e3:.2f} ms; ours / reference "
        f"{many / ref_many:.1f}"
    )


def main() -> int:
    for line in run():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
