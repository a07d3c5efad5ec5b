"""Processes on Linux: /proc read directly, and netlink sock_diag to tell when the set of
listening sockets changed."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Collection

import psutil

from agent.detect.processes import parse_inet_diag, parse_maps, parse_stat
from agent.sensors.process_source import Brief, Details
from agent.sensors.psutil_source import listening, process_details, psutil_call

MAX_MAPS = 8 << 20
MAX_FDS = 4096
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _DUMP_REQUEST = 4, 20, 0x301
_TCPF_LISTEN = 1 << 10


def _read_small(path: str) -> bytes:
    """One read: enough for /proc/PID/stat, which the kernel renders in a single page."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def read_limited(path: str, limit: int) -> bytes:
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
        return process_details(pid)

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return parse_maps(read_limited(f"{self._proc}/{pid}/maps", MAX_MAPS))

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
        data = read_limited(f"{self._proc}/{pid}/environ", 1 << 20)
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
            self._listen = listening(psutil_call(lambda: psutil.net_connections(kind="inet")))
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
