"""One ModelInfo for a set of files (shards, external data) and for a model with its folder's
config.json and card: counts summed, packed weights unpacked, one architecture name.

Pure: ModelInfo, ConfigInfo and CardInfo values in, a ModelInfo out.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence

from agent.detect import architectures, quantized
from agent.detect.formats import ModelInfo
from agent.detect.formats.unsafe import worst
from agent.detect.hfconfig import CardInfo, ConfigInfo

# ModelInfo fields a merged set takes from its first member that has them.
_FIRST_FIELDS = (
    "name",
    "architecture",
    "architecture_class",
    "context_length",
    "license",
    "base_model",
    "producer",
    "chat_template_sha256",
)


def merge_infos(infos: Sequence[ModelInfo]) -> ModelInfo:
    """One ModelInfo for a set, from its members' in member order: parameters and tensors
    summed, the quantization that holds most parameters, the first value of everything else.
    Packed tensors are counted once all shards are together: a quantized layer's weight and
    its scales may sit in two shards."""
    if not infos:
        raise ValueError("merge_infos needs at least one ModelInfo")
    params = [i.parameters for i in infos]
    total = sum(p for p in params if p is not None) if None not in params else None
    weights: Counter[str] = Counter()
    for info in infos:
        if info.quantization:
            weights[info.quantization] += (info.parameters or 1) if total is not None else 1
    unsafe = [i.unsafe for i in infos if i.unsafe is not None]
    firsts = {
        f: next((v for i in infos if (v := getattr(i, f)) is not None), None) for f in _FIRST_FIELDS
    }
    merged = dataclasses.replace(
        infos[0],
        format=Counter(i.format for i in infos).most_common(1)[0][0],
        parameters=total,
        parameters_estimated=_all_known(i.parameters_estimated for i in infos),
        quantization=weights.most_common(1)[0][0] if weights else None,
        tensor_count=sum(i.tensor_count for i in infos),
        header_bytes=sum(i.header_bytes for i in infos),
        unsafe=any(unsafe) if unsafe else None,
        risk=worst(
            *(i.risk for i in infos if i.risk is not None)
        ),  # a set is as risky as its worst file
        unsafe_reasons=tuple(dict.fromkeys(r for i in infos for r in i.unsafe_reasons)),
        companions=tuple(dict.fromkeys(c for i in infos for c in i.companions)),
        packed=None,
    )
    if total is not None and any(i.packed is not None for i in infos):
        packed = quantized.merge(i.packed or quantized.Packed(i.parameters or 0, ()) for i in infos)
        merged = _counted(dataclasses.replace(merged, packed=packed), None)
    return _with(merged, firsts)


def _all_known(flags: Iterable[bool | None]) -> bool | None:
    """False if any member's count is stored words, True if all are weights, else unknown."""
    seen = set(flags)
    return False if False in seen else True if seen == {True} else None


def _counted(info: ModelInfo, scheme: quantized.Scheme | None) -> ModelInfo:
    if info.packed is None:
        return info
    count = quantized.count(info.packed, scheme)
    return dataclasses.replace(
        info, parameters=count.parameters, parameters_estimated=count.recognised
    )


def _with(info: ModelInfo, changes: dict[str, object]) -> ModelInfo:
    """`dataclasses.replace` for fields chosen by name; the values come from ModelInfo fields
    or from the same-typed fields of ConfigInfo and CardInfo."""
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


def apply_folder_metadata(
    info: ModelInfo, config: ConfigInfo | None, card: CardInfo | None
) -> ModelInfo:
    """Fill what the header left open from the folder's config.json and model card, name the
    architecture by its family and class, and unpack packed weights with the config's scheme.

    The header wins, except that a quantization_config names the method of safetensors and
    PyTorch weights better than their packed dtypes do (GPTQ stores I32).
    """
    config = config if config is not None and config.is_model else None
    family, cls = architectures.resolve(
        (info.architecture, config.model_type if config else None),
        (info.architecture_class, config.architecture if config else None),
    )
    info = _counted(
        dataclasses.replace(info, architecture=family, architecture_class=cls),
        config.scheme if config else None,
    )
    if config is not None:
        quant = info.quantization or config.quantization or config.dtype
        if config.quantization and info.format in ("safetensors", "pytorch"):
            quant = config.quantization
        info = dataclasses.replace(
            info,
            name=info.name or config.name,
            context_length=info.context_length or config.context_length,
            quantization=quant,
            base_model=info.base_model or config.base_model,
            producer=info.producer or config.producer,
        )
    if card is not None:
        info = dataclasses.replace(
            info,
            license=info.license or card.license,
            base_model=info.base_model or ", ".join(card.base_model) or None,
        )
    return info
