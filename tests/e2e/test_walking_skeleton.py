"""A real scan becomes a signed event, crosses gRPC over TLS, is stored and alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from gguf import GGUFWriter

GGUF_RULE_TITLE = "Model not on the approved list"


def write_gguf(path: Path) -> None:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("e2e-llama")
    writer.add_context_length(2048)
    writer.add_tensor("token_embd.weight", np.ones((32, 16), dtype=np.float32))
    writer.add_tensor("output.weight", np.ones((16, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_dropped_on_a_laptop_alerts_on_the_dashboard(
    collector: Any, agent: Any, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    write_gguf(models / "llama.gguf")
    (models / "notes.txt").write_text("not a model")
    token = collector.cli("tokens", "create", "--group", "engineering")
    api_token = collector.cli("api-tokens", "create", "--role", "viewer")

    enrolled = agent("enroll", "--collector", collector.grpc, "--token", token)
    assert enrolled.returncode == 0, enrolled.stderr
    shipped = agent("run", "--once", "--path", str(models), "--timeout", "60")
    assert shipped.returncode == 0, shipped.stderr

    anonymous = httpx.get(f"{collector.dashboard}alerts", timeout=10, follow_redirects=False)
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/login?next=%2Falerts")
    with collector.signed_in() as dashboard:
        page = dashboard.get("alerts")
    assert page.status_code == 200
    assert GGUF_RULE_TITLE in page.text
    assert "llama.gguf" in page.text

    api = httpx.get(
        f"{collector.dashboard}api/v1/models",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=10,
    )
    assert api.status_code == 200
    body = api.json()
    items = body["items"] if isinstance(body, dict) else body
    (model,) = items
    assert model["file.path"] == str(models / "llama.gguf")
    assert model["ai.model.format"] == "gguf"
    assert model["ai.model.parameters"] == 32 * 16 * 2
    assert model["host.name"]


def test_enrollment_token_is_single_use(collector: Any, agent: Any, tmp_path: Path) -> None:
    token = collector.cli("tokens", "create")
    assert agent("enroll", "--collector", collector.grpc, "--token", token).returncode == 0
    again = agent("enroll", "--collector", collector.grpc, "--token", token)
    assert again.returncode != 0
    assert "already used" in again.stderr


def test_enrollment_refuses_a_collector_whose_ca_does_not_match_the_token(
    collector: Any, agent: Any
) -> None:
    token = collector.cli("tokens", "create")
    prefix, token_id, _fingerprint, secret = token.split("_", 3)
    forged = f"{prefix}_{token_id}_{'0' * 64}_{secret}"
    result = agent("enroll", "--collector", collector.grpc, "--token", forged)
    assert result.returncode == 2
    assert "fingerprint" in result.stderr


def test_scan_json_prints_design_fields_for_models_only(agent: Any, tmp_path: Path) -> None:
    write_gguf(tmp_path / "weights.bin")
    (tmp_path / "readme.md").write_text("# nothing here")
    result = agent("scan", "--no-processes", "--format", "json", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1
    (event,) = lines
    assert event["event.dataset"] == "shadowai.model_file"
    assert event["file.path"] == str(tmp_path / "weights.bin")
    assert event["ai.model.format"] == "gguf"
    assert event["ai.model.architecture"] == "llama"
    assert event["ai.model.quantization"] == "F32"
    assert len(event["file.hash.sha256"]) == 64
    for field in ("@timestamp", "event.action", "host.name", "host.os.type", "agent.version"):
        assert field in event
