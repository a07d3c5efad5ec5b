"""Start real inference and ordinary programs on this machine and capture each of them.

`python -m agent.training.workloads [--only PROGRAM ...] [--out FILE] [--work DIR]`: builds
small real models, runs every workload of agent.training.jobs, records idle and busy samples,
stops it. Needs node-llama-cpp's prebuilt binaries (see tests/agent/sensors/test_real_runtimes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from agent.training import models, programs
from agent.training.capture import Target, capture, targets
from agent.training.dataset import DATASET_DIR, Row, write_rows
from agent.training.jobs import INFERENCE, ORDINARY, Workload
from agent.training.load import LoadError, idle_baseline, under_load

NODE_LLAMA = Path.home() / ".cache" / "shadowai-tests" / "node-llama-cpp-3.22.1"
READY_SECONDS = 120.0


@dataclass(frozen=True)
class Setup:
    """The work folder with every model, script and input file the workloads name."""

    work: Path
    paths: Mapping[str, Path]

    def values(self) -> dict[str, str]:
        found = {name: str(path) for name, path in self.paths.items()}
        venv = Path(sys.executable).parent
        repo = Path(__file__).resolve().parents[2]
        return {"py": sys.executable, "venv": str(venv), "repo": str(repo), **found}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _inputs(work: Path) -> None:
    """Inputs of the ordinary programs: sources to compile, a log file, a page, a repository."""
    _write(work / "big.c", programs.c_source(3000))
    _write(work / "heavy.cpp", programs.CPP_SOURCE)
    _write(work / "Server.java", programs.JAVA_SERVER)
    _write(
        work / "page.html",
        "<html><body><script>let n=0; setInterval(() => {"
        "for (let i = 0; i < 1e6; i++) n += Math.sqrt(i); document.title = n;}, 50);"
        "</script><h1>capture</h1></body></html>",
    )
    for i in range(24):
        _write(
            work / "make" / f"u{i}.c", programs.c_source(120).replace("double f", f"double u{i}_f")
        )
    objects = " ".join(f"u{i}.o" for i in range(24))
    _write(
        work / "make" / "Makefile",
        f"all: {objects}\n%.o: %.c\n\tcc -O2 -c $< -o $@\nclean:\n\trm -f *.o\n.NOTPARALLEL:\n",
    )
    log = work / "data" / "app.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        line = b"2026-11-22T00:00:00Z INFO request served in 12 ms\n" * 1000 + b"ERROR 500\n"
        for _ in range((256 << 20) // len(line)):
            out.write(line)
    _repository(work / "repo")


def _repository(repo: Path) -> None:
    """A repository holding Python's standard library: git gc works on it for many seconds."""
    shutil.copytree(
        Path(os.__file__).parent,
        repo,
        ignore=shutil.ignore_patterns("__pycache__", "site-packages", "test"),
    )
    git = ["git", "-C", str(repo), "-c", "user.name=capture", "-c", "user.email=capture@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "import"]):
        subprocess.run([*git, *args], check=True, capture_output=True)


def _renamed(work: Path) -> Path:
    """node copied as bin/svc-worker beside an app/ folder holding node-llama-cpp."""
    root = work / "renamed"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    if node is None or not (NODE_LLAMA / "node_modules").is_dir():
        raise SystemExit(f"node and {NODE_LLAMA}/node_modules are needed (see test_real_runtimes)")
    shutil.copy2(node, root / "bin" / "svc-worker")
    shutil.copytree(NODE_LLAMA / "node_modules", root / "app" / "node_modules", symlinks=True)
    return root


def _scripts(work: Path) -> dict[str, Path]:
    """The program sources: cheap, so written afresh on every run."""
    scripts = work / "scripts"
    for name, text in programs.PYTHON.items():
        _write(scripts / name, text)
    for name in ("web.mjs", "crunch.mjs"):
        _write(scripts / name, programs.NODE[name])
    _write(work / "renamed" / "app" / "app.mjs", programs.NODE["app.mjs"])
    _write(NODE_LLAMA / "llama-serve.mjs", programs.NODE["llama-serve.mjs"])
    crate = work / "crate"
    _write(
        crate / "Cargo.toml", '[package]\nname = "capture"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    _write(crate / "src" / "main.rs", programs.rust_source(800))
    return {"scripts": scripts, "llama_dir": NODE_LLAMA}


def prepare(work: Path) -> Setup:
    """Models, inputs, the renamed runtime and the language server; once per work folder."""
    built = work / "ready"
    if not built.exists():
        models.build_all(work / "m")
        _renamed(work)
        pylsp = ["install", "-q", "--target", str(work / "pylsp"), "python-lsp-server==1.15.0"]
        subprocess.run([sys.executable, "-m", "pip", *pylsp], check=True)
        _inputs(work)
        built.touch()
    return Setup(work, {**_known(work), **_scripts(work)})


def _ready(proc: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    """The JSON line a program prints once ready; {} for "ready" or for programs that print none."""
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], seconds)
    if not readable:
        return {}
    line = proc.stdout.readline().decode("utf-8", "replace").strip()
    if not line and proc.poll() is not None:
        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
    try:
        value = json.loads(line)
    except ValueError:
        port = re.search(r"\bport (\d+)", line)  # python -m http.server's banner
        return {"port": int(port.group(1))} if port else {}
    return value if isinstance(value, dict) else {}


@contextmanager
def _started(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, *, output: bool = True
) -> Iterator[subprocess.Popen[bytes]]:
    """`output`: keep stdout to read the ready line; a load's output is dropped, since a pipe
    nobody reads fills up and stalls the load (redis-benchmark's progress lines did)."""
    proc = subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _running(names: Sequence[str]) -> tuple[int, ...]:
    return tuple(sorted(p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in names))


def _fill(command: str, values: Mapping[str, str]) -> list[str]:
    return [part.format(**values) for part in shlex.split(command)]


def run(workload: Workload, setup: Setup) -> list[Row]:
    values = setup.values()
    if workload.running:
        target = _target(workload, _running(workload.running))
        return _samples(workload, target, values, setup.work)
    command = _fill(workload.command, values)
    if not workload.skip_root:
        # Started from a shell, as a person at a terminal does: the parent is bash, not us.
        command = ["bash", "-c", '"$@"; exit $?', "bash", *command]
    with _started(command, workload.env, setup.work) as proc:
        ready = _ready(proc, READY_SECONDS if workload.ready else 0.0)
        time.sleep(3.0)  # past start-up: threads and mappings settle
        values = {**values, "port": str(ready.get("port", ""))}
        target = replace(_target(workload, (proc.pid,)), skip_root=True)
        return _samples(workload, target, values, setup.work)


def _target(workload: Workload, pids: tuple[int, ...]) -> Target:
    return Target(
        label=workload.label,
        program=workload.program,
        family=workload.family,
        how=workload.how,
        pids=pids,
        children=workload.children,
        skip_root=workload.skip_root,
    )


def _samples(workload: Workload, target: Target, values: Mapping[str, str], cwd: Path) -> list[Row]:
    rows = capture(target, samples=workload.idle) if workload.idle else []
    if not workload.busy:
        return rows
    if not workload.load:
        return rows + capture(target, samples=workload.busy, first=workload.idle)
    if workload.init:  # e.g. pgbench -i: without its tables pgbench exits at once
        subprocess.run(["bash", "-c", workload.init.format(**values)], check=True, cwd=cwd)
    idle = idle_baseline(lambda: targets(target))
    command = _fill(workload.load, values)
    with _started(command, {}, cwd, output=False) as load:
        take = partial(capture, target, samples=workload.busy, first=workload.idle)
        return rows + under_load(load, idle, take, workload.load_name or Path(command[0]).name)


def run_checked(workload: Workload, setup: Setup, attempts: int = 2) -> list[Row]:
    """`run`, again once if the load check failed: another engineer's job can starve the
    target for a moment. LoadError when it fails every time."""
    for attempt in range(1, attempts + 1):
        try:
            return run(workload, setup)
        except LoadError as exc:
            print(f"{workload.program}: attempt {attempt}: {exc}", file=sys.stderr, flush=True)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.training.workloads")
    parser.add_argument("--only", action="append", help="run only these programs")
    parser.add_argument("--out", type=Path, default=DATASET_DIR / "linux.jsonl")
    parser.add_argument("--work", type=Path, help="keep the models and inputs here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="shadowai-capture-"))
    setup = prepare(work)
    failed = []
    for workload in (*INFERENCE, *ORDINARY):
        if args.only and workload.program not in args.only:
            continue
        try:
            rows = run_checked(workload, setup)
        except LoadError:
            failed.append(workload.program)  # nothing written: its busy rows would lie
            continue
        count = write_rows(args.out, rows)
        print(f"{workload.program}: {count} samples", flush=True)
    if failed:
        print(f"not under load, not written: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _known(work: Path) -> dict[str, Path]:
    """The paths `prepare` made in an earlier run."""
    names = {
        "onnx": "m/mlp.onnx",
        "torchscript": "m/mlp-scripted.pt",
        "state_dict": "m/mlp-weights.pth",
        "hf": "m/hf/tiny-llama",
        "keras": "m/mlp.keras",
        "gguf": "m/models/capture-llama-f32.gguf",
        "disguised": "m/data/blob.dat",
        "scripts": "scripts",
        "renamed": "renamed",
        "pylsp": "pylsp",
    }
    return {"work": work, "llama_dir": NODE_LLAMA, **{k: work / v for k, v in names.items()}}


if __name__ == "__main__":
    sys.exit(main())
