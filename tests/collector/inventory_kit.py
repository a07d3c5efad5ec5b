"""A small fleet ingested through Store.ingest, for the listing tests of the store and web.

Three seen hosts and one enrolled but silent; model files sharing digests across hosts (one
removed, one never hashed, one with a hostile path and name); processes, one stopped;
agent health reports; alerts open and resolved.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from collector.store import AgentRecord, NewAlert, Store, StoredEvent

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HOSTILE_PATH = "/home/dev/<script>alert(1)</script>.gguf"
D_LLAMA, D_EMBED, D_PICKLE, D_VISION, D_HOSTILE = (f"{n:x}" * 64 for n in (10, 11, 12, 13, 14))

_MODELS: dict[str, dict[str, object]] = {
    D_LLAMA: {
        "ai.model.format": "gguf",
        "ai.model.name": "Llama-3.1-8B-Instruct",
        "ai.model.kind": "llm",
        "ai.model.risk": "none",
        "ai.model.license": "llama3.1",
        "ai.model.parameters": 8_030_261_248,
        "ai.model.quantization": "Q4_K_M",
        "file.size": 4_920_734_016,
    },
    D_EMBED: {
        "ai.model.format": "safetensors",
        "ai.model.name": "bge-small-en",
        "ai.model.kind": "embedding",
        "ai.model.risk": "none",
        "ai.model.license": "mit",
        "ai.model.parameters": 33_000_000,
        "file.size": 133_000_000,
    },
    D_PICKLE: {
        "ai.model.format": "pickle",
        "ai.model.name": "=cmd|' /C calc'!A0",  # a formula, for the CSV tests
        "ai.model.kind": "other",
        "ai.model.risk": "dangerous",
        "ai.model.unsafe": True,
        "file.size": 2_048,
    },
    D_VISION: {
        "ai.model.format": "onnx",
        "ai.model.name": "yolov8n",
        "ai.model.kind": "vision",
        "ai.model.risk": "suspicious",
        "ai.model.parameters": 3_200_000,
        "file.size": 12_500_000,
    },
    D_HOSTILE: {"ai.model.format": "gguf", "ai.model.name": "<b>bold</b>", "file.size": 10},
}
# (host, path, digest or None, origin); the files each host holds.
FILES = [
    ("alpha", "/home/a/.cache/huggingface/llama.gguf", D_LLAMA, "store"),
    ("alpha", "/home/a/venv/site-packages/bge/model.safetensors", D_EMBED, "package"),
    ("alpha", "/home/a/Downloads/evil.pkl", D_PICKLE, "user"),
    ("alpha", "/home/a/unhashed.onnx", None, "user"),
    ("alpha", "/home/a/Downloads/old.gguf", D_LLAMA, "user"),  # removed later
    ("beta", "/Users/b/.ollama/models/blobs/llama", D_LLAMA, "store"),
    ("beta", "/Users/b/projects/llama-copy.gguf", D_LLAMA, "user"),
    ("beta", "/Users/b/models/yolov8n.onnx", D_VISION, "user"),
    ("beta", "/Users/b/bge/model.safetensors", D_EMBED, "user"),
    ("gamma", "C:\\Users\\g\\models\\llama.gguf", D_LLAMA, "user"),
    ("gamma", HOSTILE_PATH, D_HOSTILE, "user"),
]
REMOVED = ("alpha", "/home/a/Downloads/old.gguf")
HOSTS = {  # host -> (agent_id, os, group)
    "alpha": ("agent-alpha", "linux", "ml"),
    "beta": ("agent-beta", "darwin", "eng"),
    "gamma": ("agent-gamma", "windows", "eng"),
    "quiet": ("agent-quiet", "linux", "ml"),  # enrolled, never sends
}


@dataclass
class Kit:
    """What was ingested, for tests to compare against."""

    now: datetime
    live_files: list[tuple[str, str]] = field(default_factory=list)  # (agent_id, path)
    processes: list[tuple[str, int]] = field(default_factory=list)  # running (agent_id, pid)
    events: int = 0


def build_fleet(store: Store) -> Kit:
    for host, (agent_id, os_type, group) in HOSTS.items():
        store.add_agent(AgentRecord(agent_id, bytes(32), host, os_type, group, "0.4.2", T0))
    kit = Kit(now=T0 + timedelta(hours=3))
    seqs = {agent_id: itertools.count(1) for agent_id, _, _ in HOSTS.values()}
    for host in ("alpha", "beta", "gamma"):
        agent_id = HOSTS[host][0]
        events = [
            _file_event(host, path, digest, origin)
            for h, path, digest, origin in FILES
            if h == host
        ]
        events += _process_events(host)
        events.append(_health(host, cpu=1.5))
        _ship(store, agent_id, seqs[agent_id], events, T0 + timedelta(hours=1), _alerts(host))
    alpha = HOSTS["alpha"][0]
    removed = {
        **_common("alpha"),
        "event.dataset": "shadowai.model_file",
        "event.action": "removed",
    }
    removed["file.path"] = REMOVED[1]
    latest = _health("alpha", cpu=3.5)
    _ship(store, alpha, seqs[alpha], [removed, latest], T0 + timedelta(hours=2), [])
    kit.live_files = [(HOSTS[h][0], p) for h, p, _, _ in FILES if (h, p) != REMOVED]
    kit.processes = [(HOSTS["alpha"][0], 4242), (HOSTS["alpha"][0], 4243), (HOSTS["beta"][0], 77)]
    return kit


def _ship(
    store: Store,
    agent_id: str,
    seq: itertools.count[int],
    events: list[dict[str, object]],
    at: datetime,
    alerts: list[NewAlert],
) -> None:
    stored = [StoredEvent(next(seq), b"d", b"e", at, e) for e in events]
    first = stored[0].seq
    store.ingest(
        agent_id=agent_id,
        expected_last_seq=first - 1,
        last_seq=stored[-1].seq,
        last_digest=b"d",
        events=stored,
        gaps=[],
        alerts=alerts,
        now=at,
    )


def _common(host: str) -> dict[str, object]:
    agent_id, os_type, _ = HOSTS[host]
    return {
        "host.name": host,
        "host.os.type": os_type,
        "agent.id": agent_id,
        "agent.version": "0.4.2",
    }


def _file_event(host: str, path: str, digest: str | None, origin: str) -> dict[str, object]:
    event: dict[str, object] = {
        **_common(host),
        "event.dataset": "shadowai.model_file",
        "event.action": "discovered",
        "file.path": path,
        "ai.model.origin": origin,
    }
    if digest is not None:
        event.update(_MODELS[digest])
        event["file.hash.sha256"] = digest
    return event


def _process_events(host: str) -> list[dict[str, object]]:
    base = {**_common(host), "event.dataset": "shadowai.inference_process"}
    if host == "alpha":
        return [
            {
                **base,
                "event.action": "started",
                "process.pid": 4242,
                "process.name": "ollama",
                "ai.runtime.name": "ollama",
                "ai.gpu.memory_bytes": 6_000_000_000,
                "ai.gpu.utilization": 42.5,
                "ai.listen.port": 11434,
            },
            {
                **base,
                "event.action": "started",
                "process.pid": 4243,
                "process.name": "python3",
                "ai.runtime.name": "pytorch",
                "ai.gpu.memory_bytes": 1_000_000,
            },
        ]
    if host == "beta":
        return [
            {
                **base,
                "event.action": "started",
                "process.pid": 77,
                "process.name": "llama-server",
                "ai.runtime.name": "llama.cpp",
                "ai.gpu.utilization": 3.0,
            },
            {
                **base,
                "event.action": "started",
                "process.pid": 78,
                "process.name": "vllm",
                "ai.runtime.name": "vllm",
            },
            {**base, "event.action": "stopped", "process.pid": 78, "process.name": "vllm"},
        ]
    return []


def _health(host: str, *, cpu: float) -> dict[str, object]:
    return {
        **_common(host),
        "event.dataset": "shadowai.agent_health",
        "event.action": "snapshot",
        "agent.health.cpu_percent": cpu,
        "agent.health.rss_bytes": 52_000_000,
        "agent.health.spool_bytes": 4096,
        "agent.health.permission_gaps": 2,
    }


def _alerts(host: str) -> list[NewAlert]:
    agent_id = HOSTS[host][0]
    at = T0 + timedelta(hours=1)
    if host == "alpha":
        return [
            NewAlert(
                "r-pickle",
                "Dangerous pickle <x>",
                "high",
                agent_id,
                host,
                f"r-pickle|{agent_id}|evil",
                3,
                "/home/a/Downloads/evil.pkl",
                at,
            ),
            NewAlert(
                "r-exposed",
                "Exposed server",
                "medium",
                agent_id,
                host,
                f"r-exposed|{agent_id}",
                6,
                "ollama on 0.0.0.0",
                at,
            ),
        ]
    if host == "gamma":
        return [
            NewAlert(
                "r-gguf",
                "GGUF model",
                "low",
                agent_id,
                host,
                f"r-gguf|{agent_id}",
                1,
                HOSTILE_PATH,
                at,
            )
        ]
    return []
