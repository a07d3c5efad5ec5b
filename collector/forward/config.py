"""Forwarding configuration: a frozen dataclass parsed (pure) from a plain dict.

The integrator maps command-line flags or a config file section onto the dict; every
problem is reported at once, each with the key it concerns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from collector.errors import CollectorError

# RFC 5424 facility codes by name; local0..local7 are the ones operators pick for an app.
FACILITIES = {"user": 1, "daemon": 3, "auth": 4, "local0": 16, "local1": 17, "local2": 18}
FACILITIES |= {"local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}
KINDS = frozenset({"alerts", "events"})


class ForwardConfigError(CollectorError):
    """The forwarding configuration is invalid; `problems` names each key and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("forwarding configuration: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class HecConfig:
    url: str  # base URL; the collector path /services/collector/event is added
    token: str
    ca_file: Path | None = None
    index: str | None = None
    source: str = "shadowai-collector"
    batch_max_events: int = 500
    batch_max_bytes: int = 1_000_000
    event_max_bytes: int = 65_536
    timeout_s: float = 10.0

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/services/collector/event"


@dataclass(frozen=True)
class SyslogConfig:
    host: str
    port: int
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    format: str = "json"  # "json": the flat event as JSON MSG; "structured": SD-PARAMs
    facility: int = FACILITIES["local0"]
    app_name: str = "shadowai"
    hostname: str = "-"
    message_max_bytes: int = 8192  # RFC 5425 receivers SHOULD take 8192
    batch_max_events: int = 500
    timeout_s: float = 10.0


@dataclass(frozen=True)
class ForwardConfig:
    hec: HecConfig | None = None
    syslog: SyslogConfig | None = None
    kinds: frozenset[str] = KINDS
    queue_max_bytes: int = 256 * 2**20
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0

    @property
    def enabled(self) -> bool:
        return self.hec is not None or self.syslog is not None


class _Reader:
    """Typed look-ups in one section that collect problems instead of raising at the first."""

    def __init__(self, section: Mapping[str, object], prefix: str, problems: list[str]) -> None:
        self.section, self.prefix, self.problems = section, prefix, problems

    def _bad(self, key: str, why: str) -> None:
        self.problems.append(f"{self.prefix}{key}: {why}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.section.get(key, default)
        if value is None:
            if required:
                self._bad(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self._bad(key, f"must be a non-empty string, got {value!r}")
            return default
        return value.strip()

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._bad(key, f"must be a number, got {value!r}")
            return default
        if not low <= value <= high:
            self._bad(key, f"must be between {low:g} and {high:g}, got {value!r}")
            return default
        return float(value)

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self._bad(key, f"must be an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self._bad(key, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        return Path(value) if value else None

    def unknown(self, known: set[str]) -> None:
        for key in sorted(set(self.section) - known, key=str):
            self._bad(str(key), "unknown key")


def _section(raw: Mapping[str, object], key: str, problems: list[str]) -> Mapping[str, object]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{key}: must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _hec(section: Mapping[str, object], problems: list[str]) -> HecConfig | None:
    if not section:
        return None
    r = _Reader(section, "hec.", problems)
    r.unknown({f.name for f in HecConfig.__dataclass_fields__.values()} | {"unsafe_plaintext"})
    url = r.text("url", required=True) or ""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        parts = urlsplit("")
    plaintext_ok = section.get("unsafe_plaintext") is True
    if url and (parts.scheme not in ("https", "http") or not parts.hostname):
        problems.append(f"hec.url: must be an http(s) URL with a host and port, got {url!r}")
    elif parts.scheme == "http" and not plaintext_ok:
        # The token would cross the network in clear; say so rather than allow it quietly.
        problems.append("hec.url: http sends the token in clear; use https or unsafe_plaintext")
    return HecConfig(
        url=url,
        token=r.text("token", required=True) or "",
        ca_file=r.path("ca_file"),
        index=r.text("index"),
        source=r.text("source", "shadowai-collector") or "shadowai-collector",
        batch_max_events=r.integer("batch_max_events", 500, low=1, high=10_000),
        batch_max_bytes=r.integer("batch_max_bytes", 1_000_000, low=4096, high=2**30),
        event_max_bytes=r.integer("event_max_bytes", 65_536, low=1024, high=2**24),
        timeout_s=r.number("timeout_s", 10.0, low=0.1, high=600),
    )


def _syslog(section: Mapping[str, object], problems: list[str]) -> SyslogConfig | None:
    if not section:
        return None
    r = _Reader(section, "syslog.", problems)
    r.unknown({f.name for f in SyslogConfig.__dataclass_fields__.values()} | {"address"})
    host, port = _address(r.text("address", required=True) or "", problems)
    fmt = r.text("format", "json")
    if fmt not in ("json", "structured"):
        problems.append(f"syslog.format: must be json or structured, got {fmt!r}")
    facility = section.get("facility", "local0")
    if not isinstance(facility, str) or facility not in FACILITIES:
        problems.append(f"syslog.facility: must be one of {sorted(FACILITIES)}, got {facility!r}")
    cert, key = r.path("client_cert"), r.path("client_key")
    if (cert is None) != (key is None):
        problems.append("syslog.client_cert and syslog.client_key: give both or neither")
    return SyslogConfig(
        host=host,
        port=port,
        ca_file=r.path("ca_file"),
        client_cert=cert,
        client_key=key,
        format=fmt or "json",
        facility=FACILITIES.get(str(facility), FACILITIES["local0"]),
        app_name=r.text("app_name", "shadowai") or "shadowai",
        hostname=r.text("hostname", "-") or "-",
        message_max_bytes=r.integer("message_max_bytes", 8192, low=2048, high=2**20),
        batch_max_events=r.integer("batch_max_events", 500, low=1, high=10_000),
        timeout_s=r.number("timeout_s", 10.0, low=0.1, high=600),
    )


def _address(text: str, problems: list[str]) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not text:
        return "", 0
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"syslog.address: must be HOST:PORT, got {text!r}")
        return "", 0
    return host, int(port)


def parse_config(raw: Mapping[str, object]) -> ForwardConfig:
    """The forwarding settings in `raw`, or ForwardConfigError listing every problem."""
    problems: list[str] = []
    top = _Reader(raw, "", problems)
    top.unknown({"hec", "syslog", "kinds", "queue_max_bytes", "backoff_base_s", "backoff_cap_s"})
    kinds_raw = raw.get("kinds", sorted(KINDS))
    if (
        not isinstance(kinds_raw, list | tuple)
        or not kinds_raw
        or not all(isinstance(kind, str) and kind in KINDS for kind in kinds_raw)
    ):
        problems.append(f"kinds: must be a non-empty list of {sorted(KINDS)}, got {kinds_raw!r}")
        kinds_raw = sorted(KINDS)
    config = ForwardConfig(
        hec=_hec(_section(raw, "hec", problems), problems),
        syslog=_syslog(_section(raw, "syslog", problems), problems),
        kinds=frozenset(str(k) for k in kinds_raw),
        queue_max_bytes=top.integer("queue_max_bytes", 256 * 2**20, low=2**16, high=2**40),
        backoff_base_s=top.number("backoff_base_s", 0.5, low=0.001, high=60),
        backoff_cap_s=top.number("backoff_cap_s", 60.0, low=0.01, high=3600),
    )
    if problems:
        raise ForwardConfigError(problems)
    return config
