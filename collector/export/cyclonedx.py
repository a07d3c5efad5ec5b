"""A CycloneDX 1.6 ML-BOM of the fleet or one host: one machine-learning-model component
per distinct model content, with the hosts and paths it is found at.

Pure: the collector's model rows (flat dicts, DESIGN.md field names plus `host.name`) in,
JSON text out. The caller chooses the rows (the fleet, or one host's) and the time.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.license import License
from cyclonedx.output.json import JsonV1Dot6

PREFIX = "shadowai:"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Fields summarised as properties, each distinct value once per component.
_SUMMARY_FIELDS = (
    "ai.model.format",
    "ai.model.architecture",
    "ai.model.architecture_class",
    "ai.model.parameters",
    "ai.model.quantization",
    "ai.model.context_length",
    "ai.model.kind",
    "ai.model.risk",
    "ai.model.unsafe",
    "ai.model.unsafe_reasons",
    "ai.model.origin",
    "ai.model.store",
    "ai.model.source",
    "file.size",
)
# ai.model.kind -> the task name model cards use (Hugging Face pipeline names).
_TASKS = {"llm": "text-generation", "embedding": "feature-extraction"}


@dataclass
class _Model:
    """Every row that shares one content identity, whichever host holds it."""

    ref: str
    rows: list[Mapping[str, object]] = field(default_factory=list)

    def first(self, name: str) -> object | None:
        return next((r[name] for r in self.rows if r.get(name) not in (None, "")), None)

    def distinct(self, name: str) -> list[str]:
        found: set[str] = set()
        for row in self.rows:
            value = row.get(name)
            for item in value if isinstance(value, list | tuple) else [value]:
                if item is not None and item != "":
                    found.add(_text(item))
        return sorted(found)


def build_fleet_bom(
    rows: Iterable[Mapping[str, object]],
    *,
    now: datetime,
    tool_version: str,
    host_name: str | None = None,
) -> str:
    """The ML-BOM of `rows` as CycloneDX 1.6 JSON text.

    With `host_name` the BOM describes that host (only its rows are used); without, the
    fleet. Removed files are left out. The serial number derives from the input, so the
    same inventory and `now` (timezone-aware) give the same document.
    """
    if now.tzinfo is None:
        raise ValueError("now: a timezone-aware datetime is required")
    subject = _valid_unicode(host_name) if host_name is not None else None
    models = _group(rows, subject)
    if subject is not None:
        root = Component(type=ComponentType.DEVICE, name=subject or "unknown", bom_ref="host")
    else:
        root = Component(type=ComponentType.PLATFORM, name="fleet", bom_ref="fleet")
    bom = Bom(
        serial_number=_serial(subject, now, models),
        metadata=BomMetaData(timestamp=now.astimezone(UTC), component=root),
    )
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="shadowai-collector", version=tool_version)
    )
    components = [_component(model) for model in models]
    bom.components.update(components)
    if components:
        # Bom.register_dependency looks each model up in a list (quadratic at fleet size);
        # the graph is one root depending on every model, each with no dependencies.
        bom.dependencies.add(
            Dependency(ref=root.bom_ref, dependencies=[Dependency(c.bom_ref) for c in components])
        )
        bom.dependencies.update(Dependency(c.bom_ref) for c in components)
    document = json.loads(JsonV1Dot6(bom).output_as_string())
    _add_model_cards(document, {model.ref: _model_card(model) for model in models})
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _group(rows: Iterable[Mapping[str, object]], host: str | None) -> list[_Model]:
    by_ref: dict[str, _Model] = {}
    for row in rows:
        if row.get("removed_at") or row.get("event.action") == "removed":
            continue
        clean = {name: _clean(value) for name, value in row.items()}
        if host is not None and clean.get("host.name") != host:
            continue
        ref = _ref(clean)
        by_ref.setdefault(ref, _Model(ref)).rows.append(clean)
    models = sorted(by_ref.values(), key=lambda m: m.ref)
    for model in models:
        model.rows.sort(key=lambda r: (str(r.get("host.name", "")), str(r.get("file.path", ""))))
    return models


def _clean(value: object) -> object:
    if isinstance(value, str):
        return _valid_unicode(value)
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _valid_unicode(text: str) -> str:
    """Valid Unicode: undecodable file-name bytes (surrogate escapes) become U+FFFD."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _sha256(row: Mapping[str, object]) -> str | None:
    value = row.get("file.hash.sha256")
    return value if isinstance(value, str) and _SHA256.fullmatch(value) else None


def _ref(row: Mapping[str, object]) -> str:
    """Per content: the full hash, else the header fingerprint, else the host and path."""
    digest = _sha256(row)
    if digest is not None:
        return f"sha256:{digest}"
    fingerprint = row.get("ai.model.fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return "fingerprint:" + hashlib.sha256(fingerprint.encode()).hexdigest()
    where = f"{row.get('host.name', '')}\n{row.get('file.path', '')}"
    return "path:" + hashlib.sha256(where.encode()).hexdigest()


def _serial(host: str | None, now: datetime, models: list[_Model]) -> uuid.UUID:
    seed = "\n".join([repr(host), now.isoformat(), *(model.ref for model in models)])
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:shadowai:fleet-bom:{seed}")


def _component(model: _Model) -> Component:
    digest = _sha256(model.rows[0])
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=_name(model),
        bom_ref=model.ref,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else None,
        licenses=_licenses(model),
        properties=_properties(model),
        evidence=ComponentEvidence(occurrences=_occurrences(model)),
    )


def _name(model: _Model) -> str:
    name = model.first("ai.model.name")
    if isinstance(name, str) and name.strip():
        return name
    path = model.first("file.path")
    return PurePath(str(path)).name or model.ref if path else model.ref


def _licenses(model: _Model) -> list[License] | None:
    value = model.first("ai.model.license")
    if not isinstance(value, str) or not value.strip():
        return None
    return [LicenseFactory().make_from_string(value.strip())]


def _properties(model: _Model) -> list[Property]:
    hosts = model.distinct("host.name")
    found = [Property(name=f"{PREFIX}host.count", value=str(len(hosts)))]
    found += [Property(name=f"{PREFIX}host.name", value=host) for host in hosts]
    for name in _SUMMARY_FIELDS:
        found += [Property(name=PREFIX + name, value=value) for value in model.distinct(name)]
    return found


def _occurrences(model: _Model) -> list[Occurrence]:
    return [
        Occurrence(
            location=str(row.get("file.path", "")) or "-",
            additional_context=f"host.name={row.get('host.name', '')}",
        )
        for row in model.rows
    ]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _model_card(model: _Model) -> dict[str, object] | None:
    """What the stored fields say about the model's design; None when they say nothing."""
    parameters: dict[str, object] = {}
    architecture = model.first("ai.model.architecture")
    if isinstance(architecture, str):
        parameters["modelArchitecture"] = architecture
    task = _TASKS.get(str(model.first("ai.model.kind")))
    if task is not None:
        parameters["task"] = task
    return {"modelParameters": parameters} if parameters else None


def _add_model_cards(document: dict[str, object], cards: Mapping[str, object]) -> None:
    # cyclonedx-python-lib does not model `modelCard` yet, so the card is added to the
    # serialized component it belongs to.
    components = document.get("components")
    if not isinstance(components, list):
        return
    for component in components:
        card = cards.get(component.get("bom-ref", ""))
        if card is not None:
            component["modelCard"] = card
