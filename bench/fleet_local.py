"""Run the fleet simulator against a collector started here (SQLite or a fresh PostgreSQL
schema): `python -m bench.fleet_local --store sqlite|postgresql [--replicas K] [bench.fleet
options]`. K > 1 starts K `serve` processes on the same ports (gRPC binds with SO_REUSEPORT,
so the kernel spreads connections over them) sharing one database."""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench import fleet

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BIN = Path(sys.executable).parent
RULES = Path(__file__).resolve().parent.parent / "rules"
SAMPLE_EVERY = 1.0  # seconds between readings of the collector's CPU


def _collector(data_dir: Path, database: str, *cmd: str) -> list[str]:
    base = [str(BIN / "shadowai-collector"), "--data-dir", str(data_dir), "--database", database]
    return [*base, *cmd]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _family(pid: int) -> list[int]:
    """A process and its children (the workers of `serve --workers N`)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *children]


def _serve(
    data_dir: Path, database: str, port: int, index: int, workers: int = 1
) -> subprocess.Popen[str]:
    serve = _collector(data_dir, database, "serve", "--rules", str(RULES))
    serve += ["--workers", str(workers)] if workers != 1 else []
    serve += ["--grpc", f"127.0.0.1:{port}", "--grpc-mtls", f"127.0.0.1:{port + 1}"]
    serve += ["--http", f"127.0.0.1:{port + 2 + index}", "--enroll-rate", "1000000"]
    log = data_dir / f"serve-{index}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("grpc listening"):
        proc.wait(10)
        raise SystemExit(f"collector {index} did not start: {log.read_text()[-2000:]}")
    return proc


class CpuSampler:
    """The `serve` processes' CPU seconds (summed, their workers too) and open fds (peak),
    read every second. A worker that died keeps the CPU it was last seen with."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.live: list[int] = []
        self.seen: dict[int, float] = {}
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.peak_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self._read()

    def _read(self) -> None:
        live, fds = [], 0
        for pid in (p for parent in self.pids for p in _family(parent)):
            try:
                self.seen[pid] = _cpu_seconds(pid)
                fds += _open_fds(pid)
            except FileNotFoundError:  # ended between the listing and the reading
                continue
            live.append(pid)
        self.live = live
        self.cpu.append(sum(self.seen.values()))
        self.times.append(time.time())
        self.peak_fds = max(self.peak_fds, fds)

    def at(self, wall: float) -> float:
        """CPU seconds used by the wall time `wall` (the reading just after it)."""
        i = min(bisect.bisect_left(self.times, wall), len(self.times) - 1)
        return self.cpu[i]


def _collector_figures(result: dict[str, Any], cpu: CpuSampler) -> dict[str, Any]:
    """The collector's CPU over the traffic and over the settled window, its memory and fds."""
    started, end = float(result["started_at"]), float(result["started_at"] + result["traffic_s"])
    spent = cpu.cpu[-1] - cpu.at(started)
    figures: dict[str, Any] = {
        "collector_enroll_cpu_s": round(cpu.at(started) - cpu.cpu[0], 1),
        "collector_cpu_s": round(spent, 1),
        "events_per_collector_cpu_s": round(result["acked"] / spent) if spent else 0,
        "collector_rss_peak_mb": round(sum(_status_mb(pid, "VmHWM") for pid in cpu.live)),
        "collector_fds_peak": cpu.peak_fds,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    window = float(result["settled_window_s"])
    if window > 0:
        steady = cpu.at(end) - cpu.at(end - window)
        figures["collector_cpu_settled_s"] = round(steady, 1)
        figures["collector_cores_settled"] = round(steady / window, 3)
    return figures


def _schema(store: str, data_dir: Path, schema: str) -> str:
    if store == "sqlite":
        return f"sqlite:///{data_dir / 'collector.db'}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--port", type=int, default=47811)
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1, help="serve processes on one port")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N, each")
    args, rest = parser.parse_known_args()
    # One socket per agent: the `serve` children inherit the soft limit raised to the hard one.
    fleet.raise_fd_limit()
    schema = f"fleet_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        database = _schema(args.store, data_dir, schema)
        # Headroom: an enrollment whose reply was lost is retried and spends a second use.
        uses = args.agents + max(10, args.agents // 20)
        run = _collector(data_dir, database, "tokens", "create", "--uses", str(uses))
        token = subprocess.run(run, check=True, capture_output=True, text=True).stdout.strip()
        procs = [
            _serve(data_dir, database, args.port, i, args.workers) for i in range(args.replicas)
        ]
        pids = [proc.pid for proc in procs]
        try:
            argv = ["--collector", f"127.0.0.1:{args.port}", "--token", token]
            argv += ["--agents", str(args.agents), "--database", database, *rest]
            with CpuSampler(pids) as cpu:
                status, result = fleet.run(argv)
            result.update(_collector_figures(result, cpu))
            print(json.dumps(result, sort_keys=True))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(60)
            if args.store == "postgresql":
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return status


if __name__ == "__main__":
    sys.exit(main())
