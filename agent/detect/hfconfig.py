"""What a Hugging Face model folder's small files say: config.json (architecture, context length,
quantization method), adapter_config.json, quantize_config.json and the README's model card.

Pure: bytes or text in, values out; malformed input raises FormatError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from agent.detect.quantconfig import scheme_of_config
from agent.detect.quantized import Scheme
from agent.errors import FormatError

MAX_CONFIG_BYTES = 1 << 20
MAX_CARD_CHARS = 256 << 10
_MAX_BASE_MODELS = 16
_MAX_CONTEXT = 1 << 40

_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "n_ctx",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
)
# Multimodal configs keep the language model's settings one level down.
_NESTED_CONFIGS = ("text_config", "llm_config", "language_config")
_DTYPES = {
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "int8": "I8",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}
# A hub id (org/name or name) as opposed to a local path, which stays on the laptop.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?")


@dataclass(frozen=True)
class ConfigInfo:
    """What config.json (or a PEFT adapter_config.json) says about the weights beside it."""

    architecture: str | None = None
    model_type: str | None = None
    context_length: int | None = None
    dtype: str | None = None  # the declared dtype's short name: BF16, F16, F32
    quantization: str | None = None  # method and bits: GPTQ-4bit, AWQ-4bit, BNB-4bit, MLX-4bit
    name: str | None = None  # _name_or_path, only when it is a hub id
    base_model: str | None = None  # an adapter's base_model_name_or_path
    adapter: str | None = None  # an adapter's peft_type: LORA, IA3, ...
    producer: str | None = None  # "transformers 4.45.0"
    is_model: bool = False  # False for a config.json that belongs to some other program
    scheme: Scheme | None = None  # method, bits and group size, to unpack packed weights


@dataclass(frozen=True)
class CardInfo:
    """The README's YAML front matter, as far as the inventory uses it."""

    license: str | None = None
    base_model: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None


def load_json(fmt: str, data: bytes, limit: int) -> dict[str, object]:
    if len(data) > limit:
        raise FormatError(fmt, limit, f"larger than {limit} bytes")
    try:
        value = json.loads(data)
    except json.JSONDecodeError as e:
        raise FormatError(fmt, e.pos, e.msg) from None
    except RecursionError:
        raise FormatError(fmt, 0, "nested too deeply") from None
    except ValueError as e:  # bad UTF-8, integers past the digit limit
        raise FormatError(fmt, 0, str(e)) from None
    if not isinstance(value, dict):
        raise FormatError(fmt, 0, "not a JSON object")
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= _MAX_CONTEXT else None


def parse_config(data: bytes) -> ConfigInfo:
    """A transformers config.json or a PEFT adapter_config.json; FormatError if it is no JSON
    object or larger than MAX_CONFIG_BYTES. Values of the wrong type are left out."""
    cfg = load_json("hf-config", data, MAX_CONFIG_BYTES)
    nested = [cfg, *(n for k in _NESTED_CONFIGS if isinstance(n := cfg.get(k), dict))]
    architectures = cfg.get("architectures")
    architecture = (
        _text(architectures[0]) if isinstance(architectures, list) and architectures else None
    )
    model_type = _text(cfg.get("model_type"))
    adapter = _text(cfg.get("peft_type"))
    version = _text(cfg.get("transformers_version"))
    return ConfigInfo(
        architecture=architecture,
        model_type=model_type,
        context_length=_first_count(nested, _CONTEXT_KEYS),
        dtype=_dtype(nested),
        quantization=_quantization(cfg),
        name=_hub_id(cfg.get("_name_or_path")),
        base_model=_hub_id(cfg.get("base_model_name_or_path")),
        adapter=adapter,
        producer=f"transformers {version}" if version else None,
        is_model=bool(architecture or model_type or adapter),
        scheme=scheme_of_config(cfg),
    )


def parse_genai_config(data: bytes) -> ConfigInfo:
    """ONNX Runtime GenAI's genai_config.json: `model.type` is the family, `model.context_length`
    the context; the weights' quantization is read from the graph itself."""
    cfg = load_json("genai-config", data, MAX_CONFIG_BYTES)
    model = cfg.get("model")
    if not isinstance(model, dict):
        return ConfigInfo()
    model_type = _text(model.get("type"))
    return ConfigInfo(
        model_type=model_type,
        context_length=_count(model.get("context_length")),
        is_model=model_type is not None,
    )


def _first_count(configs: list[dict[str, object]], keys: tuple[str, ...]) -> int | None:
    for cfg in configs:
        for key in keys:
            found = _count(cfg.get(key))
            if found is not None:
                return found
    return None


def _dtype(configs: list[dict[str, object]]) -> str | None:
    for cfg in configs:
        # transformers 4.56 renamed torch_dtype to dtype.
        name = _text(cfg.get("torch_dtype")) or _text(cfg.get("dtype"))
        if name:
            name = name.removeprefix("torch.")
            return _DTYPES.get(name, name.upper()[:16])
    return None


def _hub_id(value: object) -> str | None:
    text = _text(value)
    return text if text and _HUB_ID.fullmatch(text) and ".." not in text else None


def _bits(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 < value <= 64:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _quantization(cfg: dict[str, object]) -> str | None:
    found = cfg.get("quantization_config")
    if isinstance(found, dict):
        named = _method(found)
        if named:
            return named
    # mlx-lm writes "quantization": {"group_size", "bits"} at the top level.
    mlx = cfg.get("quantization")
    if isinstance(mlx, dict):
        return _mlx(mlx)
    return None


def _mlx(q: dict[str, object]) -> str | None:
    mode = _text(q.get("mode"))
    if mode and mode != "affine":
        return f"MLX-{mode.upper()[:16]}"
    bits = _bits(q.get("bits"))
    return f"MLX-{bits}bit" if bits else None


def _method(q: dict[str, object]) -> str | None:
    method = _text(q.get("quant_method"))
    if method is None:
        # mlx-lm also copies its quantization dict here, without a method.
        return _mlx(q) if "group_size" in q else None
    method = method.lower()
    bits = next(
        (b for k in ("bits", "w_bit", "nbits", "weight_bits") if (b := _bits(q.get(k)))), None
    )
    if method == "bitsandbytes":
        if q.get("load_in_4bit") is True:
            return "BNB-4bit"
        return "BNB-8bit" if q.get("load_in_8bit") is True else "BNB"
    if method in ("fp8", "fbgemm_fp8"):
        return "FP8"
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    name = {"gptq": "GPTQ", "awq": "AWQ", "mlx": "MLX"}.get(method, method.upper()[:32])
    return f"{name}-{bits}bit" if bits else name


def _compressed_tensors(q: dict[str, object]) -> str:
    """llm-compressor's schemes by their usual names: W4A16, W8A8, FP8, FP4."""
    groups = q.get("config_groups")
    first = next(iter(groups.values()), None) if isinstance(groups, dict) else None
    if not isinstance(first, dict) or not isinstance(first.get("weights"), dict):
        return "COMPRESSED-TENSORS"
    weights: dict[str, object] = first["weights"]
    acts = first.get("input_activations")
    w_bits = _bits(weights.get("num_bits"))
    a_bits = _bits(acts.get("num_bits")) if isinstance(acts, dict) else "16"
    if weights.get("type") == "float" and w_bits in ("8", "4"):
        return f"FP{w_bits}"
    return f"W{w_bits}A{a_bits}" if w_bits and a_bits else "COMPRESSED-TENSORS"


def parse_quantize_config(data: bytes) -> str | None:
    """AutoGPTQ's quantize_config.json, which older GPTQ repositories carry instead of a
    quantization_config inside config.json."""
    q = load_json("hf-quantize-config", data, MAX_CONFIG_BYTES)
    bits = _bits(q.get("bits"))
    if not bits:
        return None
    method = _text(q.get("quant_method")) or "gptq"
    return f"{method.upper()[:32]}-{bits}bit"


def parse_model_card(text: str) -> CardInfo:
    """The YAML front matter of a model card (README.md), read from its first MAX_CARD_CHARS.

    A README without front matter gives an empty CardInfo; front matter that is not closed or
    not YAML raises FormatError."""
    text = text[:MAX_CARD_CHARS].removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return CardInfo()
    start = len(lines[0])
    offset = start
    for line in lines[1:]:
        if line.rstrip() in ("---", "..."):
            return _card(_load_yaml(text[start:offset], start))
        offset += len(line)
    raise FormatError("model-card", offset, "front matter is not closed")


def card_text(data: bytes) -> str:
    """A README's bytes as text for parse_model_card; bad UTF-8 becomes U+FFFD."""
    return data[: MAX_CARD_CHARS * 4].decode("utf-8", "replace")


def _load_yaml(source: str, start: int) -> dict[str, object]:
    try:
        value = yaml.safe_load(source)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = start + (mark.index if mark else 0)
        raise FormatError("model-card", where, str(e.problem or e.context)) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        raise FormatError("model-card", start, f"front matter is not YAML: {e}") from None
    except RecursionError:
        raise FormatError("model-card", start, "front matter nested too deeply") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError("model-card", start, "front matter is not a mapping")
    return value


def _card(meta: dict[str, object]) -> CardInfo:
    licence = meta.get("license")
    if licence == "other":
        licence = meta.get("license_name") or licence
    if isinstance(licence, list):
        licence = ", ".join(item for item in licence[:8] if isinstance(item, str)) or None
    base = meta.get("base_model")
    bases = [base] if isinstance(base, str) else base if isinstance(base, list) else []
    return CardInfo(
        license=_text(licence),
        base_model=tuple(b for b in bases[:_MAX_BASE_MODELS] if isinstance(b, str) and b),
        pipeline_tag=_text(meta.get("pipeline_tag")),
        library_name=_text(meta.get("library_name")),
    )
