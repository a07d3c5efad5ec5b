"""The timing half of bench.collector_scale: serve the real app over a seeded store, time
every page and API listing, explain the slow ones, report peak RSS.

    python -m bench.collector_requests URL SCHEMA_JSON REPEAT EXPLAIN_OVER_MS REQUESTS_JSON

The requests (with their deep cursors, found by OFFSET queries) are planned by the caller,
so that this process's peak RSS is the serving alone.
"""

from __future__ import annotations

import json
import re
import secrets
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import Connection

from collector.paging import encode_cursor
from collector.store import AgentRecord, Store, StoredEvent, activity, hosts, listings, schema
from collector.store.engine import create_store_engine
from collector.web.app import create_app
from collector.web.auth import mint_api_token
from collector.web.passwords import Passwords

SLOW_MS = 300.0
# Small argon2 parameters: one login before the timing, whose 64 MiB default would be in
# the serving process's peak RSS.
_PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
_statements: list[tuple[str, Any, float]] = []  # (SQL, parameters, ms) of the current request


def _before(conn: Connection, cursor: Any, statement: str, params: Any, *_: Any) -> None:
    conn.info["started"] = time.perf_counter()


def _after(conn: Connection, cursor: Any, statement: str, params: Any, *_: Any) -> None:
    ms = (time.perf_counter() - conn.info.pop("started", time.perf_counter())) * 1000
    _statements.append((statement, params, ms))


def _cursor(engine: Engine, key: Sequence[Any], sort: str, *where: Any, at: float = 0.5) -> str:
    """A cursor `at` of the way through the rows, as a client holds after paging that far."""
    with engine.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(key[0].table).where(*where)
        ).scalar_one()
        order = [c.desc() for c in key] if sort.startswith("-") else list(key)
        row = conn.execute(
            select(*key).where(*where).order_by(*order).offset(int(total * at)).limit(1)
        ).one()
    values = [v if v is None or isinstance(v, str | int | float | bool) else str(v) for v in row]
    return encode_cursor(values, sort=sort)


def requests(engine: Engine) -> list[tuple[str, str]]:
    """(name, path) of every request timed: each listing's first page, a deep page by cursor,
    filtered, sorted and CSV; the pages likewise."""
    m, d, h = schema.models.c, schema.model_digests.c, schema.hosts.c
    live = m.removed_at.is_(None)
    with engine.connect() as conn:
        busy = conn.execute(select(h.agent_id).order_by(h.model_count.desc()).limit(1)).scalar_one()
        top = conn.execute(select(d.sha256).order_by(d.host_count.desc()).limit(1)).scalar_one()
        prefix = top[:6]
    deep = {
        "hosts": _cursor(engine, hosts.host_sorts(h.model_count)["name"], "name"),
        "models": _cursor(engine, listings.model_sorts()["path"], "path", live),
        "digests": _cursor(engine, listings.digest_sorts()["name"], "name", d.file_count > 0),
        "events": _cursor(engine, activity.event_sorts()["id"], "-id"),
        "agents": _cursor(engine, activity.agent_sorts()["enrolled_at"], "enrolled_at"),
        "top": _cursor(
            engine, listings.model_sorts()["agent_id"], "agent_id", live, m.sha256 == top
        ),
    }
    api = "/api/v1"
    return [
        ("api hosts", f"{api}/hosts"),
        ("api hosts deep", f"{api}/hosts?cursor={deep['hosts']}"),
        ("api hosts filtered", f"{api}/hosts?group=research&os=linux"),
        ("api hosts by open alerts", f"{api}/hosts?sort=-open_alerts"),
        ("api hosts by models", f"{api}/hosts?sort=-models"),
        ("api hosts csv 1000", f"{api}/hosts?format=csv&limit=1000"),
        ("api host", f"{api}/hosts/{busy}"),
        ("api models", f"{api}/models"),
        ("api models deep", f"{api}/models?cursor={deep['models']}"),
        ("api models format=pickle", f"{api}/models?model_format=pickle"),
        ("api models risk=dangerous", f"{api}/models?risk=dangerous"),
        ("api models of a host", f"{api}/models?agent_id={busy}"),
        ("api models kind=speech", f"{api}/models?kind=speech"),
        ("api models q=absent path", f"{api}/models?q=experiments/4242/"),
        ("api models q=rare path", f"{api}/models?q=experiments/42/"),
        ("api models q=common", f"{api}/models?q=llama"),
        ("api models by size", f"{api}/models?sort=-size"),
        ("api models csv 1000", f"{api}/models?format=csv&limit=1000"),
        ("api by-digest", f"{api}/models/by-digest"),
        ("api by-digest deep", f"{api}/models/by-digest?cursor={deep['digests']}"),
        ("api by-digest kind=llm", f"{api}/models/by-digest?kind=llm"),
        ("api by-digest by hosts", f"{api}/models/by-digest?sort=-hosts"),
        ("api by-digest csv 1000", f"{api}/models/by-digest?format=csv&limit=1000"),
        ("api digest (most hosts)", f"{api}/models/by-digest/{top}"),
        ("api digest deep", f"{api}/models/by-digest/{top}?cursor={deep['top']}"),
        ("api processes", f"{api}/processes"),
        ("api processes runtime", f"{api}/processes?runtime=vllm"),
        ("api processes by gpu", f"{api}/processes?sort=-gpu_memory"),
        ("api processes csv 1000", f"{api}/processes?format=csv&limit=1000"),
        ("api events", f"{api}/events"),
        ("api events deep", f"{api}/events?cursor={deep['events']}"),
        ("api events health", f"{api}/events?dataset=shadowai.agent_health"),
        ("api events of a host", f"{api}/events?agent_id={busy}"),
        ("api events csv 1000", f"{api}/events?format=csv&limit=1000"),
        ("api agents", f"{api}/agents"),
        ("api agents deep", f"{api}/agents?cursor={deep['agents']}"),
        ("api agents csv 1000", f"{api}/agents?format=csv&limit=1000"),
        ("api search all kinds", f"{api}/search?q=llama"),
        ("api search digest", f"{api}/search?q={prefix}&type=digest"),
        ("api search path", f"{api}/search?q=experiments/4242/&type=path"),
        ("page /", "/"),
        ("page /hosts", "/hosts"),
        ("page /hosts deep", f"/hosts?cursor={deep['hosts']}"),
        ("page /hosts by open alerts", "/hosts?sort=-open_alerts"),
        ("page /hosts/{id}", f"/hosts/{busy}"),
        ("page /models", "/models"),
        ("page /models by hosts", "/models?sort=-hosts"),
        ("page /models/{sha256}", f"/models/{top}"),
        ("page /models/files", "/models/files"),
        ("page /models/files deep", f"/models/files?cursor={deep['models']}"),
        ("page /models/files pickle", "/models/files?model_format=pickle"),
        ("page /processes", "/processes"),
        ("page /search", "/search?q=llama"),
        ("page /api/docs", "/api/docs"),
    ]


def _time(client: TestClient, path: str, headers: dict[str, str], repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        _statements.clear()
        started = time.perf_counter()
        # A redirect (to the login page) is shown as such, not timed as the page.
        response = client.get(path, headers=headers, follow_redirects=False)
        runs.append((time.perf_counter() - started) * 1000)
    return {
        "status": response.status_code,
        "bytes": len(response.content),
        "first": runs[0],
        "median": statistics.median(runs),
        "statements": list(_statements),
    }


def _explain(engine: Engine, statements: Sequence[tuple[str, Any, float]]) -> Iterator[str]:
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
    for statement, params, ms in sorted(statements, key=lambda s: -s[2])[:2]:
        yield f"  -- {ms:.0f} ms: {' '.join(statement.split())[:600]}"
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(prefix + statement, params)
            for row in cursor.fetchall():
                yield ("     " + " | ".join(str(v) for v in row))[:240]
        finally:
            raw.close()


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB. The peak is VmHWM, not
    getrusage's ru_maxrss: that one survives exec, so it starts at the forking parent's size."""
    lines = Path("/proc/self/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def plan(url: str, schema_name: str | None) -> list[tuple[str, str]]:
    engine = create_store_engine(url, schema_name)
    try:
        return requests(engine)
    finally:
        engine.dispose()


@contextmanager
def _signed_in(store: Store) -> Iterator[TestClient]:
    """A client of the real app with a viewer's session, logged in through the form: pages
    answer a visitor without one with a redirect to the login page. Its Host is one the app
    serves (TestClient's own, testserver, is refused by the DNS-rebinding guard)."""
    username, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    store.add_user(
        username=username,
        role="viewer",
        password_hash=_PASSWORDS.hash(password),
        now=datetime.now(UTC),
    )
    app = create_app(store, rules_summary=lambda: [], passwords=_PASSWORDS)
    with TestClient(app, base_url="http://localhost") as client:
        form = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        if csrf is None:
            raise SystemExit("no CSRF token on the login page")
        login = {"username": username, "password": password, "csrf_token": csrf.group(1)}
        reply = client.post("/login", data={**login, "next": "/"}, follow_redirects=False)
        if reply.status_code != 303:
            raise SystemExit(f"login refused: {reply.status_code} {reply.text[:200]}")
        yield client


def measure(
    url: str,
    schema_name: str | None,
    repeat: int,
    explain_over: float,
    planned: list[tuple[str, str]],
) -> None:
    store = Store.open(url, schema=schema_name)
    engine = create_store_engine(url, schema_name)
    token, token_id, digest = mint_api_token()
    store.add_api_token(
        token_id=token_id, secret_sha256=digest, role="viewer", created_at=datetime.now(UTC)
    )
    headers = {"Authorization": f"Bearer {token}"}
    slow, raised = [], {}
    with _signed_in(store) as client:
        rss_start, _ = _rss_mb()
        event.listen(Engine, "before_cursor_execute", _before)
        event.listen(Engine, "after_cursor_execute", _after)
        print(f"\n{'request':34} {'status':>6} {'first ms':>9} {'median ms':>10} {'bytes':>10}")
        for name, path in planned:
            before = _rss_mb()[1]
            result = _time(client, path, headers if path.startswith("/api/v1") else {}, repeat)
            raised[name] = _rss_mb()[1] - before
            flag = " SLOW" if result["median"] > SLOW_MS else ""
            if result["median"] > explain_over:
                flag = flag or " (explained)"
            status, first, median = result["status"], result["first"], result["median"]
            print(
                f"{name:34} {status:>6} {first:>9.0f} {median:>10.0f} {result['bytes']:>10,}{flag}",
                flush=True,
            )
            if flag:
                slow.append((name, result["statements"]))
    event.remove(Engine, "before_cursor_execute", _before)
    event.remove(Engine, "after_cursor_execute", _after)
    current, peak = _rss_mb()
    most = sorted(raised.items(), key=lambda kv: -kv[1])[:3]
    print(
        f"\nserving process RSS: {rss_start:.0f} MB after opening the store and signing in, "
        f"{current:.0f} MB after every request, {peak:.0f} MB peak; the peak rose most during "
        + ", ".join(f"{name} (+{mb:.0f} MB)" for name, mb in most)
    )
    for name, statements in slow:
        print(f"\nplan of {name}:")
        for line in _explain(engine, statements):
            print(line)
    engine.dispose()
    store.close()


def ingest_rate(url: str, schema_name: str | None, batches: int = 20) -> tuple[float, float]:
    """Events per second through Store.ingest for a new agent, 100 model_file events per
    batch: (new files, snapshots of the same files again)."""
    store = Store.open(url, schema=schema_name)
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    agent_id = f"ingest-{time.time_ns()}"
    store.add_agent(AgentRecord(agent_id, b"\x02" * 32, "ingest-host", "linux", "g", "1", at))
    seq, rates = 0, []
    for _ in ("new", "snapshot"):
        elapsed = 0.0
        for b in range(batches):
            events = []
            for i in range(100):
                seq += 1
                k = b * 100 + i
                fields = {
                    "event.dataset": "shadowai.model_file",
                    "event.action": "snapshot",
                    "file.path": f"/Users/ingest/models/{k}/model.gguf",
                    "file.size": 1000 + k,
                    "file.hash.sha256": f"{k:064x}",
                    "ai.model.format": "gguf",
                    "ai.model.name": f"model {k}",
                }
                events.append(StoredEvent(seq, b"d", b"e", at + timedelta(seconds=seq), fields))
            started = time.perf_counter()
            store.ingest(
                agent_id=agent_id,
                expected_last_seq=seq - 100,
                last_seq=seq,
                last_digest=b"d",
                events=events,
                gaps=[],
                alerts=[],
                now=at + timedelta(seconds=seq),
            )
            elapsed += time.perf_counter() - started
        rates.append(batches * 100 / elapsed)
    store.close()
    return rates[0], rates[1]


if __name__ == "__main__":
    planned = [(str(name), str(path)) for name, path in json.loads(sys.argv[5])]
    measure(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), planned)
