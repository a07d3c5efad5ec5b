"""The pack converts, through our pipeline and pySigma's SQLite backend, into SQL that finds
exactly the exported events the collector's own engine alerts on (run on a real SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection

from collector.governance import load_rule_dir
from collector.governance.load import load_value_lists
from collector.governance.siem import column_name, siem_pipeline

RULES = Path(__file__).resolve().parents[3] / "rules"
DANGEROUS = RULES / "shadowai_dangerous_model_serialization.yml"
UNAPPROVED = RULES / "shadowai_unapproved_model.yml"
COLUMNS = [
    "event.dataset",
    "event.action",
    "file.path",
    "file.hash.sha256",
    "ai.model.format",
    "ai.model.name",
    "ai.model.risk",
    "ai.model.origin",
]


def exported(**fields: str) -> dict[str, str]:
    event = {"event.dataset": "shadowai.model_file", "event.action": "discovered"}
    event.update({k.replace("__", "."): v for k, v in fields.items()})
    return event


def run_sql(query: str, events: list[dict[str, str]]) -> list[str]:
    """Load the events as exported rows (one column per field) and run the converted query.
    Sigma compares case-insensitively; the SQLite backend expects NOCASE columns for that."""
    db = sqlite3.connect(":memory:")
    names = [column_name(c) for c in COLUMNS]
    db.execute(f"CREATE TABLE logs ({', '.join(f'{n} TEXT COLLATE NOCASE' for n in names)})")
    for event in events:
        db.execute(
            f"INSERT INTO logs VALUES ({', '.join('?' * len(names))})",
            [event.get(c) for c in COLUMNS],
        )
    return [row[0] for row in db.execute(query.replace("SELECT *", "SELECT file_path", 1))]


def convert(path: Path, lists: dict[str, tuple[str, ...]]) -> str:
    backend = sqliteBackend(siem_pipeline(lists, columns=True))
    (query,) = backend.convert(SigmaCollection.from_yaml(path.read_text(encoding="utf-8")))
    return str(query)


def test_the_dangerous_serialization_rule_finds_the_same_events_in_sql() -> None:
    query = convert(DANGEROUS, load_value_lists(RULES))
    assert "event_dataset" in query and "ai_model_risk" in query
    events = [
        exported(file__path="/a.pt", ai__model__risk="dangerous"),
        exported(file__path="/b.pt", ai__model__risk="DANGEROUS"),
        exported(file__path="/c.pt", ai__model__risk="suspicious"),
        exported(file__path="/d.pt", ai__model__risk="dangerous", event__action="removed"),
        {**exported(file__path="/e.pt", ai__model__risk="dangerous"), "event.dataset": "other"},
    ]
    engine = load_rule_dir(RULES)
    fired = [
        e["file.path"]
        for e in events
        if any(m.rule_id == "947ea717-87af-4be2-ad78-4af2b2871c5d" for m in engine.evaluate(e))
    ]
    assert sorted(run_sql(query, events)) == fired == ["/a.pt", "/b.pt"]


def test_value_lists_become_values_and_an_empty_list_approves_nothing() -> None:
    lists = {**load_value_lists(RULES), "approved_model_names": ("Llama-3-8B*",)}
    events = [
        exported(file__path="/ok.gguf", ai__model__format="gguf", ai__model__name="llama-3-8b-q4"),
        exported(file__path="/new.gguf", ai__model__format="gguf", ai__model__name="Mystery-7B"),
        exported(file__path="/pkg.onnx", ai__model__format="onnx", ai__model__origin="package"),
    ]
    assert run_sql(convert(UNAPPROVED, lists), events) == ["/new.gguf"]
    nothing_approved = run_sql(convert(UNAPPROVED, load_value_lists(RULES)), events)
    assert sorted(nothing_approved) == ["/new.gguf", "/ok.gguf"]
