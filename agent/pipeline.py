"""Observations in, events out: one path shared by `scan` and the daemon.

Canonical paths, fields with store provenance, the ledger's verdict per model, and the
stamp every event carries. Grouping into models is agent.catalog.catalog_models (it lists
folders); the file system is otherwise reached only through the callables a caller passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from agent import __version__
from agent.catalog import Stores, model_fields
from agent.detect.model import FileObservation
from agent.inventory import Known, Ledger, Reported, StatKey

Event = tuple[str, Mapping[str, Any]]  # event.action, fields
Digest = Callable[[Reported, StatKey], str | None]
SameFile = Callable[[str, StatKey], bool]  # does this path still name that inode?


@dataclass(frozen=True)
class HostFacts:
    """What every event says about where it came from."""

    agent_id: str
    host_name: str
    os_type: str
    group: str = ""


def canonical(observations: Sequence[FileObservation], stores: Stores) -> list[FileObservation]:
    """Each observation under the path a store reports it by (a HF snapshot, not its blob)."""
    return [
        replace(obs, path=os.path.normpath(stores.canonical_path(obs.path))) for obs in observations
    ]


def stat_key(obs: FileObservation) -> StatKey:
    return (obs.device, obs.inode, obs.size, obs.mtime_ns)


def describe(model: Reported, digest: str | None, stores: Stores) -> Known:
    """What to report for one model: its stat identity and its model_file fields (store
    provenance, origin, package and owner included, as agent.catalog decides them)."""
    return Known(stat_key(model.primary), model_fields(model, digest, stores))


def record(
    ledger: Ledger, path: str, known: Known, *, snapshot: bool, same_file: SameFile
) -> Event | None:
    """The ledger's verdict on one model; a second name of a file already reported is none."""
    holder = ledger.holder(known.stat_key[:2])
    if holder is not None and holder != path and same_file(holder, known.stat_key):
        ledger.keep(holder)
        return None
    return ledger.record(path, known, snapshot=snapshot)


def removals(ledger: Ledger, scope: Sequence[str] | None, generation: int) -> list[Event]:
    """A `removed` event for every known model under scope that this generation did not see."""
    events = [ledger.record(path, None) for path in ledger.unseen(scope, generation)]
    return [event for event in events if event is not None]


def with_digest(ledger: Ledger, path: str, key: StatKey, digest: str) -> Event | None:
    """A digest computed later: a change of the model's fields, if it is still that file."""
    before = ledger.get(path)
    if before is None or before.stat_key != key:
        return None  # gone or rewritten since; its new version is hashed on its own
    return ledger.record(path, Known(key, {**before.fields, "file.hash.sha256": digest}))


def stamp(fields: Mapping[str, Any], action: str, host: HostFacts, now: float) -> dict[str, Any]:
    """The flat event: the fields plus action, time, agent and host."""
    flat = {k: v for k, v in fields.items() if k != "event.dataset"}
    flat.update(
        {
            "event.dataset": fields.get("event.dataset", "shadowai.model_file"),
            "event.action": action,
            "@timestamp": iso_time(now),
            "agent.version": __version__,
            "host.name": host.host_name,
            "host.os.type": host.os_type,
        }
    )
    if host.group:
        flat["host.group"] = host.group
    if host.agent_id:
        flat["agent.id"] = host.agent_id
    return flat


def iso_time(now: float) -> str:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
