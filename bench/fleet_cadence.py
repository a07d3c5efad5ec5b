"""When a simulated agent does what: the real agent's intervals (agent.config.Settings) as a
pure schedule. Times are seconds on any clock the caller chooses; nothing here waits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from agent.config import Settings


class Due(Enum):
    """One thing the agent does when its time comes."""

    MODEL_PASS = "model_pass"  # a full pass that reports changes only
    MODEL_SNAPSHOT = "model_snapshot"  # a full pass that reports every model
    PROCESS_SCAN = "process_scan"  # reports processes that started or stopped
    PROCESS_SNAPSHOT = "process_snapshot"  # reports every running inference process
    HEALTH = "health"


@dataclass(frozen=True)
class Intervals:
    model: float
    snapshot: float
    process: float
    health: float

    @classmethod
    def of(cls, settings: Settings, speedup: float = 1.0) -> Intervals:
        """The agent's defaults, each divided by `speedup`."""
        if speedup <= 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        return cls(
            model=settings.interval / speedup,
            snapshot=settings.snapshot_interval / speedup,
            process=settings.process_interval / speedup,
            health=settings.health_interval / speedup,
        )


@dataclass
class Cadence:
    """What is due next, for one agent that booted (with a full snapshot) at `booted`.

    As in the real agent, each next time counts from when the thing last ran (a late loop
    does not catch up in a burst), and a pass or process scan is a snapshot when the last
    snapshot is `snapshot` seconds old (agent.model_loop, agent.process_loop).
    """

    intervals: Intervals
    next_model: float
    next_process: float
    next_health: float
    model_snapshot_at: float
    process_snapshot_at: float

    @classmethod
    def after_boot(cls, intervals: Intervals, booted: float) -> Cadence:
        return cls(
            intervals=intervals,
            next_model=booted + intervals.model,
            next_process=booted + intervals.process,
            next_health=booted + intervals.health,
            model_snapshot_at=booted,
            process_snapshot_at=booted,
        )

    @classmethod
    def dephased(cls, intervals: Intervals, now: float, rng: random.Random) -> Cadence:
        """An agent that booted long before `now` (its snapshot is done), each loop somewhere
        in its interval: a fleet already up does not beat in step."""
        return cls(
            intervals=intervals,
            next_model=now + rng.uniform(0, intervals.model),
            next_process=now + rng.uniform(0, intervals.process),
            next_health=now + rng.uniform(0, intervals.health),
            model_snapshot_at=now,
            process_snapshot_at=now,
        )

    def next_at(self) -> float:
        return min(self.next_model, self.next_process, self.next_health)

    def due(self, now: float) -> list[Due]:
        """Everything due at `now`, each once; the schedule moves past it."""
        done: list[Due] = []
        step = self.intervals
        if now >= self.next_model:
            if now - self.model_snapshot_at >= step.snapshot:
                done.append(Due.MODEL_SNAPSHOT)
                self.model_snapshot_at = now
            else:
                done.append(Due.MODEL_PASS)
            self.next_model = now + step.model
        if now >= self.next_process:
            if now - self.process_snapshot_at >= step.snapshot:
                done.append(Due.PROCESS_SNAPSHOT)
                self.process_snapshot_at = now
            else:
                done.append(Due.PROCESS_SCAN)
            self.next_process = now + step.process
        if now >= self.next_health:
            done.append(Due.HEALTH)
            self.next_health = now + step.health
        return done
