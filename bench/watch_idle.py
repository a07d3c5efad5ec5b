"""Idle CPU of the daemon's file watcher on a tree of 5,000 directories, and how soon it
reports a new file; `--unfiltered` shows watchdog's default event mask for comparison.

    .venv/bin/python -m bench.watch_idle [--dirs 5000] [--seconds 10] [--unfiltered]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.sensors.watch import WATCHED_EVENTS, Watcher


def build_tree(root: Path, dirs: int, files_per_dir: int = 2) -> None:
    """`dirs` directories, 50 to a parent, each with a few small non-model files."""
    for i in range(dirs):
        folder = root / f"p{i // 50}" / f"d{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(files_per_dir):
            (folder / f"f{j}.txt").write_bytes(b"x" * 64)


def cpu_percent(seconds: float, stop: threading.Event) -> float:
    """Process CPU time over `seconds` of wall time, as percent of one core."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    stop.wait(seconds)
    return 100.0 * (time.process_time() - cpu0) / (time.monotonic() - wall0)


def measure(dirs: int, seconds: float, unfiltered: bool) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.monotonic()
        build_tree(root, dirs)
        yield f"tree: {dirs} directories under {root} built in {time.monotonic() - t0:.1f} s"
        stop = threading.Event()
        yield f"baseline, no watcher: {cpu_percent(2.0, stop):.2f}% of one core"
        seen: dict[str, float] = {}

        def on_paths(paths: Sequence[str]) -> None:
            for path in paths:
                seen.setdefault(path, time.monotonic())

        watcher = Watcher(
            [root],
            on_paths=on_paths,
            stop=stop,
            settle=0.0,
            event_filter=None if unfiltered else WATCHED_EVENTS,
        )
        thread = threading.Thread(target=watcher.run, name="watcher")
        t0 = time.monotonic()
        thread.start()
        watcher.ready.wait()
        yield f"watches placed in {time.monotonic() - t0:.2f} s"
        try:
            idle = cpu_percent(seconds, stop)
            yield f"idle watcher over {seconds:.0f} s: {idle:.2f}% of one core"
            yield from _latency(root, seen, stop)
        finally:
            stop.set()
            thread.join()


def _latency(root: Path, seen: dict[str, float], stop: threading.Event) -> Iterator[str]:
    target = root / "p7" / f"d{7 * 50 + 3}" / "new-model.gguf"
    written = time.monotonic()
    with open(target, "wb") as f:
        f.write(b"GGUF" + os.urandom(1024))
    deadline = written + 10.0
    while str(target) not in seen and time.monotonic() < deadline:
        stop.wait(0.005)
    if str(target) in seen:
        # Includes the watcher's 0.2 s tick and a second stat to see the size hold still.
        yield f"new file reported after {1000 * (seen[str(target)] - written):.0f} ms"
    else:
        yield "new file NOT reported within 10 s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dirs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--unfiltered", action="store_true", help="watchdog's default mask")
    args = parser.parse_args(argv)
    for line in measure(args.dirs, args.seconds, args.unfiltered):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
