"""Busy samples taken under an outside load must show it: the load program still runs and the
target's CPU rose above its own idle baseline. `load_problem` decides; `under_load` measures.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import psutil

from agent.training.dataset import LoadEvidence, Row

MIN_RISE = 10.0  # CPU percentage points above idle: a shared 2-core machine jitters by a few
RISE_FACTOR = 1.5  # and at least this multiple of idle, for targets that are never quite idle
BASELINE_WINDOWS = 3
BASELINE_SECONDS = 1.0
WARM_UP = 2.0  # seconds for the load to connect before the first busy sample


class LoadError(RuntimeError):
    """The busy samples were not taken under load: the capture is refused."""


def required_cpu(idle: float) -> float:
    """The total CPU a target must show under load, from its idle baseline."""
    return max(idle + MIN_RISE, idle * RISE_FACTOR)


def load_problem(idle: float, busy: Sequence[float], alive: bool) -> str | None:
    """Why busy samples with these CPU totals do not show a load, or None when every one does.
    Every sample must clear the bar, not the mean: each committed row claims to be busy."""
    if not alive:
        return "the load process exited during the capture"
    if not busy:
        return "no busy sample was taken"
    needed = required_cpu(idle)
    low = [round(cpu, 1) for cpu in busy if cpu < needed]
    if low:
        return f"CPU {low} in busy samples is below {needed:.1f}% (idle baseline {idle:.1f}%)"
    return None


def totals_by_sample(rows: Sequence[Row]) -> dict[int, float]:
    """The target's CPU per sample: the sum over its processes of that sample."""
    found: dict[int, float] = {}
    for row in rows:
        cpu = row.observation.cpu_percent or 0.0
        found[row.provenance.sample] = found.get(row.provenance.sample, 0.0) + cpu
    return found


def cpu_total(procs: Sequence[psutil.Process], seconds: float) -> float:
    """Summed CPU percent of these processes over `seconds`; vanished ones count zero."""
    for proc in procs:
        try:
            proc.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(seconds)
    total = 0.0
    for proc in procs:
        try:
            total += proc.cpu_percent(None)
        except psutil.Error:
            continue
    return total


def idle_baseline(list_procs: Callable[[], Sequence[psutil.Process]]) -> float:
    """The highest of a few idle windows: noise raises the bar rather than lowering it."""
    return max(cpu_total(list_procs(), BASELINE_SECONDS) for _ in range(BASELINE_WINDOWS))


def under_load(
    load: subprocess.Popen[bytes],
    idle: float,
    take: Callable[[], list[Row]],
    name: str,
    *,
    warm_up: float = WARM_UP,
) -> list[Row]:
    """Busy rows taken by `take` while `load` runs, each with the evidence; LoadError when the
    load died or the target's CPU did not rise above `idle` in every sample."""
    time.sleep(warm_up)
    if load.poll() is not None:
        raise LoadError(f"{name} exited with {load.returncode} before the busy samples")
    rows = take()
    alive = load.poll() is None
    totals = totals_by_sample(rows)
    problem = load_problem(idle, [totals[k] for k in sorted(totals)], alive)
    if problem is not None:
        raise LoadError(f"{name}: {problem}")
    return [
        replace(
            row,
            provenance=replace(
                row.provenance,
                load=LoadEvidence(
                    command=name,
                    alive=alive,
                    cpu_idle=round(idle, 1),
                    cpu_busy=round(totals[row.provenance.sample], 1),
                ),
            ),
        )
        for row in rows
    ]
