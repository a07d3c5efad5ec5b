"""The demo's inference server: starts, listens, answers, refuses bad requests, and is what
the agent's process scan reports as an exposed ONNX Runtime server."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from demo_models import ONNX_NAME, write_onnx
from demo_server import BadRequest, Tensor, parse_request
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
INPUTS = [Tensor("x", (None, 4))]


def _serve(model: Path, host: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo_server.py"), str(model), "--host", host],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    try:
        assert line.startswith("serving iris-classifier on http://"), line
        yield proc, line.rsplit(" ", 1)[1].replace("0.0.0.0", "127.0.0.1")
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    yield from _serve(write_onnx(tmp_path / ONNX_NAME), "127.0.0.1")


def test_it_lists_its_model(served: tuple[subprocess.Popen[str], str]) -> None:
    _, url = served
    response = httpx.get(f"{url}/v1/models", timeout=10)
    assert response.json() == {
        "models": [{"id": "iris-classifier", "inputs": {"x": ["N", 4]}, "outputs": {"y": ["N", 3]}}]
    }


def test_it_answers_an_inference(served: tuple[subprocess.Popen[str], str]) -> None:
    _, url = served
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    response = httpx.post(f"{url}/v1/infer", json={"inputs": {"x": rows}}, timeout=10)
    assert response.status_code == 200
    scores = response.json()["outputs"]["y"]
    assert len(scores) == 2
    assert all(abs(sum(row) - 1.0) < 1e-5 for row in scores)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not JSON"),
        (b'{"inputs": {"x": [[1, 2, 3]]}}', "shape [1, 3], expected ['N', 4]"),
        (b'{"inputs": {"z": [[1, 2, 3, 4]]}}', "inputs must be exactly ['x']"),
        (b'{"inputs": {"x": [[1, 2, "a", 4]]}}', "not a rectangular array of numbers"),
    ],
)
def test_a_bad_request_is_400_with_the_reason(
    served: tuple[subprocess.Popen[str], str], body: bytes, reason: str
) -> None:
    proc, url = served
    response = httpx.post(f"{url}/v1/infer", content=body, timeout=10)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert proc.poll() is None


def test_the_agent_sees_an_exposed_onnxruntime_server(tmp_path: Path) -> None:
    model = write_onnx(tmp_path / ONNX_NAME)
    for proc, _ in _serve(model, "0.0.0.0"):
        (tmp_path / "empty").mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        scan = subprocess.run(
            [sys.executable, "-m", "agent.cli", "--data-dir", str(tmp_path / "agent"), "scan",
             "--format", "json", str(tmp_path / "empty")],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        events = [json.loads(line) for line in scan.stdout.splitlines()]
        mine = [e for e in events if e.get("process.pid") == proc.pid]
        assert len(mine) == 1, scan.stderr
        assert mine[0]["ai.runtime.name"] == "onnxruntime"
        assert mine[0]["ai.listen.exposed"] is True


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=30,
)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_a_bad_request(body: bytes) -> None:
    with contextlib.suppress(BadRequest):  # any other exception fails the test
        parse_request(body, INPUTS)


@given(json_values)
def test_any_json_parses_or_is_a_bad_request(value: object) -> None:
    for request in (value, {"inputs": value}, {"inputs": {"x": value}}):
        try:
            feeds = parse_request(json.dumps(request).encode(), INPUTS)
        except BadRequest:
            continue
        assert feeds["x"].shape[1] == 4


def test_deep_nesting_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        parse_request(b'{"inputs": {"x": ' + b"[" * 20000 + b"]" * 20000 + b"}}", INPUTS)
