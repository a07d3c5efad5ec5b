"""The retention watcher of a running collector: expires at start, stops at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.governance import load_rule_dir
from collector.retention import Retention
from collector.server import start
from collector.store import AgentRecord, StoredEvent
from tests.collector.conftest import StoreTarget

RULES = Path(__file__).resolve().parents[2] / "rules"


def test_old_rows_go_soon_after_start_and_stop_does_not_wait_an_hour(
    store_target: StoreTarget,
) -> None:
    store = store_target.open()
    now = datetime.now(UTC)
    store.add_agent(AgentRecord("a", b"k" * 32, "lap", "linux", "g", "1", now))
    ages = [400, 200, 60, 1]  # days
    events = [
        StoredEvent(seq, b"d%d" % seq, b"env", now - timedelta(days=age), {"event.action": "x"})
        for seq, age in enumerate(ages, start=1)
    ]
    store.ingest(
        agent_id="a",
        expected_last_seq=0,
        last_seq=4,
        last_digest=b"d4",
        events=events,
        gaps=[],
        alerts=[],
        now=now,
    )
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
        retention=Retention(envelopes_days=30, events_days=90),
    )
    try:
        counted = 'shadowai_retention_deleted_total{table="events"} 2.0'
        deadline = time.monotonic() + 20
        while counted not in server.metrics.render().decode() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(int(str(e["seq"])) for e in store.list_events()) == [3, 4]
        assert sorted(store.held_digests("a", [1, 2, 3, 4])) == [4]  # the tip stays
        metrics = server.metrics.render().decode()
        assert 'shadowai_retention_deleted_total{table="envelopes"} 3.0' in metrics
    finally:
        stopped = time.monotonic()
        server.stop()
        assert time.monotonic() - stopped < 10
        store.close()
