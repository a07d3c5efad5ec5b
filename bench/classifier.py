"""Process classifier cost: features per process, scoring latency for one process and for a
batch of 500, and the resident memory that importing ONNX Runtime and loading the session add.

Run alone, in a fresh interpreter (the memory figures need one): `python -m bench.classifier`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator

import psutil

BATCH = 500
ROUNDS = 7


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


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
    before = _rss()
    import onnxruntime  # type: ignore[import-untyped]  # noqa: F401  # measured on its own

    imported = _rss()
    from agent.classifier import Classifier

    ours = _rss()
    classifier = Classifier.shipped()
    loaded = _rss()
    yield f"classifier: import onnxruntime, numpy +{(imported - before) / 2**20:.1f} MiB RSS"
    yield f"classifier: import agent.classifier, agent.detect +{(ours - imported) / 2**20:.1f} MiB"
    yield f"classifier: the session +{(loaded - ours) / 2**20:.1f} MiB RSS"

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
    median, best = _best(lambda: classifier.score(batch[:1]), 2000)
    yield f"classifier: score 1 process {median * 1e6:.1f} µs (best {best * 1e6:.1f})"
    median, best = _best(lambda: classifier.score(batch), 50)
    yield f"classifier: score batch of {BATCH} {median * 1e3:.2f} ms (best {best * 1e3:.2f}),"
    yield f"classifier:   {median / BATCH * 1e6:.1f} µs per process"
    steady = _rss()
    for _ in range(1000):
        classifier.score(batch)
    grown = (_rss() - steady) / 2**20
    yield f"classifier: RSS growth over 1,000 more batches of {BATCH}: {grown:+.1f} MiB"


def main() -> int:
    for line in run():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
