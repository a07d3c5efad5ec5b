"""The quantization scheme a Hugging Face config names: method, bits, group size and MLX's
per-module overrides, for agent.detect.quantized to unpack packed weights with.

Pure: a parsed JSON object in, a Scheme out; values of the wrong type are left out.
"""

from __future__ import annotations

from agent.detect.quantized import Scheme

_MAX_OVERRIDES = 4096
# mlx's non-affine modes and the (bits, group size) they fix.
_MLX_MODES: dict[str, tuple[float, int]] = {"mxfp4": (4, 32), "nvfp4": (4, 16), "mxfp8": (8, 32)}


def scheme_of_config(cfg: dict[str, object]) -> Scheme | None:
    """The quantization scheme a config.json names, from quantization_config or mlx-lm's
    top-level `quantization`; None when it names none."""
    found = cfg.get("quantization_config")
    mlx = cfg.get("quantization")
    if isinstance(found, dict) and isinstance(found.get("quant_method"), str):
        return _method_scheme(found)
    for q in (mlx, found):
        if isinstance(q, dict) and ("bits" in q or "group_size" in q or "mode" in q):
            return _mlx_scheme(q)
    return None


def _number(q: dict[str, object], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = q.get(key)
        if not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= 64:
            return float(value)
    return None


def _group_size(q: dict[str, object]) -> int | None:
    value = next((q[k] for k in ("group_size", "q_group_size") if k in q), None)
    return value if type(value) is int and -1 <= value <= 1 << 20 else None


def _method_scheme(q: dict[str, object]) -> Scheme:
    method = str(q["quant_method"]).lower()[:32]
    if method == "compressed-tensors":
        return _compressed_scheme(q)
    if method == "bitsandbytes":
        return Scheme(method, 4.0 if q.get("load_in_4bit") is True else 8.0)
    bits = _number(q, ("bits", "w_bit", "nbits", "weight_bits"))
    return Scheme(method, bits, _group_size(q))


def _compressed_scheme(q: dict[str, object]) -> Scheme:
    """One bits value when every config group agrees; a group size for group strategies."""
    groups = q.get("config_groups")
    weights = [
        g["weights"]
        for g in (groups.values() if isinstance(groups, dict) else ())
        if isinstance(g, dict) and isinstance(g.get("weights"), dict)
    ]
    bits = {_number(w, ("num_bits",)) for w in weights}
    sizes = {_group_size(w) if w.get("strategy") == "group" else None for w in weights}
    return Scheme(
        "compressed-tensors",
        bits.pop() if len(bits) == 1 else None,
        sizes.pop() if len(sizes) == 1 else None,
    )


def _mlx_scheme(q: dict[str, object]) -> Scheme:
    mode = q.get("mode")
    fixed = _MLX_MODES.get(mode if isinstance(mode, str) else "")
    bits = _number(q, ("bits",)) or (fixed[0] if fixed else None)
    group_size = _group_size(q) or (fixed[1] if fixed else None)
    overrides = [
        (path, _number(v, ("bits",)), _group_size(v))
        for path, v in list(q.items())[:_MAX_OVERRIDES]
        if isinstance(v, dict)
    ]
    # An override names its own bits or group size and inherits the other.
    return Scheme(
        "mlx", bits, group_size, tuple((p, b or bits, g or group_size) for p, b, g in overrides)
    )


def scheme_of_quantize_config(q: dict[str, object]) -> Scheme | None:
    """The bits and group size of AutoGPTQ's quantize_config.json."""
    bits = _number(q, ("bits",))
    method = q.get("quant_method")
    name = method.lower()[:32] if isinstance(method, str) and method else "gptq"
    return Scheme(name, bits, _group_size(q)) if bits else None
