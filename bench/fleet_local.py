"""Run the fleet simulator against a collector started here (SQLite or a fresh PostgreSQL
schema): `python -m bench.fleet_local --store sqlite|postgresql [--replicas K] [bench.fleet
options]`. K > 1 starts K `serve` processes on the same ports (gRPC binds with SO_REUSEPORT,
so the kernel spreads connections over them) sharing one database."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

from bench import fleet

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BIN = Path(sys.executable).parent
RULES = Path(__file__).resolve().parent.parent / "rules"


def _collector(data_dir: Path, database: str, *cmd: str) -> list[str]:
    base = [str(BIN / "shadowai-collector"), "--data-dir", str(data_dir), "--database", database]
    return [*base, *cmd]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(data_dir: Path, database: str, port: int, index: int) -> subprocess.Popen[str]:
    serve = _collector(data_dir, database, "serve", "--rules", str(RULES))
    serve += ["--grpc", f"127.0.0.1:{port}", "--grpc-mtls", f"127.0.0.1:{port + 1}"]
    serve += ["--http", f"127.0.0.1:{port + 2 + index}", "--enroll-rate", "1000000"]
    proc = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("grpc listening"):
        raise SystemExit(f"collector {index} did not start: {line!r}")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--port", type=int, default=47811)
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1, help="serve processes on one port")
    args, rest = parser.parse_known_args()
    schema = f"fleet_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if args.store == "sqlite":
            database = f"sqlite:///{data_dir / 'collector.db'}"
        else:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            database = (
                "postgresql+psycopg://postgres@127.0.0.1:5432/test"
                f"?options=-csearch_path%3D{schema}"
            )
        run = _collector(data_dir, database, "tokens", "create")
        token = subprocess.run(
            [*run, "--uses", str(args.agents)], check=True, capture_output=True, text=True
        ).stdout.strip()
        procs = [_serve(data_dir, database, args.port, i) for i in range(args.replicas)]
        # Start-up (imports, schema) is not ingest: count from here.
        cpu0 = sum(_cpu_seconds(proc.pid) for proc in procs)
        try:
            argv = ["--collector", f"127.0.0.1:{args.port}", "--token", token]
            argv += ["--agents", str(args.agents), "--database", database, *rest]
            status, result = fleet.run(argv)
            cpu = sum(_cpu_seconds(proc.pid) for proc in procs) - cpu0
            result["collector_cpu_s"] = round(cpu, 1)
            result["events_per_collector_cpu_s"] = round(result["acked"] / cpu) if cpu else 0
            print(json.dumps(result, sort_keys=True))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
            if args.store == "postgresql":
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return status


if __name__ == "__main__":
    sys.exit(main())
