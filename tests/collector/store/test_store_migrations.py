"""Schema migrations: fresh databases, databases from before migrations, newer ones, races."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Text, insert, text
from sqlalchemy.engine import Engine

from collector.store import Store, migrate
from collector.store.engine import create_store_engine
from collector.store.schema import metadata
from collector.store.textsearch import outside_metadata
from tests.collector.conftest import StoreTarget
from tests.collector.store import schema_0001 as old

THEN = datetime(2025, 1, 10, 9, 30, tzinfo=UTC)


def _engine(target: StoreTarget) -> Engine:
    return create_store_engine(target.url, target.schema)


def _revision(target: StoreTarget) -> str | None:
    engine = _engine(target)
    try:
        with engine.connect() as conn:
            return migrate.current(conn, target.schema)
    finally:
        engine.dispose()


def _old_database(target: StoreTarget) -> None:
    """What collector 0.1.0 left behind: create_all, then an agent that sent two events,
    its model, and an alert."""
    engine = _engine(target)
    event = {"event.dataset": "shadowai.model_file", "file.path": "/m/a.gguf"}
    try:
        with engine.begin() as conn:
            old.metadata.create_all(conn)
            conn.execute(
                insert(old.agents).values(
                    agent_id="agent-1",
                    public_key=b"k" * 32,
                    host_name="laptop",
                    os_type="linux",
                    group_name="ml",
                    agent_version="0.1.0",
                    enrolled_at=THEN,
                    last_seq=2,
                    last_digest=b"d2",
                    revoked=False,
                    last_seen=THEN,
                )
            )
            for seq in (1, 2):
                conn.execute(
                    insert(old.envelopes).values(
                        agent_id="agent-1",
                        seq=seq,
                        digest=b"d%d" % seq,
                        envelope=b"signed bytes %d" % seq,
                        received_at=THEN,
                    )
                )
                conn.execute(
                    insert(old.events).values(
                        agent_id="agent-1",
                        seq=seq,
                        dataset="shadowai.model_file",
                        action="discovered",
                        received_at=THEN,
                        body=json.dumps(event),
                    )
                )
            conn.execute(
                insert(old.models).values(
                    agent_id="agent-1",
                    path_sha256=b"p" * 32,
                    path="/m/a.gguf",
                    fields=json.dumps({"file.path": "/m/a.gguf", "ai.model.format": "gguf"}),
                    first_seen=THEN,
                    last_seen=THEN,
                )
            )
            conn.execute(
                insert(old.alerts).values(
                    dedup_sha256=b"x" * 32,
                    dedup_key="rule-1|agent-1|/m/a.gguf",
                    rule_id="rule-1",
                    rule_title="A model",
                    level="high",
                    status="open",
                    agent_id="agent-1",
                    host_name="laptop",
                    summary="/m/a.gguf",
                    event_seq=2,
                    count=1,
                    first_seen=THEN,
                    last_seen=THEN,
                )
            )
    finally:
        engine.dispose()


def test_a_fresh_database_gets_every_revision(store_target: StoreTarget) -> None:
    store_target.open().close()
    assert _revision(store_target) == migrate.head()


def test_schema_py_and_the_migrations_agree(store_target: StoreTarget) -> None:
    """Fails when schema.py changed without a revision: `python scripts/migration.py NAME`."""
    store = store_target.open()
    store.close()
    engine = _engine(store_target)
    try:
        with engine.connect() as conn:
            opts = {"compare_type": True, "include_object": outside_metadata}
            context = MigrationContext.configure(conn, opts=opts)
            assert compare_metadata(context, metadata) == []
            # The comparison sees a change to schema.py: one column more is a difference.
            changed = MetaData()
            for table in metadata.tables.values():
                table.to_metadata(changed)
            changed.tables["agents"].append_column(Column("nickname", Text))
            assert [d[0] for d in compare_metadata(context, changed)] == ["add_column"]
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_keeps_its_data(store_target: StoreTarget) -> None:
    _old_database(store_target)
    assert _revision(store_target) is None
    store = store_target.open()
    try:
        agent = store.get_agent("agent-1")
        assert agent is not None
        assert (agent.last_seq, agent.last_digest, agent.record.host_name) == (2, b"d2", "laptop")
        assert store.held_digests("agent-1", [1, 2]) == {1: b"d1", 2: b"d2"}
        assert [e["seq"] for e in store.list_events()] == [2, 1]
        assert [m["file.path"] for m in store.list_models()] == ["/m/a.gguf"]
        assert [(a["rule_id"], a["status"]) for a in store.list_alerts()] == [("rule-1", "open")]
    finally:
        store.close()
    assert _revision(store_target) == migrate.head()


def test_tables_from_before_migrations_must_be_the_first_revision(
    store_target: StoreTarget,
) -> None:
    engine = _engine(store_target)
    try:
        with engine.begin() as conn:
            old.metadata.create_all(conn)
            conn.execute(text("ALTER TABLE hosts ADD COLUMN nickname TEXT"))
            conn.execute(text("DROP TABLE gaps"))
    finally:
        engine.dispose()
    with pytest.raises(migrate.SchemaMismatch) as caught:
        store_target.open()
    message = str(caught.value)
    assert "table gaps is missing" in message
    assert "table hosts: columns missing: none; unknown: nickname" in message
    assert _revision(store_target) is None  # nothing stamped, nothing created


def test_a_newer_revision_than_this_code_knows_is_refused(store_target: StoreTarget) -> None:
    store_target.open().close()
    engine = _engine(store_target)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(migrate.SchemaTooNew, match="revision 9999, newer than this collector"):
        store_target.open()
    assert _revision(store_target) == "9999"


def test_replicas_starting_together_all_open(
    store_target: StoreTarget, open_store: Callable[[], Store]
) -> None:
    """PostgreSQL: an advisory lock queues them; SQLite: BEGIN IMMEDIATE does."""
    start = threading.Barrier(4)
    opened: list[Store] = []
    failed: list[BaseException] = []

    def replica() -> None:
        start.wait()
        try:
            opened.append(open_store())
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in opened:
        store.close()
    assert failed == []
    assert len(opened) == 4
    assert _revision(store_target) == migrate.head()


def test_migration_revisions_form_one_line() -> None:
    """One head and no branches: two revisions with one parent are a merge left undone."""
    scripts = migrate.scripts()
    assert len(scripts.get_heads()) == 1
    revisions = list(scripts.walk_revisions())
    assert revisions[-1].revision == migrate.FIRST
    assert all(len(r.nextrev) <= 1 for r in revisions)
