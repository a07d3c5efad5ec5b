"""The agent's settings: parse `agent.toml` (pure, every problem with file:line and key) and
load it from disk (thin). The collector address is not here; it lives in enrollment.json."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from agent.errors import AgentError

CONFIG_FILE = "agent.toml"
MAX_CONFIG_BYTES = 1 << 20
MAX_LIST_ITEMS = 1000


class ConfigError(AgentError):
    """A configuration file that cannot be used; `problems` lists each "file:line: key: why"."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Settings:
    """What the daemon scans, how often, and what it may spend doing so."""

    roots: tuple[Path, ...] = ()  # empty: this OS's model stores
    watch_roots: tuple[Path, ...] = ()  # empty: the roots; whole home folders are not watched
    include_default_roots: bool = False  # with roots given, the OS's stores as well
    excludes: tuple[str, ...] = ()
    interval: float = 300.0  # seconds between full passes
    snapshot_interval: float = 6 * 3600.0
    hash_bytes_per_second: int | None = None  # None: unthrottled
    defer_hash: bool = False  # report new files at once, hash them in the background
    hash_cache_entries: int = 200_000
    watch: bool = True
    settle_seconds: float = 1.0  # a changed file must hold still this long before it is read
    spool_max_bytes: int = 256 * 2**20
    processes: bool = True  # look for inference processes
    # 15 s, not 5: a process scan is most of the idle cost (0.72% of a core at 5 s, 0.45% at
    # 15 s, measured by bench.service); a server is reported within 15 s of its start.
    process_interval: float = 15.0  # seconds between process scans
    health_interval: float = 60.0  # seconds between agent_health events
    users: bool = True  # every local user's stores and home folder, when the agent may read them
    homes: bool = True  # with users: the whole home folder, not only the model stores
    watchdog: bool = True  # `run` supervises a worker process
    watchdog_cpu_share: float = 0.10  # of one core, over watchdog_window
    watchdog_window: float = 60.0
    watchdog_memory_bytes: int = 200 * 2**20
    quarantine_seconds: float = 86400.0
    pause_on_battery: bool = True
    pause_busy_percent: float = 90.0  # whole-machine CPU use that pauses scans; 0: never


Convert = Callable[[Any, Path | None], Any]


def _seconds(low: float, high: float) -> Convert:
    def convert(value: Any, home: Path | None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number of seconds")
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"expected seconds between {low:g} and {high:g}, got {value}")
        return float(value)

    return convert


def _integer(low: int, high: int) -> Convert:
    def convert(value: Any, home: Path | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        if not low <= value <= high:
            raise ValueError(f"expected an integer between {low} and {high}, got {value}")
        return value

    return convert


def _rate(value: Any, home: Path | None) -> int | None:
    rate: int = _integer(0, 1 << 50)(value, home)
    return rate or None  # 0 in the file means "unthrottled"


def _fraction(low: float, high: float) -> Convert:
    def convert(value: Any, home: Path | None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"expected a number between {low:g} and {high:g}, got {value}")
        return float(value)

    return convert


def _megabytes(value: Any, home: Path | None) -> int:
    megabytes: int = _integer(16, 1 << 20)(value, home)
    return megabytes * 2**20


def _boolean(value: Any, home: Path | None) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("expected a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"at most {MAX_LIST_ITEMS} entries")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or "\x00" in item:
            raise ValueError(f"entry {i}: expected a non-empty string")
    return value


def _globs(value: Any, home: Path | None) -> tuple[str, ...]:
    return tuple(_strings(value))


def _roots(value: Any, home: Path | None) -> tuple[Path, ...]:
    roots = []
    for i, item in enumerate(_strings(value)):
        if item == "~" or item.startswith(("~/", "~\\")):
            if home is None:
                raise ValueError(f"entry {i}: {item!r}: no home directory to expand ~ against")
            item = str(home) + item[1:]
        path = Path(item)
        if not path.is_absolute():
            # A service's working directory means nothing; a relative root would be a surprise.
            raise ValueError(f"entry {i}: {item!r}: expected an absolute path or one under ~")
        roots.append(path)
    return tuple(dict.fromkeys(roots))


# (table, key) -> (Settings attribute, converter). Every other key is an error.
_SCHEMA: Mapping[tuple[str, str], tuple[str, Convert]] = {
    ("scan", "roots"): ("roots", _roots),
    ("scan", "default_roots"): ("include_default_roots", _boolean),
    ("scan", "excludes"): ("excludes", _globs),
    ("scan", "interval"): ("interval", _seconds(1, 7 * 86400)),
    ("scan", "snapshot_interval"): ("snapshot_interval", _seconds(60, 30 * 86400)),
    ("hash", "rate_limit"): ("hash_bytes_per_second", _rate),
    ("hash", "defer"): ("defer_hash", _boolean),
    ("hash", "cache_entries"): ("hash_cache_entries", _integer(1, 100_000_000)),
    ("watch", "enabled"): ("watch", _boolean),
    ("watch", "settle"): ("settle_seconds", _seconds(0, 3600)),
    ("spool", "max_bytes"): ("spool_max_bytes", _integer(1 << 16, 1 << 40)),
    ("processes", "enabled"): ("processes", _boolean),
    ("processes", "interval"): ("process_interval", _seconds(1, 3600)),
    ("scan", "users"): ("users", _boolean),
    ("scan", "homes"): ("homes", _boolean),
    ("health", "interval"): ("health_interval", _seconds(5, 86400)),
    ("watchdog", "enabled"): ("watchdog", _boolean),
    ("watchdog", "cpu_share"): ("watchdog_cpu_share", _fraction(0.01, 4.0)),
    ("watchdog", "window"): ("watchdog_window", _seconds(5, 3600)),
    ("watchdog", "memory_mb"): ("watchdog_memory_bytes", _megabytes),
    ("watchdog", "quarantine"): ("quarantine_seconds", _seconds(0, 30 * 86400)),
    ("pause", "on_battery"): ("pause_on_battery", _boolean),
    ("pause", "busy_percent"): ("pause_busy_percent", _fraction(0, 100)),
}
_TABLES = frozenset(table for table, _ in _SCHEMA)
assert {attr for attr, _ in _SCHEMA.values()} <= {f.name for f in fields(Settings)}


def parse_config(text: str, *, source: str, home: Path | None = None) -> Settings:
    """Settings from TOML text; ConfigError naming file:line and key for every problem.

    `home` expands a leading `~` in roots; without it such roots are an error.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}:{_syntax_line(str(exc), text)}: {exc}"]) from None
    lines = _key_lines(text)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for table, body in data.items():
        where = f"{source}:{lines.get((table, ''), 1)}"
        if table not in _TABLES:
            problems.append(
                f"{where}: {table}: unknown table (known: {', '.join(sorted(_TABLES))})"
            )
        elif not isinstance(body, dict):
            problems.append(f"{where}: {table}: expected a table, [{table}]")
        else:
            problems.extend(_parse_table(table, body, values, source, lines, home))
    if problems:
        raise ConfigError(problems)
    return replace(Settings(), **values)


def _parse_table(
    table: str,
    body: Mapping[str, Any],
    values: dict[str, Any],
    source: str,
    lines: Mapping[tuple[str, str], int],
    home: Path | None,
) -> list[str]:
    problems = []
    for key, value in body.items():
        line = lines.get((table, key), lines.get((table, ""), 1))
        entry = _SCHEMA.get((table, key))
        if entry is None:
            known = sorted(k for t, k in _SCHEMA if t == table)
            problems.append(
                f"{source}:{line}: {table}.{key}: unknown key (known: {', '.join(known)})"
            )
            continue
        attr, convert = entry
        try:
            values[attr] = convert(value, home)
        except ValueError as exc:
            problems.append(f"{source}:{line}: {table}.{key}: {exc}")
    return problems


_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_ASSIGN = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*=")
_AT_LINE = re.compile(r"at line (\d+)")


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """Where each (table, key) is written, for messages; ("table", "") is the header's line.

    tomllib reports no positions for values, so this reads the lines itself. It only has to
    be right for files that tomllib accepted.
    """
    found: dict[tuple[str, str], int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            table = header.group(1)
            found.setdefault((table, ""), number)
        elif assign := _ASSIGN.match(line):
            parts = assign.group(1).split(".")
            *prefix, key = [table, *parts] if table else parts
            if not prefix:  # a top-level key names a table written inline
                found.setdefault((key, ""), number)
            else:
                found.setdefault((".".join(prefix), key), number)
    return found


def _syntax_line(message: str, text: str) -> int:
    match = _AT_LINE.search(message)
    if match:
        return int(match.group(1))
    return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))  # "at end of document"


def load_config(path: Path, *, missing_ok: bool = False, home: Path | None = None) -> Settings:
    """Read and parse `path`; a missing file gives the defaults when `missing_ok`."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return Settings()
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 (byte {exc.start})"]) from None
    return parse_config(text, source=str(path), home=home if home is not None else _home())


def _home() -> Path | None:
    try:
        return Path.home()
    except RuntimeError:  # no HOME and no passwd entry: roots under ~ become an error
        return None


def resolve_roots(settings: Settings, default_roots: Sequence[Path]) -> tuple[Path, ...]:
    """The roots to scan: the configured ones, the OS's stores, or both."""
    if not settings.roots:
        return tuple(default_roots)
    if settings.include_default_roots:
        return tuple(dict.fromkeys([*settings.roots, *default_roots]))
    return settings.roots
