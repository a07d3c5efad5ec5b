"""Weights before quantization, from the names, dtypes and shapes of packed tensors.

Pure rules per scheme (MLX, GPTQ / AWQ, bitsandbytes, compressed-tensors, EXL2); the
config's bits and group size come in as a Scheme. docs/detection.md lists the layouts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Leaves that hold a quantizer's state (scales, zero points, shapes, permutations), never a
# model's own weights, whatever module they sit in: compressed-tensors, ModelOpt, FP8
# checkpoints (weight_scale_inv), bitsandbytes 8-bit (SCB, weight_format), kv-cache scales.
_STATE_LEAVES = frozenset(
    {
        "weight_scale",
        "weight_scale_inv",
        "weight_zero_point",
        "weight_global_scale",
        "weight_shape",
        "weight_g_idx",
        "input_scale",
        "input_zero_point",
        "input_global_scale",
        "output_scale",
        "k_scale",
        "v_scale",
        "SCB",
        "weight_format",
    }
)
# Leaves that are state only beside a packed weight: MLX (scales, biases), GPTQ / AWQ (qzeros,
# scales, g_idx), EXL2 (q_*).
_PACKED_STATE = frozenset({"scales", "biases", "qzeros", "g_idx"})
_EXL2_STATE = ("q_invperm", "q_perm", "q_scale", "q_scale_max", "q_groups", "q_group_map")
_BNB4_STATE = (".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4")
_WIDE_INTEGERS = frozenset({"I16", "U16", "I32", "U32"})
_NARROW_INTEGERS = frozenset({"U8", "I8"})
_QWEIGHT_METHODS = frozenset({"gptq", "awq", "gptq_marlin", "awq_marlin", "gptqmodel"})


@dataclass(frozen=True)
class Tensor:
    """One stored tensor: its name, safetensors dtype, shape and bits per stored element."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    bits: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Packed:
    """A file's (or a set's) possibly quantized tensors, and the plain weights beside them."""

    plain: int
    tensors: tuple[Tensor, ...]


@dataclass(frozen=True)
class Scheme:
    """What a config says about the quantization: method, bits, group size, and per-module
    overrides (MLX mixed precision) as (module path, bits, group size)."""

    method: str
    bits: float | None = None
    group_size: int | None = None
    overrides: tuple[tuple[str, float | None, int | None], ...] = ()

    def for_module(self, module: str) -> tuple[float | None, int | None]:
        for path, bits, group_size in self.overrides:
            # mlx-vlm names the language model's modules with a prefix the config leaves out.
            if module == path or module.endswith("." + path) or path.endswith("." + module):
                return bits, group_size
        return self.bits, self.group_size


@dataclass(frozen=True)
class Count:
    """Weights before quantization; `recognised` False means some packed layout was not
    unpacked, and its tensors are counted as stored."""

    parameters: int
    recognised: bool


def may_be_packed(name: str, dtype: str) -> bool:
    """Whether a tensor must be kept for `count`; every other tensor is a plain weight."""
    leaf = name.rpartition(".")[2]
    return (
        dtype in _WIDE_INTEGERS
        or (dtype in _NARROW_INTEGERS and leaf == "weight")  # bitsandbytes packs into bytes
        or leaf in _STATE_LEAVES
        or leaf in _PACKED_STATE
        or leaf.startswith("q_")
        or ".weight." in name  # bitsandbytes 4-bit: weight.absmax, weight.quant_map, ...
    )


def merge(parts: Iterable[Packed]) -> Packed:
    """One Packed for a sharded set: a module's weight and its scales may sit in two shards."""
    plain = 0
    tensors: list[Tensor] = []
    for part in parts:
        plain += part.plain
        tensors.extend(part.tensors)
    return Packed(plain, tuple(tensors))


def count(packed: Packed, scheme: Scheme | None) -> Count:
    """Weights before quantization of `packed`, unpacked with `scheme` where a layout needs
    the config's bits or group size."""
    by_name = {t.name: t for t in packed.tensors}
    used: set[str] = set()
    total = packed.plain
    recognised = True
    for rule in _RULES:
        for found in rule(by_name, scheme):
            names, logical = found
            if used & set(names):
                continue
            used.update(names)
            if logical is None:
                recognised = False
                total += sum(by_name[n].elements for n in names)
            else:
                total += logical
    for name, tensor in by_name.items():
        if name in used or name.rpartition(".")[2] in _STATE_LEAVES:
            continue
        if tensor.dtype in _WIDE_INTEGERS and _weight_like(name):
            recognised = False  # a packed weight of a scheme we do not know
        total += tensor.elements
    return Count(total, recognised)


def _weight_like(name: str) -> bool:
    leaf = name.rpartition(".")[2]
    return leaf in ("weight", "qweight", "q_weight") or "packed" in leaf


# A rule yields (names of the tensors of one quantized module, its weight count or None).
Found = tuple[tuple[str, ...], int | None]


def _modules(by_name: Mapping[str, Tensor], leaf: str) -> Iterable[tuple[str, Tensor]]:
    suffix = "." + leaf
    for name, tensor in by_name.items():
        if name.endswith(suffix):
            yield name[: -len(suffix)], tensor


def _bnb4(by_name: Mapping[str, Tensor], scheme: Scheme | None) -> Iterable[Found]:
    """bitsandbytes 4-bit: two weights per byte of the packed weight, whatever its storage
    dtype; absmax, quant_map and the serialized quant state beside it."""
    for name in by_name:
        state = next((s for s in _BNB4_STATE if name.endswith(s)), None)
        weight = by_name.get(name[: -len(state)]) if state else None
        if weight is None:
            continue
        names = tuple(n for n in by_name if n == weight.name or n.startswith(weight.name + "."))
        yield names, weight.elements * weight.bits // 4


def _exl2(by_name: Mapping[str, Tensor], scheme: Scheme | None) -> Iterable[Found]:
    """EXL2 mixes bits per layer, so the count comes from the shapes: the permutation has
    one entry per input feature, the packed weight one column per output feature."""
    for module, q_weight in _modules(by_name, "q_weight"):
        perm = by_name.get(module + ".q_invperm") or by_name.get(module + ".q_perm")
        names = (q_weight.name, *(n for s in _EXL2_STATE if (n := f"{module}.{s}") in by_name))
        logical = perm.elements * q_weight.shape[-1] if perm and len(q_weight.shape) == 2 else 0
        # EXL2 spends 2 to 8 bits a weight; other shapes are some other layout.
        plausible = logical > 0 and logical <= q_weight.elements * q_weight.bits <= 16 * logical
        yield names, logical if plausible else None


def _qweight(by_name: Mapping[str, Tensor], scheme: Scheme | None) -> Iterable[Found]:
    """GPTQ and AWQ pack 32 / bits weights in each int32 of qweight, whatever the layout
    (GPTQ packs along rows, AWQ along columns, GEMV kernels their own way)."""
    bits = scheme.bits if scheme is not None and scheme.method in _QWEIGHT_METHODS else None
    for module, qweight in _modules(by_name, "qweight"):
        names = (qweight.name, *_present(by_name, module, ("qzeros", "scales", "g_idx")))
        yield names, _by_bits(qweight, bits)


def _compressed(by_name: Mapping[str, Tensor], scheme: Scheme | None) -> Iterable[Found]:
    """compressed-tensors' pack-quantized (int4 / int8 in int32) and nvfp4 (two per byte)."""
    ok = scheme is not None and scheme.method == "compressed-tensors"
    for module, packed in _modules(by_name, "weight_packed"):
        bits = scheme.for_module(module)[0] if ok and scheme is not None else None
        yield (packed.name,), _by_bits(packed, bits)


def _mlx(by_name: Mapping[str, Tensor], scheme: Scheme | None) -> Iterable[Found]:
    """mlx-lm's quantized layers: a uint32 weight packing 32 / bits values, scales (and, in
    affine mode, biases) per group. Bits and group size must agree on the input width."""
    ok = scheme is not None and scheme.method == "mlx"
    for module, weight in _modules(by_name, "weight"):
        scales = by_name.get(module + ".scales")
        if weight.dtype != "U32" or scales is None:
            continue
        names = (weight.name, *_present(by_name, module, ("scales", "biases")))
        bits, group_size = scheme.for_module(module) if ok and scheme is not None else (None, None)
        by_bits = _by_bits(weight, bits)
        by_groups = scales.elements * group_size if group_size and group_size > 0 else None
        yield names, by_bits if by_bits is not None and by_bits == by_groups else None


def _present(by_name: Mapping[str, Tensor], module: str, leaves: Iterable[str]) -> list[str]:
    return [n for leaf in leaves if (n := f"{module}.{leaf}") in by_name]


def _by_bits(packed: Tensor, bits: float | None) -> int | None:
    if bits is None or bits <= 0 or not float(bits).is_integer():
        return None
    stored = packed.elements * packed.bits
    return stored // int(bits) if stored % int(bits) == 0 else None


_RULES = (_bnb4, _exl2, _qweight, _compressed, _mlx)
