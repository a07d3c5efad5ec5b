"""An inference server bound to all interfaces on a laptop becomes a high alert."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

EXPOSED_RULE_TITLE = "Inference server listening on a non-loopback address"

# A real ONNX Runtime session that then serves HTTP on every interface, as a careless
# "quick demo" server would.
SERVER = """
import http.server, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})
server = http.server.HTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def exposed_server(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    weight = numpy_helper.from_array(np.full((4, 2), 0.5, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path / "tiny.onnx")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip().isdigit()
    yield proc
    proc.kill()
    proc.wait(10)


def test_an_exposed_inference_server_alerts_on_the_dashboard(
    collector: Any, agent: Any, tmp_path: Path, exposed_server: subprocess.Popen[str]
) -> None:
    token = collector.cli("tokens", "create")
    assert agent("enroll", "--collector", collector.grpc, "--token", token).returncode == 0
    empty = tmp_path / "no-models"
    empty.mkdir()
    shipped = agent("run", "--once", "--path", str(empty), "--timeout", "60")
    assert shipped.returncode == 0, shipped.stderr

    with collector.signed_in() as dashboard:
        page = dashboard.get("alerts")
        processes = dashboard.get("processes").text
    assert EXPOSED_RULE_TITLE in page.text
    assert str(exposed_server.pid) in processes
    assert "onnxruntime" in processes


def test_scan_lists_the_running_inference_server_after_the_models(
    agent: Any, tmp_path: Path, exposed_server: subprocess.Popen[str]
) -> None:
    import json

    result = agent("scan", "--format", "json", str(tmp_path / "nothing-here-yet"))
    assert result.returncode == 2  # a PATH that does not exist
    (tmp_path / "empty").mkdir()
    result = agent("scan", "--format", "json", str(tmp_path / "empty"))
    events = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [e for e in events if e.get("process.pid") == exposed_server.pid]
    assert len(mine) == 1
    assert mine[0]["event.dataset"] == "shadowai.inference_process"
    assert mine[0]["ai.runtime.name"] == "onnxruntime"
    assert mine[0]["ai.listen.exposed"] is True
