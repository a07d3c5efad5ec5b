"""A CycloneDX 1.6 ML-BOM of a scan: one machine-learning-model component per distinct model.

Pure: flat `shadowai.model_file` events in, JSON text out; `scan --format cyclonedx` prints it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
from cyclonedx.model.license import License
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

PROPERTY_PREFIX = "shadowai:"
MODEL_DATASET = "shadowai.model_file"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Source strings as agent.detect.stores writes them: "hf:org/repo@<commit>", "ollama:.../name:tag".
_HF_SOURCE = re.compile(r"hf:([\w.-]+)/([\w.-]+)@([0-9a-f]{40})")
_OLLAMA_SOURCE = re.compile(r"ollama:(?:[^\s/]+/)*[^\s/:]+:([\w.-]+)")

# general.architecture values of llama.cpp's GGUF writers, and Hugging Face model type prefixes.
_DECODER_WORDS = """
    llama mistral mixtral qwen qwen2 qwen2moe qwen3 qwen3moe phi phi2 phi3 gemma gemma2 gemma3
    starcoder starcoder2 gpt2 gptneox gpt_neox gptj falcon mpt bloom stablelm command-r cohere
    deepseek deepseek2 olmo olmo2 granite internlm2 chatglm baichuan minicpm exaone orion opt
"""
_DECODERS = frozenset(_DECODER_WORDS.split())
_ENCODERS = frozenset({"bert", "nomic-bert", "jina-bert-v2", "roberta", "xlm-roberta", "t5encoder"})
_FAMILIES = {"mamba": "state space model", "mamba2": "state space model"}
_FAMILIES |= {"rwkv6": "recurrent neural network", "rwkv7": "recurrent neural network"}
# Hugging Face class name suffixes (config.json `architectures`) and the task they serve.
_HEAD_TASKS = {
    "forcausallm": "text-generation",
    "forsequenceclassification": "text-classification",
    "fortokenclassification": "token-classification",
    "forquestionanswering": "question-answering",
    "formaskedlm": "fill-mask",
    "forimageclassification": "image-classification",
}


@dataclass(frozen=True)
class _Model:
    """Every event that shares one content identity: copies of a file are one component."""

    ref: str
    events: tuple[Mapping[str, object], ...]

    def first(self, field: str) -> object | None:
        return next((e[field] for e in self.events if e.get(field) is not None), None)


def build_bom(
    events: Sequence[Mapping[str, object]], *, tool_version: str, now: datetime, host_name: str
) -> str:
    """The ML-BOM of the host's model files as CycloneDX 1.6 JSON text.

    Events of other datasets and `removed` events are left out. `now` must be timezone-aware.
    The serial number derives from the input, so the same scan gives the same document.
    """
    if now.tzinfo is None:
        raise ValueError("now: a timezone-aware datetime is required")
    host_name = _valid_unicode(host_name)
    models = _group(events)
    host = Component(
        type=ComponentType.DEVICE, name=host_name or "unknown", bom_ref=f"host:{host_name}"
    )
    components = [_component(model) for model in models]
    bom = Bom(
        serial_number=_serial(host_name, now, models),
        metadata=BomMetaData(timestamp=now.astimezone(UTC), component=host),
    )
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="shadowai-agent", version=tool_version)
    )
    for component in components:
        bom.components.add(component)
    # The host "depends on" the models it holds; an empty graph under a root component is
    # reported as incomplete by CycloneDX tooling.
    if components:
        bom.register_dependency(host, components)
    document = json.loads(JsonV1Dot6(bom).output_as_string())
    _add_model_cards(document, {model.ref: _model_card(model) for model in models})
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _group(events: Iterable[Mapping[str, object]]) -> list[_Model]:
    by_ref: dict[str, list[Mapping[str, object]]] = {}
    for event in events:
        if event.get("event.dataset", MODEL_DATASET) != MODEL_DATASET:
            continue
        if event.get("event.action") == "removed":
            continue
        clean = {field: _clean(value) for field, value in event.items()}
        by_ref.setdefault(_ref(clean), []).append(clean)
    return [
        _Model(ref, tuple(sorted(group, key=lambda e: str(e.get("file.path", "")))))
        for ref, group in sorted(by_ref.items())
    ]


def _clean(value: object) -> object:
    """Valid Unicode: a file name's undecodable bytes (surrogate escapes) become U+FFFD."""
    if isinstance(value, str):
        return _valid_unicode(value)
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _valid_unicode(text: str) -> str:
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes of a file name
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _ref(event: Mapping[str, object]) -> str:
    """Stable per content: the full hash, else the header fingerprint, else the path."""
    digest = _sha256(event)
    if digest is not None:
        return f"sha256:{digest}"
    fingerprint = event.get("ai.model.fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return f"fingerprint:{fingerprint}"
    path = str(event.get("file.path", ""))
    return f"path:{hashlib.sha256(path.encode()).hexdigest()}"


def _sha256(event: Mapping[str, object]) -> str | None:
    value = event.get("file.hash.sha256")
    return value if isinstance(value, str) and _SHA256.fullmatch(value) else None


def _serial(host_name: str, now: datetime, models: Sequence[_Model]) -> uuid.UUID:
    seed = "\n".join([host_name, now.isoformat(), *(model.ref for model in models)])
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:shadowai:bom:{seed}")


def _component(model: _Model) -> Component:
    source = model.first("ai.model.source")
    purl, version = _origin(source if isinstance(source, str) else "")
    digest = _sha256(model.events[0])
    occurrences = [
        Occurrence(location=str(e["file.path"])) for e in model.events if "file.path" in e
    ]
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=_name(model),
        version=version,
        bom_ref=model.ref,
        purl=purl,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else None,
        licenses=_licenses(model),
        properties=list(_properties(model.events)),
        evidence=ComponentEvidence(occurrences=occurrences) if occurrences else None,
    )


def _name(model: _Model) -> str:
    name = model.first("ai.model.name")
    if isinstance(name, str) and name.strip():
        return name
    path = model.first("file.path")
    return PurePath(str(path)).name if path else model.ref


def _origin(source: str) -> tuple[PackageURL | None, str | None]:
    """A package URL and version where the source names a registry we can cite."""
    hf = _HF_SOURCE.fullmatch(source)
    if hf:
        org, repo, revision = hf.groups()
        return PackageURL("huggingface", org, repo, revision), revision
    ollama = _OLLAMA_SOURCE.fullmatch(source)
    if ollama:
        return None, ollama.group(1)  # no purl type exists for Ollama's registry
    return None, None


def _licenses(model: _Model) -> list[License] | None:
    value = model.first("ai.model.license")
    if not isinstance(value, str) or not value.strip():
        return None
    return [LicenseFactory().make_from_string(value.strip())]


def _properties(events: Iterable[Mapping[str, object]]) -> Iterable[Property]:
    """Every ai.model.* value (and the size) of every copy; lists become repeated names."""
    for event in events:
        for field, value in event.items():
            if not (field.startswith("ai.model.") or field == "file.size"):
                continue
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                if item is not None:
                    yield Property(name=PROPERTY_PREFIX + field, value=_text(item))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _model_card(model: _Model) -> dict[str, object] | None:
    """What the metadata says about the model's design; None when it says nothing."""
    architecture = model.first("ai.model.architecture")
    if not isinstance(architecture, str) or not architecture:
        return None
    parameters: dict[str, object] = {"modelArchitecture": architecture}
    family, task = _family_and_task(architecture)
    if family:
        parameters["architectureFamily"] = family
    if task:
        parameters["task"] = task
    return {"modelParameters": parameters}


def _family_and_task(architecture: str) -> tuple[str | None, str | None]:
    key = architecture.lower()
    suffix = next((s for s in _HEAD_TASKS if key.endswith(s)), None)
    stem = key[: -len(suffix)] if suffix else key
    if stem in _FAMILIES:
        family: str | None = _FAMILIES[stem]
    else:
        family = "transformer" if stem in _DECODERS | _ENCODERS else None
    if suffix:
        return family, _HEAD_TASKS[suffix]
    if stem in _ENCODERS:
        return family, "feature-extraction"  # llama.cpp runs encoder GGUFs for embeddings
    return family, "text-generation" if family else None


def _add_model_cards(document: dict[str, object], cards: Mapping[str, object]) -> None:
    # cyclonedx-python-lib does not model `modelCard` yet (a TODO in its Component), so the
    # card is added to the serialized component it belongs to.
    components = document.get("components")
    if not isinstance(components, list):
        return
    for component in components:
        card = cards.get(component.get("bom-ref", ""))
        if card is not None:
            component["modelCard"] = card
