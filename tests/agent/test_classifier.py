"""The shipped process classifier in ONNX Runtime: batched scores, attribution, refusals."""

from __future__ import annotations

import json
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
    # Batched kernels may sum in another order: equal to float32 precision, same features.
    assert [s.value for s in batched] == pytest.approx([s.value for s in alone], abs=2e-6)
    assert [s.top_features for s in batched] == [s.top_features for s in alone]
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


def test_bytes_onnx_runtime_refuses_become_an_agent_error(tmp_path: Path) -> None:
    broken = b"\x08\x07garbage"
    meta = json.loads((SHIPPED / META_NAME).read_text())
    import hashlib

    meta["model_sha256"] = hashlib.sha256(broken).hexdigest()
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    (tmp_path / MODEL_NAME).write_bytes(broken)

    with pytest.raises(AgentError, match="ONNX Runtime refused"):
        Classifier.load(tmp_path)


def test_a_missing_model_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="cannot read"):
        Classifier.load(tmp_path)
