"""Scan running processes for inference runtimes: a cheap pass every few seconds, and a deep
look (libraries, mapped and open files, environment, version metadata, probe) only at new or
changed processes. The OS is reached through a ProcessSource; agent.detect decides.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from agent.detect.exposure import Exposure, assess, pick_listener, probe_host
from agent.detect.processes import (
    GpuUse,
    ProcessKey,
    ProcessObservation,
    cpu_percent,
    inference_process_fields,
    lifecycle,
    relook_due,
)
from agent.detect.redact import redact_env
from agent.detect.runtimes import (
    RuntimeMatch,
    VersionHint,
    identify,
    version_from_dist_info,
    version_from_package_json,
    with_version,
)
from agent.errors import AgentError
from agent.sensors import probe as local_probe
from agent.sensors.linux_source import LinuxSource, read_limited
from agent.sensors.probe import ProbeResult
from agent.sensors.process_source import Brief, Details, ProcessSource
from agent.sensors.psutil_source import PsutilSource

__all__ = [
    "ENV_NAMES",
    "LMSTUDIO_SERVER_CONFIG",
    "MAX_SMALL_FILE",
    "Brief",
    "Details",
    "LinuxSource",
    "Prober",
    "ProcessReport",
    "ProcessScanStats",
    "ProcessSensor",
    "ProcessSource",
    "PsutilSource",
    "default_source",
]

# Environment read from identified runtimes only: what decides exposure and devices.
ENV_NAMES = frozenset(
    {
        "OLLAMA_HOST",
        "OLLAMA_ORIGINS",
        "OLLAMA_MODELS",
        "CUDA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "LLAMA_ARG_HOST",
        "LLAMA_ARG_PORT",
        "LLAMA_ARG_MODEL",
        "VLLM_HOST_IP",
    }
)
MAX_SMALL_FILE = 64 << 10
LMSTUDIO_SERVER_CONFIG = (".lmstudio", ".internal", "http-server-config.json")
Prober = Callable[[str, str, int], ProbeResult]  # runtime, loopback host, port


def default_source(os_type: str) -> ProcessSource:
    """The source for an ECS host.os.type: /proc on Linux, psutil elsewhere."""
    return LinuxSource() if os_type == "linux" else PsutilSource()


@dataclass
class ProcessScanStats:
    """One scan's coverage, for the agent-health event."""

    processes: int = 0
    deep_looks: int = 0
    runtimes: int = 0
    permission_denied: int = 0  # processes whose libraries or files could not be read
    listeners_denied: bool = False
    probes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ProcessReport:
    """One inference process: what was seen, what it is, who can reach it, what it said."""

    observation: ProcessObservation
    match: RuntimeMatch
    exposure: Exposure
    probe: ProbeResult | None = None
    score: Score | None = None

    def fields(self, gpu: GpuUse | None = None) -> dict[str, object]:
        fields = inference_process_fields(
            self.observation, self.match, exposure=self.exposure, gpu=gpu
        )
        if self.score is not None:
            fields["ai.classifier.score"] = round(self.score.value, 4)
            if self.score.top_features:
                fields["ai.classifier.top_features"] = list(self.score.top_features)
        vram = self.probe.vram_bytes if self.probe is not None else None
        if vram is not None and "ai.gpu.memory_bytes" not in fields:
            fields["ai.gpu.memory_bytes"] = vram
        return fields


@dataclass
class _Entry:
    brief: Brief
    obs: ProcessObservation
    looked_at: float
    denied: bool = False
    match: RuntimeMatch | None = None
    settings: Mapping[str, object] | None = None
    probe: ProbeResult | None = None
    probed_at: float | None = None
    score: Score | None = None
    scored: ProcessObservation | None = None  # the observation `score` was computed on


log = logging.getLogger(__name__)


class Score(Protocol):
    @property
    def value(self) -> float: ...
    @property
    def top_features(self) -> tuple[str, ...]: ...


class Scorer(Protocol):
    """Scores processes in a batch (agent.classifier.ProcessScorer in production)."""

    @property
    def threshold(self) -> float: ...

    def __call__(
        self, items: Sequence[tuple[ProcessObservation, RuntimeMatch | None]]
    ) -> Sequence[Score]: ...


class ProcessSensor:
    """Keeps the processes seen by (pid, create time) and reports the inference ones.

    Call `poll()` every few seconds from one thread; it returns the lifecycle events.
    """

    def __init__(
        self,
        *,
        source: ProcessSource,
        prober: Prober | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        relook_max: float = 60.0,
        probe_every: float = 60.0,
        known: Mapping[ProcessKey, Mapping[str, object]] | None = None,
        ignore_pids: Collection[int] = (),
        scorer: Scorer | None = None,
    ) -> None:
        self._source = source
        self._scorer = scorer
        self._prober = prober
        self._clock = clock
        self._wall = wall
        self._relook_max = relook_max
        self._probe_every = probe_every
        self._ignore = frozenset(ignore_pids)
        self._entries: dict[ProcessKey, _Entry] = {}
        self._reported: dict[ProcessKey, Mapping[str, object]] = dict(known or {})
        self._versions: dict[VersionHint, str | None] = {}
        self.stats = ProcessScanStats()

    @classmethod
    def for_os(cls, os_type: str, **options: object) -> ProcessSensor:
        """The production sensor: this OS's source, the loopback probe, the agent left out."""
        return cls(
            source=default_source(os_type),
            prober=local_probe.probe,
            ignore_pids=(os.getpid(),),
            **options,  # type: ignore[arg-type]  # keyword options of __init__, checked there
        )

    @property
    def reported(self) -> dict[ProcessKey, Mapping[str, object]]:
        """The fields last reported per process, for the daemon to persist across restarts."""
        return dict(self._reported)

    def poll(
        self, *, snapshot: bool = False, gpu: GpuUse | None = None
    ) -> list[tuple[str, Mapping[str, object]]]:
        """One scan, as (event.action, fields): started, changed, stopped, and with `snapshot`
        every unchanged inference process too."""
        current: dict[ProcessKey, Mapping[str, object]] = {
            key: report.fields(gpu) for key, report in self.scan().items()
        }
        events = lifecycle(self._reported, current, snapshot=snapshot)
        self._reported = current
        return events

    def scan(self) -> dict[ProcessKey, ProcessReport]:
        """The inference processes running now."""
        now = self._clock()
        stats = ProcessScanStats()
        briefs = self._source.briefs()
        listeners = self._listeners(stats)
        names = {pid: brief.name for pid, brief in briefs.items()}
        entries: dict[ProcessKey, _Entry] = {}
        for pid, brief in briefs.items():
            if brief.kernel or pid in self._ignore:
                continue
            key = (pid, brief.create_time)
            try:
                entry = self._refresh(self._entries.get(key), brief, names, now, stats)
                entries[key] = self._listen(entry, tuple(listeners.get(pid, ())))
            except ProcessLookupError:
                continue
            stats.permission_denied += entry.denied
        self._entries = entries
        self._score(entries.values())
        reports = {
            k: self._report(e, now, stats) for k, e in entries.items() if self._reportable(e)
        }
        stats.processes, stats.runtimes = len(entries), len(reports)
        stats.seconds = self._clock() - now
        self.stats = stats
        return reports

    def _listeners(self, stats: ProcessScanStats) -> dict[int, list[tuple[str, int]]]:
        try:
            return self._source.listeners()
        except PermissionError:
            stats.listeners_denied = True
            return {}

    def _refresh(
        self,
        entry: _Entry | None,
        brief: Brief,
        names: Mapping[int, str],
        now: float,
        stats: ProcessScanStats,
    ) -> _Entry:
        if entry is None or entry.brief.name != brief.name:  # new, or it exec'd another program
            stats.deep_looks += 1
            return self._look(brief, names, now)
        changed = brief.vsize != entry.brief.vsize
        due = (
            changed
            and not entry.denied
            and relook_due(
                vsize_changed=changed,
                runtime=entry.match is not None,
                age=max(0.0, self._wall() - brief.create_time),
                since_look=now - entry.looked_at,
                longest=self._relook_max,
            )
        )
        if due:
            stats.deep_looks += 1
            entry = self._relook(entry, now)
        if entry.match is not None:
            entry.obs = _usage(entry.obs, entry.brief, brief, now - entry.looked_at)
        entry.brief = brief
        return entry

    def _look(self, brief: Brief, names: Mapping[int, str], now: float) -> _Entry:
        details = self._source.details(brief.pid)
        obs = ProcessObservation(
            pid=brief.pid,
            create_time=brief.create_time,
            name=details.name or brief.name,
            exe=details.exe,
            cmdline=details.cmdline,
            parent_name=names.get(brief.ppid),
            username=details.username,
            rss=brief.rss,
            num_threads=brief.num_threads,
        )
        return self._relook(_Entry(brief=brief, obs=obs, looked_at=now), now)

    def _relook(self, entry: _Entry, now: float) -> _Entry:
        pid = entry.brief.pid
        try:
            mapped = self._source.mappings(pid)
            opened = self._source.open_files(pid)
        except PermissionError:
            entry.denied, mapped, opened = True, None, ()
        except OSError as exc:  # gone between the listing and this read
            raise ProcessLookupError(pid) from exc
        libraries, files = mapped or ((), ())
        entry.obs = replace(entry.obs, libraries=libraries, mapped_files=files, open_files=opened)
        entry.looked_at = now
        return self._classify(entry)

    def _listen(self, entry: _Entry, listeners: tuple[tuple[str, int], ...]) -> _Entry:
        if listeners != entry.obs.listeners:
            entry.obs = replace(entry.obs, listeners=listeners)
            entry.probed_at = None
            return self._classify(entry)
        return entry

    def _classify(self, entry: _Entry) -> _Entry:
        before = entry.match
        match = identify(entry.obs)
        if match is not None and before is None:
            entry.obs = replace(entry.obs, env=redact_env(self._environ(entry.obs.pid)))
            entry.settings = self._settings(match.name, entry.obs.username)
        if match is not None:
            for hint in match.version_hints:
                match = with_version(match, self._version(hint))
        entry.match = match
        return entry

    def _environ(self, pid: int) -> dict[str, str]:
        try:
            return self._source.environ(pid, ENV_NAMES)
        except OSError:
            return {}

    def _settings(self, runtime: str, username: str | None) -> Mapping[str, object] | None:
        if runtime != "lmstudio" or not username:
            return None
        home = os.path.expanduser("~" + username.rsplit("\\", 1)[-1])
        try:
            parsed = json.loads(
                read_limited(os.path.join(home, *LMSTUDIO_SERVER_CONFIG), MAX_SMALL_FILE)
            )
        except (OSError, ValueError, RecursionError):
            return None
        return parsed if isinstance(parsed, dict) else None

    def _version(self, hint: VersionHint) -> str | None:
        if hint not in self._versions:
            try:
                if hint.kind == "dist-info":
                    found = version_from_dist_info(os.listdir(hint.path), hint.packages)
                else:
                    found = version_from_package_json(read_limited(hint.path, MAX_SMALL_FILE))
            except OSError:
                found = None
            self._versions[hint] = found
        return self._versions[hint]

    def _score(self, entries: Iterable[_Entry]) -> None:
        """Score, in one batch, every process whose observation changed since it was scored."""
        if self._scorer is None:
            return
        stale = [e for e in entries if e.scored is not e.obs]
        if not stale:
            return
        try:
            scores = self._scorer([(e.obs, e.match) for e in stale])
        except Exception:
            # A classifier failure costs the scores, not the process events.
            log.exception("process classifier failed")
            return
        for entry, score in zip(stale, scores, strict=True):
            entry.score, entry.scored = score, entry.obs

    def _reportable(self, entry: _Entry) -> bool:
        if entry.match is not None:
            return True
        threshold = self._scorer.threshold if self._scorer is not None else None
        return threshold is not None and entry.score is not None and entry.score.value >= threshold

    def _report(self, entry: _Entry, now: float, stats: ProcessScanStats) -> ProcessReport:
        if entry.match is None:  # no rule knows it; the classifier vouches for it
            assert entry.score is not None
            entry.match = RuntimeMatch(
                name="unknown", evidence=(f"classifier score {entry.score.value:.2f}",)
            )
        obs = entry.obs
        if entry.probed_at is None or now - entry.probed_at >= self._probe_every:
            entry.probe = self._probe(entry.match.name, obs.listeners, stats)
            entry.probed_at = now
        match = entry.match
        if entry.probe is not None:
            match = _with_probe(match, entry.probe)
        exposure = assess(match.name, obs.listeners, obs.cmdline, obs.env, entry.settings)
        return ProcessReport(
            observation=obs, match=match, exposure=exposure, probe=entry.probe, score=entry.score
        )

    def _probe(
        self, runtime: str, listeners: tuple[tuple[str, int], ...], stats: ProcessScanStats
    ) -> ProbeResult | None:
        if self._prober is None or not listeners:
            return None
        chosen = pick_listener(listeners)
        ordered = [chosen, *listeners] if chosen else list(listeners)
        for address, port in ordered:
            host = probe_host(address)
            if host is not None:
                stats.probes += 1
                try:
                    return self._prober(runtime, host, port)
                except AgentError:
                    return None
        return None


def _with_probe(match: RuntimeMatch, probe: ProbeResult) -> RuntimeMatch:
    paths = [p for p in probe.model_paths if os.path.isabs(p)]
    if paths:
        match = replace(match, models=tuple(sorted({*match.models, *paths})))
    return with_version(match, probe.version)


def _usage(
    obs: ProcessObservation, before: Brief, now: Brief, elapsed: float
) -> ProcessObservation:
    cpu = cpu_percent(before.cpu_seconds, now.cpu_seconds, elapsed)
    return replace(obs, rss=now.rss, num_threads=now.num_threads, cpu_percent=cpu)
