"""The shipped process classifier: batched scores, attribution, refusals, and an agent that
scores without ONNX Runtime or numpy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.classifier import META_NAME, MODEL_NAME, Classifier, Score
from agent.detect.features import FEATURE_NAMES, FeatureVector, features
from agent.detect.processes import ProcessObservation
from agent.errors import AgentError
from agent.training.dataset import Row, load

SHIPPED = Path(__file__).resolve().parents[2] / "agent" / "detect"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.shipped()


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return load()


def program(rows: list[Row], name: str) -> list[Row]:
    chosen = [row for row in rows if row.program == name]
    assert chosen, f"the dataset has no rows of {name}"
    return chosen


def test_a_batch_scores_as_each_vector_alone(classifier: Classifier, rows: list[Row]) -> None:
    vectors = [row.features() for row in rows[:40]]
    batched = classifier.score(vectors)

    alone = [classifier.score([vector])[0] for vector in vectors]

    assert len(batched) == len(vectors)
    assert batched == alone
    assert all(0.0 <= score.value <= 1.0 for score in batched)
    assert classifier.score([]) == []


def test_inference_scores_high_and_ordinary_low(classifier: Classifier, rows: list[Row]) -> None:
    llama = classifier.score([row.features() for row in program(rows, "node-llama-cpp-server")])
    database = classifier.score([row.features() for row in program(rows, "postgresql")])

    assert min(score.value for score in llama) >= classifier.threshold
    assert max(score.value for score in database) < classifier.threshold


def test_a_renamed_llama_cpp_binary_scores_above_the_threshold(
    classifier: Classifier, rows: list[Row]
) -> None:
    scores = classifier.score([row.features() for row in program(rows, "llama-renamed-binary")])

    assert all(score.value >= classifier.threshold for score in scores)
    assert all("lib:ggml" in score.top_features for score in scores)


def test_top_features_are_named_positive_contributions(classifier: Classifier) -> None:
    seen = ProcessObservation(
        pid=1,
        create_time=1.0,
        name="worker",
        libraries=("/opt/app/libggml-base.so", "/opt/app/libllama.so"),
        mapped_files=("/opt/app/worker", "/data/models/q.gguf"),
    )
    score = classifier.score([features(seen, None, sizes={})])[0]
    nothing = classifier.score([features(ProcessObservation(2, 1.0, "x"), None)])[0]

    assert isinstance(score, Score)
    assert 0 < len(score.top_features) <= 3
    assert set(score.top_features) <= set(FEATURE_NAMES)
    assert score.value > nothing.value


def test_a_vector_of_another_version_is_refused(classifier: Classifier) -> None:
    stale = FeatureVector(values=(0.0,) * len(FEATURE_NAMES), version=0)

    with pytest.raises(AgentError, match="version 0"):
        classifier.score([stale])


def test_a_model_for_other_features_is_refused(tmp_path: Path) -> None:
    meta = json.loads((SHIPPED / META_NAME).read_text())
    meta["feature_names"] = meta["feature_names"][:-1]
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    (tmp_path / MODEL_NAME).write_bytes((SHIPPED / MODEL_NAME).read_bytes())

    with pytest.raises(AgentError, match="feature version"):
        Classifier.load(tmp_path)


def test_a_model_that_does_not_match_its_description_is_refused(tmp_path: Path) -> None:
    (tmp_path / META_NAME).write_bytes((SHIPPED / META_NAME).read_bytes())
    (tmp_path / MODEL_NAME).write_bytes(b"not an onnx model")

    with pytest.raises(AgentError, match="model_sha256"):
        Classifier.load(tmp_path)


def described(tmp_path: Path, model: bytes) -> Path:
    """A classifier folder holding `model` and the shipped description with its digest."""
    meta = json.loads((SHIPPED / META_NAME).read_text())
    meta["model_sha256"] = hashlib.sha256(model).hexdigest()
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    (tmp_path / MODEL_NAME).write_bytes(model)
    return tmp_path


def test_bytes_that_are_no_model_become_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"classifier\.onnx: not the linear classifier graph"):
        Classifier.load(described(tmp_path, b"\x08\x07garbage"))


def test_a_model_that_is_not_linear_is_refused_by_its_operator(tmp_path: Path) -> None:
    import onnx  # the training extra's: writes the changed model as onnx would
    from onnx import helper

    proto = onnx.load_from_string((SHIPPED / MODEL_NAME).read_bytes())
    proto.graph.node[1].output[0] = "hidden"
    proto.graph.node.insert(2, helper.make_node("Tanh", ["hidden"], ["standardised"]))

    with pytest.raises(AgentError, match=r"classifier\.onnx: .*node 2 is 'Tanh'"):
        Classifier.load(described(tmp_path, proto.SerializeToString()))


def test_the_agent_scores_processes_without_onnx_runtime_or_numpy() -> None:
    # What the worker imports and runs: the daemon's modules, then a process scan of this
    # machine scored by the shipped classifier (a failed load would log "unavailable").
    probe = (
        "import sys, agent.worker\n"
        "from agent.scan_command import process_sensor\n"
        "sensor = process_sensor('linux')\n"
        "list(sensor.poll(snapshot=True))\n"
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)

    assert "classifier unavailable" not in ran.stderr
    assert ran.stdout.strip() == "[]"


def test_a_missing_model_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="cannot read"):
        Classifier.load(tmp_path)
