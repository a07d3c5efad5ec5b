"""Reuse the rule pack in a SIEM: a pySigma processing pipeline that turns our rules into
rules over the events the collector exports, for any pySigma backend.

- `logsource: {product: shadowai, category: X}` becomes `event.dataset: shadowai.X`, the
  field every exported event carries;
- `%NAME%` placeholders take the values of `lists/NAME.yml` (an empty list becomes a value no
  event carries: query languages have no empty set, and an empty approval list approves
  nothing);
- field names stay the dotted names of the export (`ai.model.risk`), or become column names
  (`ai_model_risk`) for SQL tables, which cannot hold dots unquoted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldFunctionTransformation,
    ValueListPlaceholderTransformation,
)

from collector.governance.model import ACTIONS

CATEGORIES = ("model_file", "inference_process", "agent_health", "collector")


def empty_list_marker(name: str) -> str:
    """The value an empty list stands for in a query: one no event carries."""
    return f"(empty list {name})"


def siem_pipeline(
    lists: Mapping[str, tuple[str, ...]], *, columns: bool = False
) -> ProcessingPipeline:
    """The pipeline; `columns=True` maps dotted field names to SQL-friendly column names."""
    items = [
        ProcessingItem(
            identifier=f"shadowai_logsource_{category}",
            transformation=AddConditionTransformation({"event.dataset": f"shadowai.{category}"}),
            rule_conditions=[LogsourceCondition(product="shadowai", category=category)],
        )
        for category in CATEGORIES
    ]
    items.append(
        ProcessingItem(
            identifier="shadowai_value_lists",
            transformation=ValueListPlaceholderTransformation(include=sorted(lists) or None),
        )
    )
    if columns:
        items.append(
            ProcessingItem(
                identifier="shadowai_columns",
                transformation=FieldFunctionTransformation(transform_func=column_name, mapping={}),
            )
        )
    values = {name: list(entries) or [empty_list_marker(name)] for name, entries in lists.items()}
    return ProcessingPipeline(
        name="shadowai exported events", priority=20, items=items, vars=values
    )


def column_name(field: str | None) -> str:
    """`ai.model.risk` -> `ai_model_risk`; `@timestamp` -> `timestamp`."""
    return (field or "").lstrip("@").replace(".", "_")


def convert_rules(path: Path, files: Sequence[Path], *, columns: bool) -> Iterator[str]:
    """`-- title (file)` and the SQL of each rule (pySigma's SQLite backend): the equivalent
    of `sigma convert -t sqlite` with this pipeline. Correlations convert with their rules."""
    # Imported here: the backend is a tool for operators ([dev]), not a collector dependency.
    from sigma.backends.sqlite.sqlite import sqliteBackend
    from sigma.exceptions import SigmaError

    from collector.governance.load import NOT_RULES, load_value_lists

    pipeline = siem_pipeline(load_value_lists(path), columns=columns)
    backend = sqliteBackend(pipeline)  # type: ignore[no-untyped-call]  # an unannotated backend
    every = sorted(f for f in path.glob("*.yml") if f.is_file() and f.name not in NOT_RULES)
    documents = {file: sigma_documents(file) for file in every}
    plain = [d for docs in documents.values() for d in docs if "detection" in d]
    for file in list(files) or every:
        docs = documents.get(file) or sigma_documents(file)
        try:
            yield from _convert_file(backend, file.name, docs, plain)
        except SigmaError as exc:
            yield f"-- {file.name}: cannot convert: {str(exc)[:300]}"


def _convert_file(
    backend: Any, name: str, docs: list[dict[str, Any]], plain: list[dict[str, Any]]
) -> Iterator[str]:
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule

    correlations = [d for d in docs if isinstance(d.get("correlation"), dict)]
    if correlations:
        # A correlation converts with the rules it counts (their own output is disabled).
        wanted = {str(r).lower() for d in correlations for r in d["correlation"].get("rules", [])}
        base = [d for d in plain if str(d.get("id")).lower() in wanted]
        collection = SigmaCollection.from_dicts([*base, *docs])
        titles = [r.title for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
        yield f"-- {', '.join(titles)} ({name})"
        yield from (str(query) for query in backend.convert(collection))
        return
    # Exceptions are left out: whether one still applies is the collector's to judge.
    collection = SigmaCollection.from_dicts([d for d in docs if "filter" not in d])
    for rule in collection.rules:
        yield f"-- {rule.title} ({name})"
        yield from (str(query) for query in backend.convert_rule(rule))


def sigma_documents(file: Path) -> list[dict[str, Any]]:
    """A rule file's documents as pySigma's collection loader takes them: it reads a top-level
    `action` as a collection action (global, repeat, reset), so our `action: alert | record`
    is left out; what an action does is the collector's business, not the SIEM's."""
    documents = []
    for data in yaml.safe_load_all(file.read_text(encoding="utf-8")):
        if isinstance(data, dict):
            if data.get("action") in ACTIONS:
                data = {k: v for k, v in data.items() if k != "action"}
            documents.append(data)
    return documents
