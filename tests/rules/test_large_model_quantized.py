"""The default pack's large-model rule and the CycloneDX export see a 4-bit 70B MLX folder
as the 70B model it is, from the flattened event `shadowai-agent scan` prints."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.bom import build_bom
from agent.cli import main
from bench import model_layouts as layouts
from collector.governance import load_rule_dir

RULES = Path(__file__).resolve().parents[2] / "rules"
LARGE = "Model over 30B parameters on an endpoint"
LLAMA_33_70B = 70_553_706_496


@pytest.fixture(scope="module")
def mlx_70b_event(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("hf")
    layouts.mlx_folder(root / "Llama-3.3-70B-Instruct-4bit", "llama", layouts.LLAMA_70B)
    out = io.StringIO()
    argv = ["scan", "--no-processes", "--no-hash", "--format", "json", str(root)]
    assert main(argv, out=out, err=io.StringIO()) == 0
    (event,) = (json.loads(line) for line in out.getvalue().splitlines())
    return event


def test_the_large_model_rule_fires_on_the_4bit_70b_mlx_folder(
    mlx_70b_event: dict[str, object],
) -> None:
    rules = load_rule_dir(RULES)

    fired = {match.title for match in rules.evaluate(mlx_70b_event)}

    assert LARGE in fired


def test_the_rule_stays_quiet_on_the_count_of_packed_words(
    mlx_70b_event: dict[str, object],
) -> None:
    packed_words = dict(mlx_70b_event, **{"ai.model.parameters": 11_025_129_472})

    fired = {match.title for match in load_rule_dir(RULES).evaluate(packed_words)}

    assert LARGE not in fired


def test_the_cyclonedx_export_carries_the_true_count(mlx_70b_event: dict[str, object]) -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)

    bom = json.loads(build_bom([mlx_70b_event], tool_version="0", now=now, host_name="mac"))

    (component,) = bom["components"]
    properties = {p["name"]: p["value"] for p in component["properties"]}
    assert properties["shadowai:ai.model.parameters"] == str(LLAMA_33_70B)
    assert properties["shadowai:ai.model.quantization"] == "MLX-4bit"
    assert component["modelCard"]["modelParameters"]["modelArchitecture"] == "llama"
