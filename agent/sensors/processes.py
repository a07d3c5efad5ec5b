"""Scan running processes for inference runtimes: a cheap pass every few seconds, and a deep
look (libraries, mapped and open files, environment, version metadata, probe) only at new or
changed processes. The OS is reached through a ProcessSource; agent.detect decides.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import psutil

from agent.detect.exposure import Exposure, assess, pick_listener, probe_host
from agent.detect.processes import (
    GpuUse,
    ProcessKey,
    ProcessObservation,
    classify_mapped,
    cpu_percent,
    inference_process_fields,
    lifecycle,
    parse_inet_diag,
    parse_maps,
    parse_stat,
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
from agent.sensors.probe import ProbeResult

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
MAX_MAPS = 8 << 20
MAX_FDS = 4096
MAX_SMALL_FILE = 64 << 10
LMSTUDIO_SERVER_CONFIG = (".lmstudio", ".internal", "http-server-config.json")
Prober = Callable[[str, str, int], ProbeResult]  # runtime, loopback host, port
_T = TypeVar("_T")
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _DUMP_REQUEST = 4, 20, 0x301
_TCPF_LISTEN = 1 << 10


@dataclass(frozen=True)
class Brief:
    """What the cheap pass learns of every process, every scan."""

    pid: int
    create_time: float
    name: str
    ppid: int
    vsize: int  # changes when libraries or models are mapped: the trigger for a new look
    rss: int | None = None
    cpu_seconds: float | None = None
    num_threads: int | None = None
    kernel: bool = False


@dataclass(frozen=True)
class Details:
    name: str | None
    exe: str | None
    cmdline: tuple[str, ...]
    username: str | None


class ProcessSource(Protocol):
    """One OS's way to see processes. Methods raise ProcessLookupError for a process that is
    gone and PermissionError for one the agent may not read."""

    def briefs(self) -> dict[int, Brief]: ...

    def details(self, pid: int) -> Details: ...

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(libraries, other mapped files); None where this OS offers no way to list them."""

    def open_files(self, pid: int) -> tuple[str, ...]: ...

    def environ(self, pid: int, names: Collection[str]) -> dict[str, str]: ...

    def listeners(self) -> dict[int, list[tuple[str, int]]]: ...


def _read_small(path: str) -> bytes:
    """One read: enough for /proc/PID/stat, which the kernel renders in a single page."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _read(path: str, limit: int) -> bytes:
    # os-level calls: a scan reads hundreds of tiny /proc files, and file objects cost more
    # than the reads themselves.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = []
        while limit > 0 and (chunk := os.read(fd, min(limit, 1 << 20))):
            chunks.append(chunk)
            limit -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _psutil_call(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except psutil.ZombieProcess as exc:  # exited, not reaped: nothing more to read, yet listed
        raise PermissionError(str(exc)) from None
    except psutil.NoSuchProcess as exc:
        raise ProcessLookupError(str(exc)) from None
    except psutil.AccessDenied as exc:
        raise PermissionError(str(exc)) from None


def _optional(call: Callable[[], _T]) -> _T | None:
    try:
        return _psutil_call(call)
    except PermissionError:
        return None


def _details(pid: int) -> Details:
    proc = _psutil_call(lambda: psutil.Process(pid))
    with proc.oneshot():
        name, exe = _optional(proc.name), _optional(proc.exe)
        cmdline, username = _optional(proc.cmdline), _optional(proc.username)
    return Details(name or None, exe or None, tuple(cmdline or ()), username)


def _listening(connections: Iterable[Any]) -> dict[int, list[tuple[str, int]]]:
    found: dict[int, list[tuple[str, int]]] = {}
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.pid is not None and conn.laddr:
            found.setdefault(conn.pid, []).append((conn.laddr.ip, conn.laddr.port))
    return {pid: sorted(set(items)) for pid, items in found.items()}


class LinuxSource:
    """/proc read directly for the cheap pass and for maps, fds and environment; psutil for
    the details it reads no differently and for sockets."""

    def __init__(self, *, proc: str = "/proc") -> None:
        self._proc = proc
        self._tick = float(os.sysconf("SC_CLK_TCK"))
        self._page = os.sysconf("SC_PAGE_SIZE")
        # Boot time read once, so a process keeps its create time while the clock is adjusted.
        self._boot = psutil.boot_time()
        self._listen_key: frozenset[int] | None = None
        self._listen: dict[int, list[tuple[str, int]]] = {}

    def briefs(self) -> dict[int, Brief]:
        found: dict[int, Brief] = {}
        with os.scandir(self._proc) as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    stat = parse_stat(_read_small(f"{self._proc}/{entry.name}/stat"))
                except OSError:
                    continue
                if stat is not None:
                    found[stat.pid] = Brief(
                        pid=stat.pid,
                        create_time=round(self._boot + stat.start_ticks / self._tick, 2),
                        name=stat.name,
                        ppid=stat.ppid,
                        vsize=stat.vsize,
                        rss=stat.rss_pages * self._page,
                        cpu_seconds=stat.cpu_ticks / self._tick,
                        num_threads=stat.num_threads,
                        kernel=stat.kernel_thread,
                    )
        return found

    def details(self, pid: int) -> Details:
        return _details(pid)

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return parse_maps(_read(f"{self._proc}/{pid}/maps", MAX_MAPS))

    def open_files(self, pid: int) -> tuple[str, ...]:
        folder = f"{self._proc}/{pid}/fd"
        paths = set()
        for fd in os.listdir(folder)[:MAX_FDS]:
            try:
                target = os.readlink(f"{folder}/{fd}")
            except OSError:
                continue
            if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
                paths.add(target.removesuffix(" (deleted)"))
        return tuple(sorted(paths))

    def environ(self, pid: int, names: Collection[str]) -> dict[str, str]:
        data = _read(f"{self._proc}/{pid}/environ", 1 << 20)
        found = {}
        for item in data.split(b"\0"):
            name, sep, value = item.decode("utf-8", "replace").partition("=")
            if sep and name in names:
                found[name] = value
        return found

    def listeners(self) -> dict[int, list[tuple[str, int]]]:
        # psutil walks every process's fds to place sockets; do it only when the set of
        # listening sockets changed, or a process that held one has gone.
        key = self._listening_inodes()
        alive = all(os.path.exists(f"{self._proc}/{pid}") for pid in self._listen)
        if key is None or key != self._listen_key or not alive:
            self._listen = _listening(_psutil_call(lambda: psutil.net_connections(kind="inet")))
            self._listen_key = key
        return self._listen

    def _listening_inodes(self) -> frozenset[int] | None:
        try:
            return _diag_listening(socket.AF_INET) | _diag_listening(socket.AF_INET6)
        except (OSError, ValueError):
            return None  # no sock_diag here: ask psutil every scan


def _diag_listening(family: int) -> frozenset[int]:
    """Inodes of listening TCP sockets through netlink sock_diag: the kernel walks only the
    listening table, where reading /proc/net/tcp walks every connection (40x dearer here)."""
    request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, _TCPF_LISTEN)
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _DUMP_REQUEST, 1, 0)
    inodes: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(1.0)
        sock.sendall(header + request)
        for _ in range(10_000):
            found, done = parse_inet_diag(sock.recv(1 << 16))
            inodes |= found
            if done:
                return frozenset(inodes)
    raise ValueError("sock_diag: the dump did not end")


class PsutilSource:
    """macOS and Windows through psutil. macOS psutil lists no memory maps, so libraries and
    mapped models are unknown there; executables, command lines, open files and sockets remain."""

    def __init__(
        self, *, listen_every: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._listen_every = listen_every
        self._clock = clock
        self._listen_at: float | None = None
        self._listen: dict[int, list[tuple[str, int]]] = {}

    def briefs(self) -> dict[int, Brief]:
        found: dict[int, Brief] = {}
        attrs = ["name", "ppid", "create_time", "memory_info", "cpu_times", "num_threads"]
        for proc in psutil.process_iter(attrs):
            info = proc.info
            memory, cpu = info.get("memory_info"), info.get("cpu_times")
            if info.get("create_time") is None:
                continue
            found[proc.pid] = Brief(
                pid=proc.pid,
                create_time=round(info["create_time"], 2),
                name=info.get("name") or "",
                ppid=info.get("ppid") or 0,
                vsize=memory.vms if memory else 0,
                rss=memory.rss if memory else None,
                cpu_seconds=cpu.user + cpu.system if cpu else None,
                num_threads=info.get("num_threads"),
            )
        return found

    def details(self, pid: int) -> Details:
        return _details(pid)

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        proc = _psutil_call(lambda: psutil.Process(pid))
        if not hasattr(proc, "memory_maps"):
            return None
        return classify_mapped([m.path for m in _psutil_call(proc.memory_maps) if m.path])

    def open_files(self, pid: int) -> tuple[str, ...]:
        proc = _psutil_call(lambda: psutil.Process(pid))
        return tuple(sorted({f.path for f in _psutil_call(proc.open_files)}))

    def environ(self, pid: int, names: Collection[str]) -> dict[str, str]:
        proc = _psutil_call(lambda: psutil.Process(pid))
        return {k: v for k, v in _psutil_call(proc.environ).items() if k in names}

    def listeners(self) -> dict[int, list[tuple[str, int]]]:
        # No cheap change signal here: the whole socket table is asked for every
        # `listen_every` seconds, which keeps it off the steady-state bill.
        now = self._clock()
        if self._listen_at is None or now - self._listen_at >= self._listen_every:
            self._listen = _listening(_psutil_call(lambda: psutil.net_connections(kind="inet")))
            self._listen_at = now
        return self._listen


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

    def fields(self, gpu: GpuUse | None = None) -> dict[str, object]:
        fields = inference_process_fields(
            self.observation, self.match, exposure=self.exposure, gpu=gpu
        )
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
    ) -> None:
        self._source = source
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
        reports = {k: self._report(e, now, stats) for k, e in entries.items() if e.match}
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
            parsed = json.loads(_read(os.path.join(home, *LMSTUDIO_SERVER_CONFIG), MAX_SMALL_FILE))
        except (OSError, ValueError, RecursionError):
            return None
        return parsed if isinstance(parsed, dict) else None

    def _version(self, hint: VersionHint) -> str | None:
        if hint not in self._versions:
            try:
                if hint.kind == "dist-info":
                    found = version_from_dist_info(os.listdir(hint.path), hint.packages)
                else:
                    found = version_from_package_json(_read(hint.path, MAX_SMALL_FILE))
            except OSError:
                found = None
            self._versions[hint] = found
        return self._versions[hint]

    def _report(self, entry: _Entry, now: float, stats: ProcessScanStats) -> ProcessReport:
        assert entry.match is not None  # only matched entries are reported
        obs = entry.obs
        if entry.probed_at is None or now - entry.probed_at >= self._probe_every:
            entry.probe = self._probe(entry.match.name, obs.listeners, stats)
            entry.probed_at = now
        match = entry.match
        if entry.probe is not None:
            match = _with_probe(match, entry.probe)
        exposure = assess(match.name, obs.listeners, obs.cmdline, obs.env, entry.settings)
        return ProcessReport(observation=obs, match=match, exposure=exposure, probe=entry.probe)

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
