"""Known runtime vulnerabilities, kept as data (rules/advisories/*.yml): parse the list, and
add `vulnerability.id` / `vulnerability.reference` to an inference event whose runtime
version falls in an advisory's range, so that plain Sigma rules can fire on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml
from packaging.version import InvalidVersion, Version

from collector.governance.source import read_documents, yaml_problem

_FIELDS = ("runtime", "cve", "fixed", "reference")


@dataclass(frozen=True)
class Advisory:
    runtime: str
    cve: str
    fixed: str
    introduced: str | None
    summary: str
    reference: str

    def covers(self, version: str) -> bool:
        found = _version(version)
        fixed = _version(self.fixed)
        if found is None or fixed is None or found >= fixed:
            return False
        introduced = _version(self.introduced) if self.introduced else None
        return introduced is None or found >= introduced


def _version(text: str | None) -> Version | None:
    """A packaging version; llama.cpp's build tags (b8146) compare by their number."""
    if not text:
        return None
    text = text.strip().removeprefix("v")
    if text[:1] == "b" and text[1:].isdigit():
        text = text[1:]
    try:
        return Version(text)
    except InvalidVersion:
        return None


def parse_advisories(label: str, text: str, problems: list[str]) -> list[Advisory]:
    try:
        documents = [data for _, data in read_documents(text)]
    except yaml.YAMLError as exc:
        problems.append(yaml_problem(label, text, exc))
        return []
    data = documents[0] if len(documents) == 1 else None
    if not isinstance(data, list):
        problems.append(f"{label}:1: an advisory file is one YAML list of entries")
        return []
    found = []
    for index, entry in enumerate(data):
        advisory = _entry(entry)
        if advisory is None:
            problems.append(
                f"{label}: entry {index + 1}: needs {', '.join(_FIELDS)} as text, and a "
                "fixed version that parses"
            )
        else:
            found.append(advisory)
    return found


def _entry(entry: object) -> Advisory | None:
    if not isinstance(entry, dict):
        return None
    values = {key: entry.get(key) for key in (*_FIELDS, "introduced", "summary")}
    values = {k: str(v) if isinstance(v, (str, int, float)) else v for k, v in values.items()}
    if not all(isinstance(values[key], str) for key in _FIELDS):
        return None
    if _version(str(values["fixed"])) is None:
        return None
    introduced = values["introduced"]
    return Advisory(
        runtime=str(values["runtime"]).lower(),
        cve=str(values["cve"]),
        fixed=str(values["fixed"]),
        introduced=introduced if isinstance(introduced, str) else None,
        summary=str(values["summary"] or ""),
        reference=str(values["reference"]),
    )


def vulnerability_fields(
    event: Mapping[str, object], advisories: Sequence[Advisory]
) -> dict[str, object]:
    """The ECS vulnerability fields for this event's runtime, or nothing."""
    runtime, version = event.get("ai.runtime.name"), event.get("ai.runtime.version")
    if not isinstance(runtime, str) or not isinstance(version, str):
        return {}
    hits = [a for a in advisories if a.runtime == runtime.lower() and a.covers(version)]
    if not hits:
        return {}
    return {
        "vulnerability.id": [a.cve for a in hits],
        "vulnerability.reference": [a.reference for a in hits],
    }
