"""bench.fleet_pages: simulated agents fill a store through ingest, and every page answers."""

from __future__ import annotations

import json
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import grpc

from bench.collector_seed import catalog
from bench.fleet_agent import SimAgent
from bench.fleet_fill import Aborted, keep, steady_pass

ROOT = Path(__file__).resolve().parents[2]
_ROW = re.compile(r"^(\S.{33}) +(\d{3}) +\d+ +\d+ ")  # a line of the timing table


def test_steady_passes_send_health_and_now_and_then_a_change() -> None:
    agent = SimAgent(3, random.Random(3))
    boot = agent.snapshot()
    models = {e.model_file.path for e in boot if e.WhichOneof("body") == "model_file"}
    kept = keep(3, agent, boot, random.Random(0))
    passes = [steady_pass(kept, random.Random(n), catalog(random.Random(1), 50)) for n in range(80)]
    assert all(p[-1].WhichOneof("body") == "agent_health" for p in passes)
    events = [e for p in passes for e in p[:-1]]
    removed = [e.model_file.path for e in events if e.action == "removed"]
    assert len(removed) <= 1 and set(removed) <= models
    new = [e.model_file.path for e in events if e.action == "discovered"]
    assert new and not set(new) & models
    processes = [e.action for e in events if e.WhichOneof("body") == "inference_process"]
    assert processes[:4] == ["started", "stopped", "started", "stopped"]


def test_a_small_fleet_fills_the_store_through_ingest_and_every_page_answers() -> None:
    cmd = [sys.executable, "-m", "bench.fleet_pages", "--store", "sqlite", "--agents", "5"]
    cmd += ["--passes", "2", "--repeat", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    rows, fill = summary["rows"], summary["fill"]
    assert rows["hosts"] == 5 and rows["events"] == fill["events"] > 5 * 4
    assert rows["model rows"] > 0 and rows["alerts"] > 0 and rows["processes"] > 0
    matches = [_ROW.match(line) for line in run.stdout.splitlines()]
    statuses = {m.group(1).strip(): m.group(2) for m in matches if m}
    assert len(statuses) > 60 and "page /alerts" in statuses, run.stdout
    assert set(statuses.values()) == {"200"}, statuses


def test_a_fill_process_error_reaches_the_pool_whole() -> None:
    sent = Aborted(grpc.StatusCode.UNAVAILABLE, "database is locked")
    received = pickle.loads(pickle.dumps(sent))
    assert (received.code, str(received)) == (sent.code, "UNAVAILABLE: database is locked")
