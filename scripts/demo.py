"""`make demo`: a collector, an enrolled agent, real model files (one dangerous pickle) and a
real ONNX Runtime inference server, up until Ctrl-C.

Everything lives in demo-data/ (the venv `make demo` builds is kept across runs).
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_models import ONNX_NAME, PICKLE_NAME, write_demo_folder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "demo-data"
BIN = Path(sys.executable).parent
COLLECTOR = [str(BIN / "shadowai-collector"), "--data-dir", str(DATA / "collector")]
AGENT = [str(BIN / "shadowai-agent"), "--data-dir", str(DATA / "agent")]
# What the demo should make the rules say (rules/*.yml titles).
EXPECTED_ALERTS = (
    "Model file that runs code when loaded (dangerous serialization)",
    "Inference server listening on a non-loopback address",
)


def _run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, check=True, capture_output=True, text=True, input=stdin)
    return done.stdout.strip()


def _start(args: list[str], ready: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a process that prints `ready`-prefixed lines once it listens; those lines."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip()]
    if not lines[0].startswith(ready):
        proc.terminate()
        raise SystemExit(f"{args[0]} did not start: {lines[0]!r}")
    return proc, lines


def _start_collector() -> tuple[subprocess.Popen[str], str, str]:
    # The rule pack from this checkout: the demo's venv holds an installed copy of the code,
    # which has no rules next to it.
    rules = ["--rules", str(ROOT / "rules")]
    listen = ["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    proc, lines = _start([*COLLECTOR, "serve", *listen, *rules], "grpc listening on ")
    assert proc.stdout is not None
    http_line = proc.stdout.readline().strip()
    if not http_line.startswith("dashboard on "):
        proc.terminate()
        raise SystemExit(f"collector did not start: {http_line!r}")
    return proc, lines[0].rsplit(" ", 1)[1], http_line.rsplit(" ", 1)[1]


def _start_inference_server(model: Path) -> tuple[subprocess.Popen[str], str]:
    # All interfaces on purpose: that is what the exposure rule is about.
    server = [sys.executable, str(ROOT / "scripts" / "demo_server.py"), str(model)]
    proc, lines = _start([*server, "--host", "0.0.0.0", "--port", "0"], "serving ")
    return proc, lines[0].rsplit(" ", 1)[1]


def _demo_user() -> str | None:
    """The demo admin's generated password, or None when this collector has no users."""
    password = secrets.token_urlsafe(12)
    try:
        _run(*COLLECTOR, "users", "create", "--username", "demo", "--role", "admin",
             stdin=f"{password}\n")  # fmt: skip
    except subprocess.CalledProcessError as exc:
        why = (exc.stderr.strip().splitlines() or ["no reason given"])[-1]
        print(f"warning: could not create the demo user, no login: {why}")
        return None
    return password


def _alerts(dashboard: str, api_token: str) -> set[str]:
    request = urllib.request.Request(
        f"{dashboard}api/v1/alerts", headers={"Authorization": f"Bearer {api_token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {str(a["rule_title"]) for a in json.load(response)["items"]}


def _watch_alerts(dashboard: str, api_token: str, stop: threading.Event) -> None:
    """Say when each expected alert shows (the agent needs a pass, then a process scan)."""
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while len(seen) < len(EXPECTED_ALERTS) and time.monotonic() < deadline:
        if stop.wait(3.0):
            return
        try:
            titles = _alerts(dashboard, api_token)
        except OSError:
            continue
        for title in EXPECTED_ALERTS:
            if title in titles and title not in seen:
                seen.add(title)
                print(f"alert: {title}", flush=True)


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> int:
    for part in ("collector", "agent", "models"):
        shutil.rmtree(DATA / part, ignore_errors=True)
    models = write_demo_folder(DATA / "models")
    print(f"wrote {len(models)} model files and a decoy to {DATA / 'models'}, among them")
    print(f"  {PICKLE_NAME}: a pickle that would run os.system when loaded (never loaded here)")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    procs: list[subprocess.Popen[str]] = []
    try:
        collector, grpc_address, dashboard = _start_collector()
        procs.append(collector)
        server, served = _start_inference_server(DATA / "models" / ONNX_NAME)
        procs.append(server)
        print(f"ONNX Runtime inference server on {served} (every interface, so that the")
        print("  exposure rule fires: anyone on this network can reach it while the demo runs)")
        token = _run(*COLLECTOR, "tokens", "create", "--group", "demo")
        api_token = _run(*COLLECTOR, "api-tokens", "create", "--role", "admin")
        password = _demo_user()
        print(_run(*AGENT, "enroll", "--collector", grpc_address, "--token", token))
        paths = ["--path", str(DATA / "models")]  # the demo's own models, shown at once
        procs.append(subprocess.Popen([*AGENT, "run", *paths, "--interval", "15"]))
        print(f"\ndashboard: {dashboard}")
        if password is not None:
            print(f"log in as demo, password {password}")
        print(f"API: curl -H 'Authorization: Bearer {api_token}' {dashboard}api/v1/alerts")
        print(f"inference: curl {served.replace('0.0.0.0', '127.0.0.1')}/v1/models")
        print("the agent re-scans every 15 s: drop a .gguf into demo-data/models to see it")
        print("Ctrl-C to stop\n", flush=True)
        watcher = threading.Thread(target=_watch_alerts, args=(dashboard, api_token, stop))
        watcher.start()
        while not stop.wait(1.0):
            if any(proc.poll() is not None for proc in procs):
                print("a demo process exited; stopping")
                break
        stop.set()
        watcher.join()
    finally:
        _stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
