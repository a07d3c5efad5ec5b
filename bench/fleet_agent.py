"""One simulated agent of the fleet bench: its inventory, its signed hash chain, bad envelopes.

No I/O and no clock reads of its own for scheduling: bench.fleet drives these over gRPC and
passes the time. Each agent has its own Ed25519 key, seq and chain, exactly as
`agent/spool.py` builds them (a Payload sealed by wire.envelope).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.fleet_cadence import Due
from wire import envelope
from wire.v1.events_pb2 import (
    AgentHealth,
    Envelope,
    Event,
    InferenceProcess,
    ModelFile,
    Payload,
)

FORMATS = ("gguf", "safetensors", "onnx", "pytorch", "keras")
RUNTIMES = ("ollama", "llama.cpp", "vllm", "lmstudio", "python")
# Which refusal code the collector must give each kind of bad envelope ("replayed": an
# exact resend is acknowledged as a duplicate, a changed one at an old seq is refused).
BAD_CODES = {"forged": "signature", "forked": "fork", "replayed": "replay_mismatch"}


def inventory_size(rng: random.Random) -> int:
    """A few to a few hundred model files: log-uniform, as most laptops hold few."""
    return int(3 * 100 ** rng.random() + 0.5)


NEW_MODEL_PER_PASS = 0.1  # a new model now and then: about one every 50 minutes
PROCESS_CHANGE_PER_SCAN = 0.02  # a runtime starts or stops about once in 12 minutes
MAX_PROCESSES = 6


@dataclass(frozen=True, slots=True)
class Pending:
    envelope: Envelope
    created: float  # the driver's clock when sealed: latency runs from here to the ack
    seq: int
    prev: bytes
    boot: bool = False  # part of the agent's boot snapshot
    steady: bool = False  # sealed after the boot snapshot was acknowledged in full


@dataclass
class SimAgent:
    """One identity: key, chain position, inventory and the envelopes not yet acknowledged."""

    index: int
    rng: random.Random
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    wall: Callable[[], float] = time.time  # for the events' timestamps only
    agent_id: str = ""
    host_name: str = ""
    seq: int = 0
    prev: bytes = b""
    models: int = 0
    running: list[int] = field(default_factory=list)  # inference processes, by number
    pending: list[Pending] = field(default_factory=list)
    acked: list[Pending] = field(default_factory=list)  # a few, for the bad envelopes
    keep: int = 16  # how many acknowledged envelopes `acked` holds (0: no bad envelopes)
    boot_left: int = 0  # boot envelopes not yet acknowledged
    booted: bool = False  # the boot snapshot is acknowledged in full

    def __post_init__(self) -> None:
        self.agent_id = envelope.agent_id_for(self.key.public_key())
        self.host_name = f"sim-{self.index:06d}"
        self.models = inventory_size(self.rng)
        self.running = list(range(self.rng.randint(1, 4)))

    def start_at(self, seq: int, digest: bytes) -> None:
        """Continue the collector's copy of this key's chain (a re-enrolled key)."""
        self.seq, self.prev = seq, digest

    def _event(self, **kwargs: object) -> Event:
        now = int(self.wall() * 1000)
        return Event(timestamp_ms=now, host_name=self.host_name, host_os_type="linux", **kwargs)  # type: ignore[arg-type]

    def model_event(self, n: int, action: str = "discovered") -> Event:
        fmt = FORMATS[(self.index + n) % len(FORMATS)]
        model = ModelFile(
            path=f"/home/u{self.index}/models/m{n}.{fmt}",
            format=fmt,
            size=1_000_000 * (1 + n % 4000),
            sha256=f"{self.index:032x}{n:032x}",
            architecture="llama",
            parameters=7_000_000_000,
        )
        return self._event(action=action, model_file=model)

    def process_event(self, n: int, action: str = "started") -> Event:
        runtime = RUNTIMES[n % len(RUNTIMES)]
        proc = InferenceProcess(
            pid=1000 + n, name=runtime, executable=f"/usr/bin/{runtime}", runtime_name=runtime
        )
        return self._event(action=action, inference_process=proc)

    def health_event(self) -> Event:
        health = AgentHealth(cpu_percent=1.5, rss_bytes=80_000_000, files_scanned=self.models)
        return self._event(action="snapshot", agent_health=health)

    def snapshot(self) -> list[Event]:
        """What a booting agent sends: every model, its processes, one health event."""
        models = [self.model_event(n) for n in range(self.models)]
        return models + [self.process_event(n) for n in self.running] + [self.health_event()]

    def events_for(self, due: Due) -> list[Event]:
        """The events one scheduled pass, scan or health beat reports."""
        if due is Due.MODEL_SNAPSHOT:
            return [self.model_event(n, "snapshot") for n in range(self.models)]
        if due is Due.MODEL_PASS:
            return self._new_model()
        if due is Due.PROCESS_SNAPSHOT:
            return [self.process_event(n, "snapshot") for n in self.running]
        if due is Due.PROCESS_SCAN:
            return self._process_change()
        return [self.health_event()]

    def scan_pass(self) -> list[Event]:
        """A model pass and a health beat together (a cadence-free round for tests)."""
        return self.events_for(Due.MODEL_PASS) + self.events_for(Due.HEALTH)

    def _new_model(self) -> list[Event]:
        if self.rng.random() >= NEW_MODEL_PER_PASS:
            return []
        self.models += 1
        return [self.model_event(self.models - 1)]

    def _process_change(self) -> list[Event]:
        if self.rng.random() >= PROCESS_CHANGE_PER_SCAN:
            return []
        if self.running and (len(self.running) >= MAX_PROCESSES or self.rng.random() < 0.5):
            gone = self.running.pop(self.rng.randrange(len(self.running)))
            return [self.process_event(gone, "stopped")]
        started = max(self.running, default=-1) + 1
        self.running.append(started)
        return [self.process_event(started, "started")]

    def append(self, events: list[Event], now: float | None = None, *, boot: bool = False) -> None:
        """Seal `events` onto the chain at time `now` (the driver's clock; default monotonic)."""
        now = time.monotonic() if now is None else now
        steady = self.booted and not boot
        for event in events:
            prev = self.prev
            env = self._seal(event)
            self.pending.append(Pending(env, now, self.seq, prev, boot, steady))
        if boot:
            self.boot_left += len(events)

    def settle(self, count: int) -> list[Pending]:
        """The first `count` pending envelopes were acknowledged: keep a few for replays."""
        done, self.pending = self.pending[:count], self.pending[count:]
        for item in done[-2:] if self.keep else ():
            if len(self.acked) < self.keep:
                self.acked.append(item)
            else:
                self.acked[self.rng.randrange(self.keep)] = item
        if self.boot_left:
            self.boot_left -= sum(item.boot for item in done)
            self.booted = self.boot_left == 0
        return done

    def _seal(self, event: Event) -> Envelope:
        self.seq += 1
        env = self._seal_detached(event, self.seq, self.prev)
        self.prev = envelope.digest(env)
        return env

    def bad_envelope(self, kind: str) -> Envelope:
        """An envelope the collector must refuse with BAD_CODES[kind]; the chain is untouched."""
        event = self.model_event(10_000 + self.rng.randint(0, 10_000))
        if kind == "forged":  # signed by a key that is not the agent's
            return self._seal_detached(event, self.seq + 1, self.prev, Ed25519PrivateKey.generate())
        if kind == "forked":  # the next seq, signed, but chained to nothing we sent
            return self._seal_detached(event, self.seq + 1, self.rng.randbytes(32))
        old = self.acked[self.rng.randrange(len(self.acked))]
        return self._seal_detached(event, old.seq, old.prev)  # another envelope at an old seq

    def _seal_detached(
        self, event: Event, seq: int, prev: bytes, key: Ed25519PrivateKey | None = None
    ) -> Envelope:
        payload = Payload(
            agent_id=self.agent_id,
            seq=seq,
            prev_digest=prev,
            created_ms=int(self.wall() * 1000),
            event=event,
        )
        signer = key or self.key
        return envelope.seal(payload.SerializeToString(), signer, key_id=self.agent_id)

    def exact_replay(self) -> Envelope | None:
        """A resend of an acknowledged envelope, byte for byte: a duplicate, never stored twice."""
        if not self.acked:
            return None
        return self.acked[self.rng.randrange(len(self.acked))].envelope
