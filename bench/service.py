"""The agent as a service, measured from outside: a real collector, `enroll`, then `run`
(supervisor and worker processes) sampled once a second with psutil.

    .venv/bin/python -m bench.service [--idle-seconds 600] [--bare-seconds 300]
                                      [--files 200000] [--skip-watchdog]
                                      [--process-interval S]

Prints, for an idle run and for a full scan of a tree of FILES files: the worker's CPU share
(median and peak of 1 s samples, and over the whole phase), resident and private memory,
bytes read from storage and through read calls; the supervisor's memory, and the memory of
the two processes together (the agent's private memory is that sum); then how long the
watchdog takes to stop a runaway worker. Each figure is followed by its ratio to the target
or configured limit.
Too slow for `make bench` (about 15 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from safetensors.numpy import save_file

from agent.watchdog.policy import MB, Limits
from agent.watchdog.supervisor import Supervisor

BIN = Path(sys.executable).parent
RULES = Path(__file__).resolve().parents[1] / "rules"
IDLE_CPU_TARGET = 0.5  # percent of one core
PRIVATE_TARGET = 60 * MB
RSS_TARGET = 120 * MB


@dataclass
class Samples:
    cpu: list[float] = field(default_factory=list)  # percent of one core per interval
    rss: list[int] = field(default_factory=list)
    uss: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0
    wall: float = 0.0
    read_bytes: int = 0
    read_chars: int = 0

    def lines(self, name: str, share_limit: float | None = None) -> Iterator[str]:
        median, peak = statistics.median(self.cpu), max(self.cpu)
        whole = 100 * self.cpu_seconds / self.wall
        yield (
            f"{name}: CPU {whole:.2f}% of a core over {self.wall:.0f} s; 1 s samples median "
            f"{median:.2f}%, peak {peak:.1f}%"
        )
        if share_limit is not None:
            yield f"{name}: CPU over the phase / configured share = {whole / share_limit:.2f}"
        else:
            yield f"{name}: CPU / idle target ({IDLE_CPU_TARGET}%) = {whole / IDLE_CPU_TARGET:.2f}"
        yield self.memory_line(name)
        yield (
            f"{name}: read from storage {self.read_bytes / MB:.1f} MB, through read calls "
            f"{self.read_chars / MB:.1f} MB"
        )

    def memory_line(self, name: str) -> str:
        rss, uss = max(self.rss), max(self.uss)
        return (
            f"{name}: RSS max {rss / MB:.1f} MB ({rss / RSS_TARGET:.2f} of target), private "
            f"max {uss / MB:.1f} MB ({uss / PRIVATE_TARGET:.2f} of target)"
        )


def sample(
    procs: list[psutil.Process], until: threading.Event, interval: float = 1.0
) -> list[Samples]:
    """Each process's figures every `interval` until `until` is set (or one exits), then
    their sums per interval: one Samples per process, and one more for them together."""
    found = [Samples() for _ in range(len(procs) + 1)]
    start = [(p.io_counters(), _cpu(p)) for p in procs]
    last_cpu, last = [cpu for _, cpu in start], time.monotonic()
    began = last
    while not until.wait(interval):
        try:
            readings = [(_cpu(p), p.memory_full_info(), p.io_counters()) for p in procs]
        except psutil.NoSuchProcess:
            break
        now = time.monotonic()
        for i, (cpu, memory, io) in enumerate(readings):
            one, (start_io, start_cpu) = found[i], start[i]
            one.cpu.append(100 * (cpu - last_cpu[i]) / (now - last))
            one.rss.append(memory.rss)
            one.uss.append(memory.uss)
            one.cpu_seconds, one.wall = cpu - start_cpu, now - began
            one.read_bytes = io.read_bytes - start_io.read_bytes
            one.read_chars = io.read_chars - start_io.read_chars
            last_cpu[i] = cpu
        _add_up(found[:-1], found[-1])
        last = now
    return found


def _add_up(each: list[Samples], total: Samples) -> None:
    """The newest sample of `each`, summed, appended to `total`; the running totals too."""
    total.cpu.append(sum(one.cpu[-1] for one in each))
    total.rss.append(sum(one.rss[-1] for one in each))
    total.uss.append(sum(one.uss[-1] for one in each))
    total.cpu_seconds = sum(one.cpu_seconds for one in each)
    total.wall = each[0].wall
    total.read_bytes = sum(one.read_bytes for one in each)
    total.read_chars = sum(one.read_chars for one in each)


def figures(name: str, found: list[Samples], share_limit: float | None = None) -> Iterator[str]:
    """The worker's figures in full, then the supervisor's memory and the two together: the
    agent's private memory is their sum; their RSS sum counts shared library pages twice."""
    worker, supervisor, both = found
    yield from worker.lines(f"{name}, worker", share_limit)
    for part, label in ((supervisor, "supervisor"), (both, "worker + supervisor")):
        whole = 100 * part.cpu_seconds / part.wall
        yield f"{name}, {label}: CPU {whole:.2f}% of a core over the phase"
        yield part.memory_line(f"{name}, {label}")


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class Collector:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen(
            [
                str(BIN / "shadowai-collector"),
                "serve",
                *self._common(),
                *("--rules", str(RULES), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.grpc = self.proc.stdout.readline().strip().rsplit(" ", 1)[1]
        self.proc.stdout.readline()

    def _common(self) -> list[str]:
        return ["--data-dir", str(self.folder), "--database", f"sqlite:///{self.folder}/c.db"]

    def token(self) -> str:
        cmd = [str(BIN / "shadowai-collector"), *self._common(), "tokens", "create"]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Agent:
    """An enrolled agent running as a service would: `run` under its watchdog."""

    def __init__(
        self,
        folder: Path,
        collector: Collector,
        roots: list[Path],
        *,
        processes: bool = True,
        process_interval: float | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.data = folder / "data"
        self.config = folder / "agent.toml"
        quoted = ", ".join(f'"{r}"' for r in roots)
        # Other work shares this machine, so pausing when it is busy is turned off here.
        self.config.write_text(
            f"[scan]\nroots = [{quoted}]\n\n[pause]\nbusy_percent = 0\n\n[processes]\n"
            f"enabled = {'true' if processes else 'false'}\n"
            + (f"interval = {process_interval}\n" if process_interval else "")
        )
        self.log = folder / "agent.log"
        self._cli("enroll", "--collector", collector.grpc, "--token", collector.token())
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [*self._base(), "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.started = time.monotonic()

    def _base(self) -> list[str]:
        return [str(BIN / "shadowai-agent"), "--data-dir", str(self.data)]

    def _cli(self, *args: str) -> None:
        subprocess.run([*self._base(), *args], check=True, capture_output=True)

    def supervisor(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def worker(self) -> psutil.Process:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            children = psutil.Process(self.proc.pid).children()
            if children:
                return children[0]
            time.sleep(0.1)
        raise RuntimeError("no worker process")

    def passes(self) -> int:
        return sum(1 for line in self.log.read_text().splitlines() if " pass: " in line)

    def wait_pass(self, count: int = 1, timeout: float = 3600) -> float:
        deadline = time.monotonic() + timeout
        while self.passes() < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"no pass: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return time.monotonic() - self.started

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def models_tree(root: Path, files: int, models: int = 20) -> None:
    """`files` small files, 100 to a folder, among them `models` safetensors files."""
    rng = np.random.default_rng(1)
    for i in range(files):
        folder = root / f"p{i // 10000}" / f"d{i // 100}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        if i < models:
            weights = {"w": rng.random((64, 64), dtype=np.float32)}
            save_file(weights, str(folder / f"model{i}.safetensors"))
        else:
            (folder / f"f{i}.txt").write_bytes(b"x" * 64)


def idle(
    tmp: Path,
    collector: Collector,
    seconds: float,
    *,
    processes: bool,
    interval: float | None = None,
) -> Iterator[str]:
    """An agent watching a small tree after its first pass: passes on the interval, the
    watcher, health, heartbeat, shipping and (with `processes`) the process scans."""
    name = "idle" if processes else "idle without process scans"
    if processes and interval:
        name += f" (process scans every {interval:g} s)"
    slug = "".join(c if c.isalnum() else "-" for c in name)
    tree = tmp / slug
    models_tree(tree, 2000)
    agent = Agent(
        tmp / f"{slug}-agent",
        collector,
        [tree],
        processes=processes,
        process_interval=interval,
    )
    try:
        agent.wait_pass()
        time.sleep(5)  # the first health event and shipment settle
        until = threading.Event()
        threading.Timer(seconds, until.set).start()
        yield from figures(name, sample([agent.worker(), agent.supervisor()], until))
    finally:
        agent.stop()


def full_scan(tmp: Path, collector: Collector, files: int) -> Iterator[str]:
    tree = tmp / "scan-tree"
    t0 = time.monotonic()
    models_tree(tree, files)
    yield f"scan: tree of {files} files built in {time.monotonic() - t0:.0f} s"
    agent = Agent(tmp / "scan", collector, [tree])
    try:
        watched = [agent.worker(), agent.supervisor()]
        until = threading.Event()
        result: list[list[Samples]] = []
        thread = threading.Thread(target=lambda: result.append(sample(watched, until)))
        thread.start()
        took = agent.wait_pass()
        until.set()
        thread.join()
        yield f"scan: first full pass in {took:.0f} s"
        yield from figures("scan", result[0], share_limit=100 * Limits().cpu_share)
    finally:
        agent.stop()


RUNAWAY = "while True:\n    pass\n"


def watchdog(tmp: Path, window: float) -> Iterator[str]:
    stop = threading.Event()
    limits = Limits(window=window)
    supervisor = Supervisor(
        command=[sys.executable, "-c", RUNAWAY], limits=limits, data_dir=tmp, stop=stop
    )
    started = time.monotonic()

    def until_tripped() -> None:
        while not supervisor.trips and not stop.wait(0.05):
            pass
        stop.set()

    threading.Thread(target=until_tripped).start()
    supervisor.run()
    reaction = supervisor.trips[0].at - started
    budget = limits.cpu_share * window
    yield (
        f"watchdog: runaway stopped {reaction:.1f} s after start with a {window:.0f} s window "
        f"(a budget of {budget:.1f} CPU-s; ratio of the reaction to the window "
        f"{reaction / window:.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service")
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    parser.add_argument("--bare-seconds", type=float, default=300.0, help="idle, no processes")
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--skip-watchdog", action="store_true")
    parser.add_argument(
        "--process-interval", type=float, default=None, help="for the idle run (default: 15)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        collector = Collector(tmp / "collector")
        try:
            if args.idle_seconds > 0:
                idling = idle(
                    tmp,
                    collector,
                    args.idle_seconds,
                    processes=True,
                    interval=args.process_interval,
                )
                for line in idling:
                    print(line, flush=True)
            if args.bare_seconds > 0:
                for line in idle(tmp, collector, args.bare_seconds, processes=False):
                    print(line, flush=True)
            if args.files > 0:
                for line in full_scan(tmp, collector, args.files):
                    print(line, flush=True)
        finally:
            collector.stop()
        if not args.skip_watchdog:
            for window in (10.0, Limits().window):
                for line in watchdog(tmp, window):
                    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
