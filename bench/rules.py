"""Rule evaluation cost: events per second on one core with the default pack and with the
pack plus 200 generated rules (through the index, and trying every rule as before it), the
time to load 500 rules, and Ed25519 verification per event (wire/envelope.py) measured in
the same run as the reference: evaluating an event should cost less than verifying it.

Run: `python -m bench.rules` (about 20 s); also part of `python -m bench`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.governance import RuleSet, load_rule_dir, parse_rules
from collector.governance.model import Event
from wire import envelope

PACK = Path(__file__).resolve().parent.parent / "rules"
ROUNDS = 5
GENERATED = """\
title: generated {i}
id: 00000000-0000-4000-9000-{i:012d}
level: medium
logsource: {{product: shadowai, category: {category}}}
detection:
{detection}
  removed: {{event.action: [removed, stopped]}}
  condition: sel and not removed
"""
# What a security team adds over time: named models, file digests, runtime versions,
# host groups, command-line flags.
_SHAPES = (
    ("model_file", "  sel: {{ai.model.name: Custom-Model-{i}}}"),
    ("model_file", "  sel: {{file.hash.sha256: '{digest}'}}"),
    (
        "inference_process",
        "  sel: {{ai.runtime.name: runtime-{i}, ai.runtime.version|startswith: '1.'}}",
    ),
    ("model_file", "  sel: {{host.group: team-{i}, ai.model.kind: llm}}"),
    ("inference_process", "  sel: {{process.command_line|contains: '--flag-{i}'}}"),
)


def generated_rules(count: int) -> list[tuple[str, str]]:
    documents = []
    for i in range(count):
        category, detection = _SHAPES[i % len(_SHAPES)]
        text = GENERATED.format(
            i=i,
            category=category,
            detection=detection.format(i=i, digest=f"{i:064x}"),
        )
        documents.append((f"generated_{i}.yml", text))
    return documents


def sample_events() -> list[dict[str, object]]:
    """A mix like a fleet's: mostly model files, inference processes, some health."""
    common = {"host.name": "mbp-7", "host.group": "dev", "agent.id": "a" * 32}
    models = [
        {
            **common,
            "event.dataset": "shadowai.model_file",
            "event.action": "snapshot",
            "file.path": f"/home/dev/.ollama/models/blobs/sha256-{i:064x}",
            "file.hash.sha256": f"{i * 7:064x}",
            "file.size": 4_920_734_016,
            "ai.model.format": ["gguf", "safetensors", "onnx", "pytorch"][i % 4],
            "ai.model.name": f"Meta-Llama-3-{i}B-Instruct",
            "ai.model.kind": ["llm", "embedding", "llm", "vision"][i % 4],
            "ai.model.risk": ["none", "none", "suspicious", "dangerous"][i % 4],
            "ai.model.origin": ["store", "user", "package", "user"][i % 4],
            "ai.model.parameters": 8_030_261_248 * (1 + i % 9),
            "ai.model.unsafe_reasons": [],
        }
        for i in range(60)
    ]
    processes = [
        {
            **common,
            "event.dataset": "shadowai.inference_process",
            "event.action": "snapshot",
            "process.executable": "/usr/local/bin/ollama",
            "process.command_line": "ollama serve",
            "ai.runtime.name": ["ollama", "vllm", "llama.cpp"][i % 3],
            "ai.runtime.version": ["0.16.3", "0.12.0", "b8200"][i % 3],
            "ai.listen.exposed": i % 5 == 0,
            "ai.gpu.memory_bytes": (i % 4) * 2**32,
            "host.os.type": "linux",
        }
        for i in range(30)
    ]
    health = [
        {
            **common,
            "event.dataset": "shadowai.agent_health",
            "event.action": "snapshot",
            "agent.health.dropped_events": i % 2,
            "agent.health.spool_level": "ok",
        }
        for i in range(10)
    ]
    return [*models, *processes, *health]


def _per_call(work: Callable[[], object], calls: int) -> float:
    """Median seconds per call over ROUNDS rounds."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work()
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def evaluate_cost(ruleset: RuleSet, events: Sequence[Event], repeat: int) -> float:
    today = datetime.now(UTC).date()

    enriched = [{**event, **ruleset.enrich(event)} for event in events]

    def work() -> None:
        for _ in range(repeat):
            for event in enriched:
                ruleset.evaluate(event, today=today)

    return _per_call(work, repeat * len(events))


def brute_force_cost(ruleset: RuleSet, events: Sequence[Event], repeat: int) -> float:
    """Every rule of the event's dataset tried: the engine before the index."""

    def work() -> None:
        for _ in range(repeat):
            for event in events:
                [rule.id for rule in ruleset.rules if rule.matches(event)]

    return _per_call(work, repeat * len(events))


def verify_cost(count: int) -> float:
    key = Ed25519PrivateKey.generate()
    sealed = envelope.seal(b"x" * 500, key, key_id="k")  # a ~500-byte event payload
    public = key.public_key()

    def work() -> None:
        for _ in range(count):
            envelope.verify(sealed, public)

    return _per_call(work, count)


def reload_cost(count: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in generated_rules(count):
            Path(tmp, name).write_text(text, encoding="utf-8")
        start = time.perf_counter()
        ruleset = load_rule_dir(Path(tmp))
        elapsed = time.perf_counter() - start
    assert len(ruleset.rules) == count
    return elapsed


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run() -> Iterator[str]:
    _one_core()
    events = sample_events()
    pack = load_rule_dir(PACK)
    bigger = parse_rules(
        [(str(p), p.read_text(encoding="utf-8")) for p in sorted(PACK.glob("*.yml"))]
        + generated_rules(200),
        {p.stem: () for p in (PACK / "lists").glob("*.yml")},
        pack.advisories,
    )
    verify = verify_cost(2000)
    base = evaluate_cost(pack, events, 30)
    more = evaluate_cost(bigger, events, 30)
    flat_base = brute_force_cost(pack, events, 10)
    flat_more = brute_force_cost(bigger, events, 10)
    reload = reload_cost(500)
    count = len(pack.rules) + len(pack.correlations)
    yield f"rules: Ed25519 verify per event: {verify * 1e6:.1f} us ({1 / verify:,.0f}/s)"
    yield (
        f"rules: default pack ({count} rules): {base * 1e6:.1f} us/event "
        f"({1 / base:,.0f} events/s), {base / verify:.2f}x verify"
    )
    yield (
        f"rules: pack + 200 generated ({len(bigger.rules)} rules): {more * 1e6:.1f} us/event "
        f"({1 / more:,.0f} events/s), {more / base:.2f}x the pack (target <= 3x), "
        f"{more / verify:.2f}x verify"
    )
    yield (
        f"rules: without the index (every rule of the dataset tried): pack {flat_base * 1e6:.1f} "
        f"us, pack + 200 {flat_more * 1e6:.1f} us/event ({flat_more / flat_base:.1f}x)"
    )
    yield f"rules: loading 500 rules: {reload * 1000:.0f} ms ({reload / 500 * 1000:.2f} ms/rule)"


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
