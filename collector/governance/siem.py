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

from collections.abc import Mapping

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldFunctionTransformation,
    ValueListPlaceholderTransformation,
)

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
