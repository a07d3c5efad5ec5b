"""The daemon between passes: the watcher's news, deferred hashes, the hash cache across a
restart, links reported once, store provenance, and threads that all end on one stop."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from safetensors.numpy import save_file

from agent.catalog import Provenance
from agent.config import Settings
from agent.daemon import Daemon
from agent.detect.stores import HUGGINGFACE, StoreRoot
from agent.hashcache import CACHE_FILE, CachingHasher, HashCache
from agent.model_loop import ModelLoop
from agent.outbox import Outbox
from agent.pipeline import HostFacts
from agent.sensors.files import sha256_file
from agent.sensors.stores import load_store_index
from agent.sensors.watch import Watcher
from agent.spool import Spool
from agent.state import StateFile
from wire.envelope import agent_id_for
from wire.events import flatten_payload
from wire.v1 import events_pb2

DEADLINE = 20.0
KEY = Ed25519PrivateKey.generate()


class CountingHash:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, path: Path, **options: Any) -> str | None:
        self.paths.append(str(path))
        return sha256_file(path, **options)


@dataclass
class Rig:
    daemon: Daemon
    models_loop: ModelLoop
    spool: Spool
    stop: threading.Event
    models: Path
    priority_threads: list[str]
    threads: list[threading.Thread] = field(default_factory=list)
    read: int = 0

    def new_events(self) -> list[dict[str, Any]]:
        """Model file events spooled since the last call, flattened."""
        items = self.spool.pending(limit=10**6, max_bytes=2**40)[self.read :]
        self.read += len(items)
        flat = [
            flatten_payload(
                events_pb2.Payload.FromString(events_pb2.Envelope.FromString(data).payload)
            )
            for _, data in items
        ]
        return [e for e in flat if e["event.dataset"] == "shadowai.model_file"]

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            seen += self.new_events()
            if check(seen):
                return seen
            self.stop.wait(0.05)
        raise AssertionError(f"not within {DEADLINE} s: {[summary(e) for e in seen]}")


def summary(event: dict[str, Any]) -> tuple[str, str, bool]:
    return event["event.action"], Path(event["file.path"]).name, "file.hash.sha256" in event


class Watchers:
    """A watcher factory that keeps the real watchers it builds, to wait until they watch."""

    def __init__(self) -> None:
        self.made: list[Watcher] = []

    def make(self, *args: Any, **kwargs: Any) -> Watcher:
        watcher = Watcher(*args, **kwargs)
        self.made.append(watcher)
        return watcher

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while not self.made and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.made and self.made[0].ready.wait(DEADLINE)


@pytest.fixture
def watchers() -> Watchers:
    return Watchers()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []
    caches: list[HashCache] = []

    def make(threads: bool = False, **options: Any) -> Rig:
        models = tmp_path / "models"
        models.mkdir(exist_ok=True)
        settings_options: dict[str, Any] = {
            "interval": 3600.0,
            "settle_seconds": 0.2,
            "watch": False,
            "health_interval": 3600.0,
        }
        settings_options.update({k: v for k, v in options.items() if k in Settings.__annotations__})
        settings = Settings(roots=(models,), **settings_options)
        stop = threading.Event()
        spool = Spool.open(tmp_path / f"spool{len(made)}.db")
        outbox = Outbox(
            spool=spool, key=KEY, host=HostFacts(agent_id_for(KEY.public_key()), "lap-7", "linux")
        )
        hasher = options.get("hasher")
        if hasher is None:
            cache = HashCache.open(tmp_path / CACHE_FILE)
            caches.append(cache)
            hasher = CachingHasher(cache, stop=stop)
        loop_options = {
            k: v for k, v in options.items() if k in ("stores", "skip", "tasks", "pause")
        }
        loop = ModelLoop(
            settings=settings,
            state=StateFile(tmp_path / "inventory.json"),
            emit=outbox,
            hasher=hasher,
            stop=stop,
            **loop_options,
        )
        lowered: list[str] = []
        daemon = Daemon(
            settings=settings,
            models=loop,
            emit=outbox,
            health=lambda: {"event.dataset": "shadowai.agent_health"},
            stop=stop,
            watcher_factory=options.get("watcher_factory", Watcher),
            lower_priority=lambda: lowered.append(threading.current_thread().name),
            closers=[caches[-1].close] if options.get("hasher") is None else [],
        )
        rig = Rig(daemon, loop, spool, stop, models, lowered)
        made.append(rig)
        if threads:
            rig.threads += daemon.start_sensors()
        return rig

    yield make
    for rig in made:
        rig.stop.set()
        for thread in rig.threads:
            thread.join()
        rig.daemon.close()
        rig.spool.close()


def test_a_model_copied_into_a_root_is_discovered_within_seconds(
    rig: Callable[..., Rig], small_gguf: Path, watchers: Watchers
) -> None:
    live = rig(watch=True, watcher_factory=watchers.make)
    live.models_loop.scan_pass(snapshot=True)  # so the scanner thread waits its interval
    live.threads += live.daemon.start_sensors()
    watchers.wait_ready()
    target = live.models / "dropped.gguf"
    target.write_bytes(small_gguf.read_bytes())
    (event,) = live.wait_for(lambda events: bool(events))
    assert summary(event) == ("discovered", "dropped.gguf", True)
    assert event["file.hash.sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()


def test_deleting_and_moving_models_are_reported(
    rig: Callable[..., Rig], small_gguf: Path, watchers: Watchers
) -> None:
    live = rig(watch=True, watcher_factory=watchers.make)
    (live.models / "a.gguf").write_bytes(small_gguf.read_bytes())
    (live.models / "b.gguf").write_bytes(small_gguf.read_bytes() + b"\0" * 32)
    live.models_loop.scan_pass(snapshot=True)
    assert sorted(summary(e) for e in live.new_events()) == [
        ("discovered", "a.gguf", True),
        ("discovered", "b.gguf", True),
    ]
    live.threads += live.daemon.start_sensors()
    watchers.wait_ready()
    (live.models / "a.gguf").unlink()
    assert [summary(e) for e in live.wait_for(bool)] == [("removed", "a.gguf", True)]
    (live.models / "b.gguf").rename(live.models / "renamed.gguf")
    moved = live.wait_for(lambda events: len(events) >= 2)
    assert sorted(summary(e) for e in moved) == [
        ("discovered", "renamed.gguf", True),
        ("removed", "b.gguf", True),
    ]


def test_deferred_hashing_reports_first_and_hashes_later(
    rig: Callable[..., Rig], small_gguf: Path
) -> None:
    live = rig(defer_hash=True)
    path = live.models / "m.gguf"
    path.write_bytes(small_gguf.read_bytes())
    live.models_loop.scan_pass(snapshot=False)
    assert [summary(e) for e in live.new_events()] == [("discovered", "m.gguf", False)]
    assert live.models_loop.hash_pending() == 1
    (changed,) = live.new_events()
    assert summary(changed) == ("changed", "m.gguf", True)
    assert changed["file.hash.sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    live.models_loop.scan_pass(snapshot=False)
    assert live.new_events() == []  # the next pass finds the digest in the cache


def test_the_background_hasher_thread_fills_in_the_hash(
    rig: Callable[..., Rig], small_gguf: Path, tmp_path: Path
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(small_gguf.read_bytes())
    live = rig(threads=True, defer_hash=True)
    events = live.wait_for(lambda events: len(events) >= 2)
    assert [summary(e) for e in events] == [
        ("discovered", "m.gguf", False),
        ("changed", "m.gguf", True),
    ]
    assert {"hasher", "scanner"} <= set(live.priority_threads)


def test_run_once_style_passes_hash_at_once_even_when_deferral_is_configured(
    rig: Callable[..., Rig], small_gguf: Path
) -> None:
    live = rig(defer_hash=True)
    (live.models / "m.gguf").write_bytes(small_gguf.read_bytes())
    live.models_loop.scan_pass(snapshot=True, defer=False)
    assert [summary(e) for e in live.new_events()] == [("discovered", "m.gguf", True)]


def test_a_restart_without_its_state_file_hashes_nothing_again(
    rig: Callable[..., Rig], small_gguf: Path, tmp_path: Path
) -> None:
    counting = CountingHash()
    cache = HashCache.open(tmp_path / "cache.db")
    first = rig(hasher=CachingHasher(cache, hash_file=counting))
    (first.models / "m.gguf").write_bytes(small_gguf.read_bytes())
    first.models_loop.scan_pass(snapshot=False)
    cache.close()
    (tmp_path / "inventory.json").unlink()

    reopened = HashCache.open(tmp_path / "cache.db")
    again = rig(hasher=CachingHasher(reopened, hash_file=counting))
    again.models_loop.scan_pass(snapshot=False)
    assert [summary(e) for e in again.new_events()] == [("discovered", "m.gguf", True)]
    assert counting.paths == [str(first.models / "m.gguf")]
    reopened.close()


def test_the_default_hasher_keeps_its_cache_in_the_state_dir(
    rig: Callable[..., Rig], small_gguf: Path, tmp_path: Path
) -> None:
    live = rig()
    (live.models / "m.gguf").write_bytes(small_gguf.read_bytes())
    live.models_loop.scan_pass(snapshot=False)
    live.daemon.close()
    cache = HashCache.open(tmp_path / CACHE_FILE)
    assert len(cache) == 1
    cache.close()


def test_hardlinks_and_symlinks_are_reported_once(
    rig: Callable[..., Rig], small_gguf: Path, tmp_path: Path
) -> None:
    live = rig()
    original = live.models / "m.gguf"
    original.write_bytes(small_gguf.read_bytes())
    os.link(original, live.models / "hard.gguf")
    (live.models / "soft.gguf").symlink_to(original)
    live.models_loop.scan_pass(snapshot=False)
    assert len(live.new_events()) == 1
    # The watcher's news about the other names changes nothing either.
    live.models_loop.on_paths([str(live.models / "hard.gguf"), str(live.models / "soft.gguf")])
    live.models_loop.scan_pass(snapshot=False)
    assert live.new_events() == []


def test_a_removed_directory_removes_every_model_under_it(
    rig: Callable[..., Rig], small_gguf: Path
) -> None:
    live = rig()
    folder = live.models / "org" / "repo"
    folder.mkdir(parents=True)
    (folder / "a.gguf").write_bytes(small_gguf.read_bytes())
    (live.models / "keep.gguf").write_bytes(small_gguf.read_bytes() + b"\0")
    live.models_loop.scan_pass(snapshot=False)
    live.new_events()
    (folder / "a.gguf").unlink()
    folder.rmdir()
    live.models_loop.on_paths([str(folder)])
    assert [summary(e) for e in live.new_events()] == [("removed", "a.gguf", True)]


@dataclass(frozen=True)
class FakeProvenance:
    store: str | None
    source: str | None
    name: str | None
    expected_sha256: str | None


class FakeStores:
    def __init__(self, lookup: Callable[[str], Provenance | None]) -> None:
        self.lookup = lookup

    def canonical_path(self, path: str) -> str:
        return path


def test_store_provenance_is_added_and_a_digest_mismatch_is_logged(
    rig: Callable[..., Rig], small_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def lookup(path: str) -> Provenance | None:
        if path.endswith("blob"):
            return FakeProvenance(
                "ollama", "registry.ollama.ai/library/llama3", "llama3:8b", "0" * 64
            )
        return None

    live = rig(stores=lambda: FakeStores(lookup))
    (live.models / "blob").write_bytes(small_gguf.read_bytes())
    (live.models / "plain.gguf").write_bytes(small_gguf.read_bytes() + b"\0")
    with caplog.at_level(logging.WARNING, logger="agent.daemon"):
        live.models_loop.scan_pass(snapshot=False)
    by_name = {Path(e["file.path"]).name: e for e in live.new_events()}
    assert by_name["blob"]["ai.model.store"] == "ollama"
    assert by_name["blob"]["ai.model.source"] == "registry.ollama.ai/library/llama3"
    assert by_name["blob"]["ai.model.name"] == "llama3:8b"
    assert "ai.model.store" not in by_name["plain.gguf"]
    assert any("differs from the ollama store's" in r.getMessage() for r in caplog.records)


def test_every_sensor_thread_ends_on_stop(rig: Callable[..., Rig]) -> None:
    live = rig(watch=True, defer_hash=True)
    threads = live.daemon.start_sensors()
    assert sorted(t.name for t in threads) == ["hasher", "health", "scanner", "watcher"]
    live.stop.set()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert not any(t.is_alive() for t in threads)
    assert sorted(live.priority_threads) == ["hasher", "health", "scanner", "watcher"]


def _shards(folder: Path, count: int) -> list[Path]:
    """A transformers-style sharded safetensors set with its index, written by safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    paths = []
    for i in range(1, count + 1):
        name = f"model-{i:05d}-of-{count:05d}.safetensors"
        save_file({f"layer.{i}.weight": np.ones((8, 8), dtype=np.float16)}, str(folder / name))
        weight_map[f"layer.{i}.weight"] = name
        paths.append(folder / name)
    index = {"metadata": {"total_size": 128 * count}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return paths


def test_a_sharded_set_is_one_model(rig: Callable[..., Rig]) -> None:
    live = rig()
    _shards(live.models / "tiny", 3)
    live.models_loop.scan_pass(snapshot=False)
    (event,) = live.new_events()
    assert event["file.path"] == str(live.models / "tiny" / "model.safetensors.index.json")
    assert event["ai.model.format"] == "safetensors"
    assert event["ai.model.parameters"] == 3 * 64
    assert event["ai.model.file_count"] == 3
    assert "file.hash.sha256" not in event  # a set has no one digest


def test_a_set_is_reported_when_its_last_shard_arrives(rig: Callable[..., Rig]) -> None:
    live = rig()
    shards = _shards(live.models / "tiny", 2)
    held_back = shards[1].read_bytes()
    shards[1].unlink()
    (live.models / "tiny" / "weights.gguf.part").write_bytes(b"GGUF" + b"\0" * 60)
    live.models_loop.scan_pass(snapshot=False)
    assert live.new_events() == []  # an incomplete set and a download in progress
    shards[1].write_bytes(held_back)
    live.models_loop.on_paths([str(shards[1])])
    assert [summary(e) for e in live.new_events()] == [
        ("discovered", "model.safetensors.index.json", False)
    ]
    shards[0].unlink()
    live.models_loop.on_paths([str(shards[0])])
    assert [summary(e) for e in live.new_events()] == [
        ("removed", "model.safetensors.index.json", False)
    ]


def test_a_hugging_face_blob_is_reported_by_its_snapshot_and_repository(
    rig: Callable[..., Rig], small_gguf: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = tmp_path / "models" / "hub"
    repo = hub / "models--org--tiny-llama"
    data = small_gguf.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    revision = "1" * 40
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / digest).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / "tiny.gguf").symlink_to(f"../../blobs/{digest}")
    roots = [StoreRoot(hub, HUGGINGFACE)]
    live = rig(stores=lambda: load_store_index(roots))
    with caplog.at_level(logging.WARNING, logger="agent.daemon"):
        live.models_loop.scan_pass(snapshot=False)
    (event,) = live.new_events()
    assert event["file.path"] == str(repo / "snapshots" / revision / "tiny.gguf")
    assert event["file.hash.sha256"] == digest
    assert event["ai.model.store"] == "huggingface"
    assert event["ai.model.source"] == f"hf:org/tiny-llama@{revision}"
    assert not [r for r in caplog.records if "differs" in r.getMessage()]


class OverflowingWatcher:
    """A watcher that reports an overflow once, as the real one does when too much changed."""

    def __init__(
        self, roots: Any, *, on_overflow: Callable[[], None], stop: threading.Event, **_: Any
    ) -> None:
        self._on_overflow = on_overflow
        self._stop = stop

    def run(self) -> None:
        self._on_overflow()
        self._stop.wait()


def test_a_watcher_overflow_brings_the_next_pass_forward(
    rig: Callable[..., Rig], small_gguf: Path
) -> None:
    live = rig(watch=True, watcher_factory=OverflowingWatcher)
    live.models_loop.scan_pass(snapshot=True)  # the scanner thread would now wait an hour
    (live.models / "missed.gguf").write_bytes(small_gguf.read_bytes())
    live.new_events()
    live.threads += live.daemon.start_sensors()
    (event,) = live.wait_for(bool)
    assert summary(event) == ("discovered", "missed.gguf", True)


class RecordingTasks:
    def __init__(self) -> None:
        self.log: list[str] = []

    def set(self, task: str) -> None:
        self.log.append(task)

    def clear(self) -> None:
        self.log.append("-")


def test_a_quarantined_file_is_skipped_and_each_file_is_named_before_it_is_read(
    rig: Callable[..., Rig], small_gguf: Path
) -> None:
    tasks = RecordingTasks()
    pauses: list[int] = []
    live = rig(
        tasks=tasks,
        pause=lambda: pauses.append(1),
        skip=lambda: [str(live_models / "evil[1].gguf")],
    )
    live_models = live.models
    (live.models / "evil[1].gguf").write_bytes(small_gguf.read_bytes())
    (live.models / "good.gguf").write_bytes(small_gguf.read_bytes() + b"\0")
    live.models_loop.scan_pass(snapshot=False)
    assert [summary(e) for e in live.new_events()] == [("discovered", "good.gguf", True)]
    good = f"file:{live.models / 'good.gguf'}"
    assert tasks.log.count(good) == 2  # read, then hashed
    assert tasks.log[-1] == "-"  # nothing is blamed once the pass is over
    assert not any("evil" in task for task in tasks.log)
    assert len(pauses) == 2


def test_a_requested_snapshot_reports_every_model_again(
    rig: Callable[..., Rig], small_gguf: Path
) -> None:
    live = rig()
    (live.models / "m.gguf").write_bytes(small_gguf.read_bytes())
    live.models_loop.scan_pass()
    live.new_events()
    live.models_loop.scan_pass()
    assert live.new_events() == []  # nothing changed, and the snapshot is hours away
    live.daemon.request_snapshot()
    assert live.models_loop.rescan.is_set()  # the scanner thread stops waiting
    live.models_loop.scan_pass()
    assert [summary(e) for e in live.new_events()] == [("snapshot", "m.gguf", True)]


class BrokenWatcher:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def run(self) -> None:
        raise RuntimeError("inotify went away")


def test_a_thread_that_fails_stops_the_daemon_with_an_error(rig: Callable[..., Rig]) -> None:
    live = rig(watch=True, watcher_factory=BrokenWatcher)
    assert live.daemon.run(lambda: True) is False
    assert live.daemon.failed == "watcher"
