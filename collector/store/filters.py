"""Pure: what each listing can be filtered and sorted by, checked before any SQL runs.

A filter holds values a client typed; each is checked here (no NULs, bounded length, a
digest is 64 hex digits) so that a bad one is a BadListing (HTTP 400), never a database
error. Sort names are the API's; collector.store.listings maps each to its key columns.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from collector.paging import BadListing
from collector.store.inventory import digest_text

MAX_FILTER = 512  # characters; longer is a mistake or an attack, never a host or model name

HOST_SORTS = ("name", "os", "group", "version", "models", "open_alerts", "last_seen")
MODEL_SORTS = (
    "path",
    "name",
    "format",
    "risk",
    "size",
    "parameters",
    "first_seen",
    "agent_id",
)
DIGEST_SORTS = (
    "name",
    "format",
    "kind",
    "risk",
    "license",
    "size",
    "parameters",
    "hosts",
    "files",
    "first_seen",
    "last_seen",
    "sha256",
)
PROCESS_SORTS = (
    "name",
    "pid",
    "runtime",
    "gpu_memory",
    "gpu_utilization",
    "first_seen",
    "last_seen",
    "agent_id",
)
EVENT_SORTS = ("id",)
AGENT_SORTS = ("enrolled_at", "name", "last_seen", "last_seq", "agent_id")
SEARCH_TYPES = ("host", "model", "digest", "path")


@dataclass(frozen=True)
class _Checked:
    """Checks every text field of a filter dataclass after it is built."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, str):
                check_text(spec.name, value)


def check_text(name: str, value: str) -> str:
    """`value` if a store can compare it, else BadListing naming the parameter."""
    if len(value) > MAX_FILTER:
        raise BadListing(name, f"longer than {MAX_FILTER} characters")
    if "\x00" in value:
        raise BadListing(name, "holds a NUL character")
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise BadListing(name, "holds a lone surrogate")
    return value


def check_digest(name: str, value: str) -> str:
    """A SHA-256 as 64 lowercase hex digits, or BadListing."""
    digest = digest_text(value)
    if digest is None:
        raise BadListing(name, "not a SHA-256 (64 hex digits)")
    return digest


@dataclass(frozen=True)
class HostFilter(_Checked):
    q: str = ""  # part of the host name
    group: str = ""
    os: str = ""


@dataclass(frozen=True)
class ModelFilter(_Checked):
    agent_id: str = ""
    host: str = ""  # a host name, exactly
    format: str = ""
    risk: str = ""
    kind: str = ""
    origin: str = ""
    sha256: str = ""
    q: str = ""  # part of the path or the model name
    include_removed: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sha256:
            object.__setattr__(self, "sha256", check_digest("sha256", self.sha256))


@dataclass(frozen=True)
class DigestFilter(_Checked):
    format: str = ""
    kind: str = ""
    risk: str = ""
    license: str = ""
    q: str = ""  # part of the model name, or the start of the digest


@dataclass(frozen=True)
class ProcessFilter(_Checked):
    agent_id: str = ""
    host: str = ""  # a host name, exactly
    runtime: str = ""
    q: str = ""  # part of the process name
    include_stopped: bool = False


@dataclass(frozen=True)
class EventFilter(_Checked):
    dataset: str = ""
    agent_id: str = ""


@dataclass(frozen=True)
class AgentFilter(_Checked):
    q: str = ""  # part of the host name or the agent id
    group: str = ""
    revoked: bool | None = None
