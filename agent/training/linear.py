"""The classifier: a logistic regression over standardised features, written directly in ONNX.

A linear model keeps attribution exact (each feature's contribution is weight x standardised
value, an output of the graph itself) and the exported bytes reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

SEED = 0
C = 0.5  # inverse L2 strength: small data, many correlated features
DECIMALS = 6  # parameters are rounded so that the same data gives the same bytes
INPUT = "features"
OUTPUTS = ("score", "contributions")
OPSET = 13

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LinearModel:
    mean: Vector
    scale: Vector
    weights: Vector
    bias: float

    def logits(self, x: Matrix) -> Vector:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    def scores(self, x: Matrix) -> Vector:
        return 1.0 / (1.0 + np.exp(-self.logits(x)))


def program_weights(programs: Sequence[str], y: Vector) -> Vector:
    """Each program weighs the same whatever its number of rows, and each class half."""
    names, inverse, counts = np.unique(
        np.asarray(programs), return_inverse=True, return_counts=True
    )
    weights = 1.0 / counts[inverse]
    for label in (0, 1):
        chosen = y == label
        if chosen.any():
            weights[chosen] *= 0.5 * len(names) / weights[chosen].sum()
    return weights


def fit(x: Matrix, y: Vector, weights: Vector) -> LinearModel:
    """L2 logistic regression (scikit-learn, lbfgs: deterministic) on standardised columns."""
    from sklearn.linear_model import (  # type: ignore[import-untyped]  # no stubs
        LogisticRegression,
    )

    mean = np.round(x.mean(axis=0), DECIMALS)
    scale = np.round(x.std(axis=0), DECIMALS)
    scale[scale < 1e-6] = 1.0  # a constant column: no information, no division by zero
    model = LogisticRegression(C=C, max_iter=10_000, tol=1e-10, random_state=SEED)
    model.fit((x - mean) / scale, y, sample_weight=weights)
    return LinearModel(
        mean=mean,
        scale=scale,
        weights=np.round(model.coef_[0], DECIMALS),
        bias=round(float(model.intercept_[0]), DECIMALS),
    )


def to_onnx(model: LinearModel, feature_names: Sequence[str]) -> bytes:
    """The graph: contributions = (x - mean) / scale * w; score = sigmoid(sum + bias)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    count = len(feature_names)
    constants: dict[str, npt.NDArray[Any]] = {
        "mean": model.mean.astype(np.float32),
        "inv_scale": (1.0 / model.scale).astype(np.float32),
        "weights": model.weights.astype(np.float32),
        "bias": np.asarray([model.bias], dtype=np.float32),
        "axes": np.asarray([1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Sub", [INPUT, "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_scale"], ["standardised"]),
        helper.make_node("Mul", ["standardised", "weights"], ["contributions"]),
        helper.make_node("ReduceSum", ["contributions", "axes"], ["total"], keepdims=0),
        helper.make_node("Add", ["total", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shadowai_process_classifier",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", count])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, ["batch", count]),
        ],
        initializer=[numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shadowai-train"
    )
    proto.ir_version = 8
    proto.doc_string = "features: " + ",".join(feature_names)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
