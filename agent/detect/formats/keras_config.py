"""Judge a Keras model config (Keras 3 config.json or Keras 2 HDF5 model_config): a Lambda layer
carries marshalled bytecode, and a reference to a function or class outside Keras is imported by
name when the model loads; count the weights its layers declare where the config says."""

from __future__ import annotations

from agent.detect.formats.unsafe import DANGEROUS, NONE, SUSPICIOUS, Judgement, Verdict, verdict

LAMBDA_REASON = "keras Lambda layer"
MAX_NODES = 1 << 20
MAX_TEXT = 256
# Layers and functions whose config holds Python code rather than a reference to a class.
_CODE_CLASSES = frozenset({"Lambda", "__lambda__"})
# Where Keras resolves serialised references itself, without running outside code.
_KERAS_MODULES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras", "tensorflow.keras")


def judge_config(config: object) -> Judgement:
    """dangerous for a Lambda or a denied reference, suspicious for a reference outside Keras,
    none otherwise; the walk is iterative and stops after MAX_NODES values (suspicious)."""
    pending: list[object] = [config]
    seen = 0
    reasons: dict[str, str] = {}
    while pending:
        if seen >= MAX_NODES:
            reasons.setdefault("keras config too large to read through", SUSPICIOUS)
            break
        node = pending.pop()
        seen += 1
        if isinstance(node, dict):
            _judge_node(node, reasons)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    risk = DANGEROUS if DANGEROUS in reasons.values() else SUSPICIOUS if reasons else NONE
    return Judgement(risk, tuple(reasons)[:20])


def _judge_node(node: dict[str, object], reasons: dict[str, str]) -> None:
    kind = node.get("class_name")
    if isinstance(kind, str) and kind in _CODE_CLASSES:
        reasons.setdefault(LAMBDA_REASON, DANGEROUS)
    module = node.get("module")
    if not (isinstance(module, str) and isinstance(kind, str)) or module.startswith(_KERAS_MODULES):
        return
    name = f"{module}.{kind}"[:MAX_TEXT]
    v = verdict(name, kind)
    if v is Verdict.DENIED:
        reasons.setdefault(f"keras config imports dangerous {name}", DANGEROUS)
    elif v is Verdict.UNKNOWN:
        reasons.setdefault(f"keras config imports {name}", SUSPICIOUS)
