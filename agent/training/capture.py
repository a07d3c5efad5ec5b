"""Record labelled observations of running processes as dataset rows with provenance.

`python -m agent.training.capture --label inference --program NAME --runtime llama.cpp
--pid PID [--pid PID ...] [--children] [--samples 3 --interval 2] [--how TEXT] [--out FILE]
[--load COMMAND]`: with --load, the command runs during the samples and the capture fails
unless it ran throughout and the target's CPU rose above its idle baseline.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import psutil

from agent.detect.features import located
from agent.detect.processes import ProcessObservation
from agent.detect.redact import redact_argv
from agent.detect.runtimes import is_model_path
from agent.sensors.processes import ProcessSource, default_source
from agent.training.dataset import LABELS, Provenance, Row, row_to_json
from agent.training.load import LoadError, idle_baseline, under_load


def _os_type() -> str:
    return {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux")


def observe(source: ProcessSource, pid: int) -> ProcessObservation:
    """What the agent's process sensor sees of one process, usage figures left to the caller."""
    details = source.details(pid)
    proc = psutil.Process(pid)
    try:
        mapped = source.mappings(pid)
        opened = source.open_files(pid)
    except PermissionError:
        mapped, opened = None, ()
    libraries, files = mapped or ((), ())
    parent = proc.parent()
    return ProcessObservation(
        pid=pid,
        create_time=round(proc.create_time(), 2),
        name=details.name or proc.name(),
        exe=details.exe,
        cmdline=tuple(redact_argv(details.cmdline)),  # rows are committed: no secrets
        parent_name=parent.name() if parent is not None else None,
        username=details.username,
        libraries=libraries,
        mapped_files=files,
        open_files=opened,
        listeners=tuple(source.listeners().get(pid, ())),
    )


def file_sizes(obs: ProcessObservation) -> dict[str, int]:
    """Byte sizes of what the features read: every model-looking file and the largest mapped
    file. Other sizes are left out to keep the dataset small; files that vanished are skipped."""
    found = {}
    for path in sorted({*obs.mapped_files, *obs.open_files}):
        try:
            found[path] = os.stat(path).st_size
        except OSError:
            continue
    return trim_sizes(obs, found)


def trim_sizes(obs: ProcessObservation, sizes: Mapping[str, int]) -> dict[str, int]:
    mapped = [p for p in obs.mapped_files if p in sizes]
    keep = {p for p in (*obs.mapped_files, *obs.open_files) if is_model_path(p) or located(p)}
    if mapped:
        keep.add(max(mapped, key=lambda p: (sizes[p], p)))
    return {p: sizes[p] for p in sorted(keep) if p in sizes}


def targets(target: Target) -> list[psutil.Process]:
    """The live processes of a target now: its roots and, as asked, their descendants."""
    children, skip_root = target.children, target.skip_root
    roots = []
    for pid in target.pids:
        try:
            roots.append(psutil.Process(pid))
        except psutil.Error:
            continue
    procs = [] if skip_root else list(roots)
    if children or skip_root:
        for root in roots:
            try:
                procs += root.children(recursive=True)
            except psutil.Error:
                continue
    return sorted({proc.pid: proc for proc in procs}.values(), key=lambda p: p.pid)


def sample(
    source: ProcessSource, procs: Sequence[psutil.Process], interval: float
) -> list[ProcessObservation]:
    """One observation per live process, CPU measured over `interval` seconds."""
    for proc in procs:
        try:
            proc.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(interval)
    found = []
    for proc in procs:
        try:
            with proc.oneshot():
                cpu, rss, threads = (
                    proc.cpu_percent(None),
                    proc.memory_info().rss,
                    proc.num_threads(),
                )
            obs = observe(source, proc.pid)
        except (psutil.Error, OSError):
            continue
        found.append(replace(obs, rss=rss, num_threads=threads, cpu_percent=round(cpu, 1)))
    return found


@dataclass(frozen=True)
class Target:
    """What to capture and how to label it."""

    label: str
    program: str
    family: str
    how: str
    pids: tuple[int, ...]
    children: bool = False
    skip_root: bool = False  # a loop's shell is not the program: capture its children only


def capture(
    target: Target, *, samples: int = 3, interval: float = 1.0, pause: float = 2.0, first: int = 0
) -> list[Row]:
    """`samples` rows per live process, `pause` seconds apart; sample indexes start at `first`."""
    source = default_source(_os_type())
    host = socket.gethostname()
    rows = []
    for index in range(first, first + samples):
        if index > first:
            time.sleep(pause)
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        provenance = Provenance(host=host, date=now, how=target.how, sample=index)
        procs = targets(target)
        for obs in sample(source, procs, interval):
            row = Row(
                label=target.label,
                program=target.program,
                family=target.family,
                observation=obs,
                provenance=provenance,
                sizes=file_sizes(obs),
            )
            rows.append(row)
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agent.training.capture")
    parser.add_argument("--label", choices=LABELS, required=True)
    parser.add_argument("--program", required=True, help="what runs: held out as one group")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--runtime", help="the runtime family of an inference process")
    kind.add_argument("--category", help="the kind of an ordinary program (database, ...)")
    parser.add_argument("--pid", type=int, action="append", required=True)
    parser.add_argument("--children", action="store_true", help="also every descendant")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0, help="CPU window, seconds")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--how", default="", help="how the program was started")
    parser.add_argument("--out", type=Path, help="append to this file (default: stdout)")
    parser.add_argument("--load", help="a command that loads the target while it is sampled")
    return parser.parse_args(argv)


def _loaded(target: Target, command: str, take: Callable[[], list[Row]]) -> list[Row]:
    idle = idle_baseline(lambda: targets(target))
    argv = shlex.split(command)
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True) as load:
        try:
            return under_load(load, idle, take, Path(argv[0]).name)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(load.pid, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    target = Target(
        label=args.label,
        program=args.program,
        family=args.runtime or args.category,
        how=args.how,
        pids=tuple(args.pid),
        children=args.children,
    )
    take = partial(capture, target, samples=args.samples, interval=args.interval, pause=args.pause)
    try:
        rows = _loaded(target, args.load, take) if args.load else take()
    except LoadError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    text = "".join(row_to_json(row) + "\n" for row in rows)
    if args.out is None:
        sys.stdout.write(text)
    else:
        with args.out.open("a", encoding="utf-8") as out:
            out.write(text)
    print(f"captured {len(rows)} samples of {args.program}", file=sys.stderr)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
