"""Pure: rows as CSV text a spreadsheet can open safely.

Cells are what the API's JSON holds, lists joined with "; ". A cell that a spreadsheet would
run as a formula (starting with = + - @, tab or carriage return) gets a leading apostrophe:
hostile file names and GGUF metadata reach these exports.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def columns_of(items: Iterable[dict[str, object]]) -> list[str]:
    """Every key of `items`, in first-seen order."""
    seen: dict[str, None] = {}
    for item in items:
        seen.update(dict.fromkeys(item))
    return list(seen)


def cell(value: object) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple):
        text = "; ".join(cell(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def to_csv(items: Sequence[dict[str, object]], columns: Sequence[str] = ()) -> str:
    """A header row of `columns` (or every key of `items`) and one row per item."""
    header = list(columns) or columns_of(items)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for item in items:
        writer.writerow([cell(item.get(name)) for name in header])
    return out.getvalue()


def _is_number(text: str) -> bool:
    """A plain decimal number ("-3", "+2.5", "1e9"): a spreadsheet reads it as a value, never
    as a formula. "inf", "nan" and "-x" are not."""
    return _NUMBER.fullmatch(text) is not None
