"""Score process feature vectors with the shipped ONNX classifier, evaluated in plain Python
(agent.detect.linear_graph): the agent loads neither ONNX Runtime nor numpy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agent.detect.features import FEATURE_NAMES, FEATURE_VERSION, FeatureVector, features
from agent.detect.linear_graph import read_linear_graph
from agent.detect.processes import ProcessObservation
from agent.detect.runtimes import RuntimeMatch
from agent.errors import AgentError

MODEL_NAME = "classifier.onnx"
META_NAME = "classifier.json"


@dataclass(frozen=True)
class Score:
    """The probability that a process does or serves inference, and the features that pushed
    it up most (weight x standardised value, largest first, positive ones only)."""

    value: float
    top_features: tuple[str, ...]


@dataclass(frozen=True)
class ModelInfo:
    threshold: float
    top_features: int
    model_sha256: str


def _read_meta(data: bytes, where: str) -> ModelInfo:
    try:
        meta = json.loads(data)
        names, version = meta["feature_names"], meta["feature_version"]
        info = ModelInfo(float(meta["threshold"]), int(meta["top_features"]), meta["model_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentError(f"{where}: not a classifier description: {exc!r}") from None
    if version != FEATURE_VERSION or tuple(names) != FEATURE_NAMES:
        raise AgentError(
            f"{where}: the model was trained on feature version {version} with "
            f"{len(names)} features; this agent computes version {FEATURE_VERSION} "
            f"with {len(FEATURE_NAMES)}"
        )
    return info


class Classifier:
    """Build with `Classifier.shipped()` (the packaged model) or `Classifier.load(folder)`."""

    def __init__(self, *, model: bytes, meta: bytes, where: str = "classifier") -> None:
        self.info = _read_meta(meta, f"{where}/{META_NAME}")
        if hashlib.sha256(model).hexdigest() != self.info.model_sha256:
            raise AgentError(f"{where}/{MODEL_NAME}: does not match {META_NAME}'s model_sha256")
        self._graph = read_linear_graph(model, f"{where}/{MODEL_NAME}")
        if self._graph.width != len(FEATURE_NAMES):
            raise AgentError(
                f"{where}/{MODEL_NAME}: the graph takes {self._graph.width} features, "
                f"{META_NAME} names {len(FEATURE_NAMES)}"
            )

    @classmethod
    def load(cls, folder: Path) -> Classifier:
        try:
            model = (folder / MODEL_NAME).read_bytes()
            meta = (folder / META_NAME).read_bytes()
        except OSError as exc:
            raise AgentError(f"{folder}: cannot read the classifier: {exc}") from None
        return cls(model=model, meta=meta, where=str(folder))

    @classmethod
    def shipped(cls) -> Classifier:
        """The model packaged beside agent.detect."""
        folder = resources.files("agent.detect")
        model = folder.joinpath(MODEL_NAME).read_bytes()
        meta = folder.joinpath(META_NAME).read_bytes()
        return cls(model=model, meta=meta, where="agent/detect")

    @property
    def threshold(self) -> float:
        return self.info.threshold

    def score(self, batch: Sequence[FeatureVector]) -> list[Score]:
        """One score per vector, in order."""
        for vector in batch:
            if vector.version != FEATURE_VERSION or len(vector.values) != len(FEATURE_NAMES):
                raise AgentError(
                    f"feature vector of version {vector.version} given to a model "
                    f"of version {FEATURE_VERSION}"
                )
        scores = []
        for vector in batch:
            value, contributions = self._graph.evaluate(vector.values)
            scores.append(
                Score(round(value, 6), top_features(contributions, self.info.top_features))
            )
        return scores


def top_features(contributions: Sequence[float], count: int) -> tuple[str, ...]:
    """The names of the `count` largest positive contributions, largest first; ties go to
    the feature named first."""
    positive = [i for i, value in enumerate(contributions) if value > 0]
    positive.sort(key=lambda i: -contributions[i])  # stable: ties keep feature order
    return tuple(FEATURE_NAMES[i] for i in positive[:count])


class ProcessScorer:
    """Features and scores for a batch of processes: what the process sensor calls."""

    def __init__(self, classifier: Classifier) -> None:
        self._classifier = classifier

    @property
    def threshold(self) -> float:
        return self._classifier.threshold

    def __call__(
        self, items: Sequence[tuple[ProcessObservation, RuntimeMatch | None]]
    ) -> list[Score]:
        # The GPU reading is joined later; None says "not measured", not "no GPU use".
        return self._classifier.score([features(obs, match, None) for obs, match in items])
