"""Fill a collector store with a synthetic fleet, fast: rows as ingest writes them, in bulk.

Model and process rows carry the JSON fields and column copies that collector.store's own
functions compute (clean_event, model_columns, process_columns); events are flat events as
agents send them. Secondary indexes are dropped during the load and built after it, and the
digest summary and host counts are rebuilt with Store.rebuild_digests, the same function a
migration uses. Envelopes (the signed bytes) are left out: no listing reads them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, insert

from collector.store import Store, schema, textsearch
from collector.store.bulk import execute_many
from collector.store.inventory import (
    clean_event,
    dumps,
    model_columns,
    process_columns,
)
from collector.store.triage_values import level_rank

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CHUNK = 20_000
FORMATS = [("gguf", 30), ("safetensors", 30), ("onnx", 12), ("pytorch", 10), ("pickle", 3)]
FORMATS += [("keras", 3), ("tflite", 4), ("coreml", 4), ("numpy", 2), ("hdf5", 2)]
KINDS = [("llm", 45), ("embedding", 20), ("vision", 15), ("speech", 8), ("other", 7), ("", 5)]
RISKS = [("none", 94), ("suspicious", 5), ("dangerous", 1)]
ORIGINS = [("store", 55), ("package", 30), ("user", 15)]
LICENSES = ["apache-2.0", "mit", "llama3.1", "gemma", "cc-by-nc-4.0", "openrail", ""]
QUANTS = ["Q4_K_M", "Q5_K_M", "Q8_0", "F16", "BF16", "F32", "IQ4_XS", "GPTQ-4bit", ""]
ARCHS = ["llama", "qwen2", "gemma3", "mistral", "phi3", "bert", "whisper", "clip", "t5"]
GROUPS = ["engineering", "research", "data", "finance", "sales", "support", "security", "it"]
OSES = [("darwin", 55), ("linux", 30), ("windows", 15)]
RUNTIMES = ["ollama", "llama.cpp", "vllm", "lm-studio", "onnxruntime", "pytorch"]
DATASETS = [
    ("shadowai.model_file", 70),
    ("shadowai.inference_process", 10),
    ("shadowai.agent_health", 20),
]


def pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


@dataclass(frozen=True)
class Model:
    sha256: str
    name: str
    fields: dict[str, object]  # the ai.model.* and file.size of every copy


@dataclass(frozen=True)
class Fleet:
    agents: list[str]
    hosts: list[str]
    catalog: list[Model]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def catalog(rng: random.Random, size: int) -> list[Model]:
    """`size` distinct models; callers draw from it with a long tail (a few are everywhere)."""
    models = []
    for i in range(size):
        arch = rng.choice(ARCHS)
        name = f"{arch}-{rng.choice(['7b', '8b', '13b', '1b', 'base', 'small', 'v2'])}-{i}"
        fields: dict[str, object] = {
            "file.size": int(rng.lognormvariate(20, 2.2)),
            "ai.model.format": pick(rng, FORMATS),
            "ai.model.name": name,
            "ai.model.architecture": arch,
            "ai.model.parameters": int(rng.lognormvariate(20, 2)),
            "ai.model.quantization": rng.choice(QUANTS),
            "ai.model.license": rng.choice(LICENSES),
            "ai.model.kind": pick(rng, KINDS),
            "ai.model.risk": pick(rng, RISKS),
        }
        fields["ai.model.unsafe"] = fields["ai.model.risk"] == "dangerous"
        models.append(Model(sha(f"model-{i}"), name, {k: v for k, v in fields.items() if v != ""}))
    return models


def draw(rng: random.Random, size: int) -> int:
    """An index into the catalog: half the time a popular one (about Zipf's law: a few
    models are on most hosts), half the time any, so that most of the catalog is used."""
    if rng.random() < 0.5:
        return min(size - 1, int(rng.paretovariate(1.1)) - 1)
    return rng.randrange(size)


def seed(store: Store, engine: Engine, *, hosts: int, model_rows: int, events: int) -> Fleet:
    rng = random.Random(20261204)
    fleet = Fleet([], [], catalog(rng, max(100, model_rows // 20)))
    _load_hosts(engine, rng, fleet, hosts)
    with engine.begin() as conn:
        textsearch.drop(conn)
    with _without_indexes(engine, schema.models, schema.events):
        _bulk(engine, schema.models, _model_rows(rng, fleet, model_rows))
        _bulk(engine, schema.events, _event_rows(rng, fleet, events))
    _bulk(engine, schema.processes, _process_rows(rng, fleet, hosts * 2))
    _bulk(engine, schema.alerts, _alert_rows(rng, fleet, max(100, hosts * 5)))
    with engine.begin() as conn:
        textsearch.ensure(conn)
    store.rebuild_digests()
    if engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load; until it has, the planner guesses. The
        # store's tables only: a bare ANALYZE takes every schema of the database in one
        # transaction, and ran out of shared memory on a shared one.
        tables = ", ".join(f'"{t.name}"' for t in schema.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {tables}")
    return fleet


class _without_indexes:
    """Drop the secondary indexes of `tables` for a bulk load; build them after it."""

    def __init__(self, engine: Engine, *tables: Table) -> None:
        self.engine = engine
        self.indexes = [index for table in tables for index in table.indexes]

    def __enter__(self) -> None:
        with self.engine.begin() as conn:
            for index in self.indexes:
                index.drop(conn)

    def __exit__(self, *exc: object) -> None:
        with self.engine.begin() as conn:
            for index in self.indexes:
                index.create(conn)


def _bulk(engine: Engine, table: Table, rows: Iterator[dict[str, Any]]) -> None:
    """Insert `rows` in chunks; PostgreSQL through COPY, SQLite through executemany."""
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            _insert(engine, table, chunk)
            chunk = []
    if chunk:
        _insert(engine, table, chunk)


def _insert(engine: Engine, table: Table, rows: list[dict[str, Any]]) -> None:
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            execute_many(conn, insert(table), rows)
        return
    names = list(rows[0])
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
        raw.commit()
    finally:
        raw.close()


def _load_hosts(engine: Engine, rng: random.Random, fleet: Fleet, count: int) -> None:
    agents, hosts = [], []
    for i in range(count):
        agent_id = sha(f"agent-{i}")[:32]
        os_type = pick(rng, OSES)
        seen = NOW - timedelta(
            seconds=rng.randint(0, 600) if rng.random() < 0.8 else rng.randint(900, 30 * 86400)
        )
        row = {
            "agent_id": agent_id,
            "host_name": f"{rng.choice(GROUPS)[:3]}-{os_type[:3]}-{i:05d}",
            "os_type": os_type,
            "group_name": rng.choice(GROUPS),
            "agent_version": f"0.{rng.randint(3, 5)}.{rng.randint(0, 9)}",
        }
        hosts.append({**row, "last_seen": seen, "model_count": 0})
        enrolled = NOW - timedelta(days=rng.randint(1, 365))
        agents.append(
            {
                **row,
                "public_key": bytes.fromhex(sha(agent_id)),
                "enrolled_at": enrolled,
                "last_seq": 0,
                "last_digest": b"",
                "revoked": rng.random() < 0.01,
                "last_seen": seen,
            }
        )
        fleet.agents.append(agent_id)
        fleet.hosts.append(row["host_name"])
    _bulk(engine, schema.hosts, iter(hosts))
    _bulk(engine, schema.agents, iter(agents))


def _model_rows(rng: random.Random, fleet: Fleet, count: int) -> Iterator[dict[str, Any]]:
    per_host = max(1, count // len(fleet.agents))
    made = 0
    for h, agent_id in enumerate(fleet.agents):
        want = per_host if h < len(fleet.agents) - 1 else count - made
        user = f"user{h}"
        for j in range(want):
            model = fleet.catalog[draw(rng, len(fleet.catalog))]
            origin = pick(rng, ORIGINS)
            path = _path(origin, user, model, j)
            event = {
                "file.path": path,
                "file.hash.sha256": model.sha256,
                "ai.model.origin": origin,
                **model.fields,
            }
            fields = clean_event(event)
            seen = NOW - timedelta(days=rng.randint(0, 200), seconds=rng.randint(0, 86400))
            removed = NOW - timedelta(days=1) if rng.random() < 0.03 else None
            yield {
                "agent_id": agent_id,
                "path_sha256": hashlib.sha256(path.encode()).digest(),
                "path": path,
                "fields": dumps(fields),
                "first_seen": seen,
                "last_seen": NOW - timedelta(minutes=rng.randint(0, 600)),
                "removed_at": removed,
                **model_columns(fields),
            }
        made += want


def _path(origin: str, user: str, model: Model, j: int) -> str:
    if origin == "store":
        hub = f"/Users/{user}/.cache/huggingface/hub/models--org--{model.name}"
        return f"{hub}/snapshots/{model.sha256[:12]}/model-{j}.safetensors"
    if origin == "package":
        return (
            f"/Users/{user}/venvs/app{j % 7}/lib/python3.11/site-packages/pkg{j}/{model.name}.onnx"
        )
    return f"/Users/{user}/Downloads/experiments/{j}/{model.name}.gguf"


def _event_rows(rng: random.Random, fleet: Fleet, count: int) -> Iterator[dict[str, Any]]:
    start = NOW - timedelta(days=30)
    step = timedelta(days=30) / max(1, count)
    for i in range(count):
        h = i % len(fleet.agents)  # round-robin, as batches from a fleet interleave
        dataset = pick(rng, DATASETS)
        body = _event_body(rng, fleet, h, dataset, i)
        yield {
            "agent_id": fleet.agents[h],
            "seq": i // len(fleet.agents) + 1,
            "dataset": dataset,
            "action": str(body["event.action"]),
            "received_at": start + step * i,
            "body": dumps(clean_event(body)),
        }


def _event_body(
    rng: random.Random, fleet: Fleet, h: int, dataset: str, i: int
) -> dict[str, object]:
    common: dict[str, object] = {
        "@timestamp": (NOW - timedelta(seconds=i)).isoformat(),
        "event.dataset": dataset,
        "agent.id": fleet.agents[h],
        "agent.version": "0.4.2",
        "host.name": fleet.hosts[h],
        "host.os.type": "darwin",
    }
    if dataset == "shadowai.agent_health":
        return {
            **common,
            "event.action": "snapshot",
            "agent.health.cpu_percent": round(rng.random() * 3, 2),
            "agent.health.rss_bytes": rng.randint(40, 90) * 2**20,
            "agent.health.spool_bytes": rng.randint(0, 10**6),
            "agent.health.permission_gaps": rng.randint(0, 5),
        }
    if dataset == "shadowai.inference_process":
        return {
            **common,
            "event.action": "started",
            "process.pid": rng.randint(100, 60000),
            "process.name": rng.choice(RUNTIMES),
            "ai.runtime.name": rng.choice(RUNTIMES),
        }
    model = fleet.catalog[draw(rng, len(fleet.catalog))]
    path = f"/Users/user{h}/Downloads/{model.name}.gguf"
    return {
        **common,
        "event.action": "snapshot",
        "file.path": path,
        "file.hash.sha256": model.sha256,
        **model.fields,
    }


def _process_rows(rng: random.Random, fleet: Fleet, count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        h = rng.randrange(len(fleet.agents))
        runtime = rng.choice(RUNTIMES)
        pid = 1000 + i
        fields = clean_event(
            {
                "process.pid": pid,
                "process.name": runtime,
                "process.executable": f"/usr/local/bin/{runtime}",
                "ai.runtime.name": runtime,
                "ai.listen.address": "127.0.0.1",
                "ai.listen.port": 11434,
                "ai.listen.exposed": rng.random() < 0.05,
                "ai.gpu.memory_bytes": rng.randint(0, 24) * 2**30,
                "ai.gpu.utilization": round(rng.random() * 100, 1),
                "ai.classifier.score": round(rng.random(), 3),
            }
        )
        yield {
            "agent_id": fleet.agents[h],
            "key_sha256": hashlib.sha256(f"{pid}\x00{runtime}".encode()).digest(),
            "pid": pid,
            "name": runtime,
            "fields": json.dumps(fields, separators=(",", ":")),
            "first_seen": NOW - timedelta(hours=rng.randint(1, 500)),
            "last_seen": NOW - timedelta(minutes=rng.randint(0, 60)),
            "stopped_at": NOW if rng.random() < 0.2 else None,
            **process_columns(fields),
        }


def _alert_rows(rng: random.Random, fleet: Fleet, count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        h = rng.randrange(len(fleet.agents))
        first = NOW - timedelta(days=rng.randint(0, 59), seconds=rng.randint(0, 86400))
        key = f"rule-{i % 40}|{fleet.agents[h]}|{i}"
        level = rng.choice(["low", "medium", "high", "critical"])
        yield {
            "dedup_sha256": hashlib.sha256(key.encode()).digest(),
            "dedup_key": key,
            "rule_id": f"rule-{i % 40}",
            "rule_title": f"Rule {i % 40}",
            "level": level,
            "level_rank": level_rank(level),  # as the store sets it (collector.store.alerting)
            "status": rng.choice(["open", "open", "acknowledged", "resolved"]),
            "agent_id": fleet.agents[h],
            "host_name": fleet.hosts[h],
            "summary": f"/Users/user{h}/model-{i}.pkl",
            "event_seq": i,
            "count": 1,
            "first_seen": first,
            "last_seen": first + timedelta(hours=rng.randint(0, 48)),
        }
