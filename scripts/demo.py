"""`make demo`: a collector, an enrolled agent and real model files, up until Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_models import write_demo_folder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "demo-data"
BIN = Path(sys.executable).parent


def _run(*args: str) -> str:
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _start_collector() -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            str(BIN / "shadowai-collector"),
            "serve",
            "--data-dir",
            str(DATA / "collector"),
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    grpc_line = proc.stdout.readline().strip()
    http_line = proc.stdout.readline().strip()
    if not grpc_line.startswith("grpc listening on ") or not http_line.startswith("dashboard on"):
        proc.terminate()
        raise SystemExit(f"collector did not start: {grpc_line!r} {http_line!r}")
    return proc, grpc_line.rsplit(" ", 1)[1], http_line.rsplit(" ", 1)[1]


def main() -> int:
    shutil.rmtree(DATA, ignore_errors=True)
    models = write_demo_folder(DATA / "models")
    print(f"wrote {len(models)} model files and a decoy to {DATA / 'models'}")
    collector, grpc_address, dashboard = _start_collector()
    agent = None
    try:
        collector_cmd = [str(BIN / "shadowai-collector"), "--data-dir", str(DATA / "collector")]
        token = _run(*collector_cmd, "tokens", "create", "--group", "demo")
        api_token = _run(*collector_cmd, "api-tokens", "create", "--role", "admin")
        agent_cmd = [str(BIN / "shadowai-agent"), "--data-dir", str(DATA / "agent")]
        print(_run(*agent_cmd, "enroll", "--collector", grpc_address, "--token", token))
        paths = ["--path", str(DATA / "models")]  # the demo's own models, shown at once
        agent = subprocess.Popen([*agent_cmd, "run", *paths, "--interval", "15"])
        print(f"\ndashboard on {dashboard}")
        print(f"API: curl -H 'Authorization: Bearer {api_token}' {dashboard}api/v1/alerts")
        print("the agent re-scans every 15 s: drop a .gguf into demo-data/models to see it")
        print("Ctrl-C to stop\n")
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1.0):
            if collector.poll() is not None or agent.poll() is not None:
                print("a demo process exited; stopping")
                break
    finally:
        for proc in (agent, collector):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
