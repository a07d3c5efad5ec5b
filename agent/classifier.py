"""Score process feature vectors with the shipped ONNX classifier: one single-threaded
ONNX Runtime session, loaded once, one run per scan's batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from agent.detect.features import FEATURE_NAMES, FEATURE_VERSION, FeatureVector, features
from agent.detect.processes import ProcessObservation
from agent.detect.runtimes import RuntimeMatch
from agent.errors import AgentError

MODEL_NAME = "classifier.onnx"
META_NAME = "classifier.json"
OUTPUTS = ("score", "contributions")


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
        import onnxruntime  # type: ignore[import-untyped]  # the wheel ships no stubs

        self.info = _read_meta(meta, f"{where}/{META_NAME}")
        if hashlib.sha256(model).hexdigest() != self.info.model_sha256:
            raise AgentError(f"{where}/{MODEL_NAME}: does not match {META_NAME}'s model_sha256")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session: Any = onnxruntime.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise AgentError(f"{where}/{MODEL_NAME}: ONNX Runtime refused it: {exc}") from None
        self._input = self._session.get_inputs()[0].name

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
        """One score per vector, in order; one session run for the whole batch."""
        if not batch:
            return []
        for vector in batch:
            if vector.version != FEATURE_VERSION or len(vector.values) != len(FEATURE_NAMES):
                raise AgentError(
                    f"feature vector of version {vector.version} given to a model "
                    f"of version {FEATURE_VERSION}"
                )
        x = np.asarray([vector.values for vector in batch], dtype=np.float32)
        scores, contributions = self._session.run(list(OUTPUTS), {self._input: x})
        named = top_features(contributions, self.info.top_features)
        return [Score(round(float(v), 6), t) for v, t in zip(scores.tolist(), named, strict=True)]


def top_features(contributions: Any, count: int) -> list[tuple[str, ...]]:
    """Per row, the names of the `count` largest positive contributions, largest first; a
    stable sort breaks ties by feature order."""
    values = np.asarray(contributions, dtype=np.float32)
    order = np.argsort(-values, axis=1, kind="stable")[:, :count]
    chosen = np.take_along_axis(values, order, axis=1)
    return [
        tuple(FEATURE_NAMES[i] for i, v in zip(row, kept, strict=True) if v > 0)
        for row, kept in zip(order.tolist(), chosen.tolist(), strict=True)
    ]


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
