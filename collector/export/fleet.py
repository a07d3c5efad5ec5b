"""The ML-BOM of what the store holds, for the command line and the API alike."""

from __future__ import annotations

from datetime import datetime

from collector import __version__
from collector.errors import CollectorError
from collector.export.cyclonedx import build_fleet_bom
from collector.store import Store


class UnknownHost(CollectorError):
    """A BOM asked for a host the store has never heard of (not an empty BOM)."""


def fleet_bom(store: Store, *, host: str | None, now: datetime) -> str:
    """CycloneDX 1.6 JSON of the fleet, or of `host` alone."""
    if host is not None and host not in {h.get("host.name") for h in store.list_hosts()}:
        raise UnknownHost(f"no host {host!r} in the inventory")
    return build_fleet_bom(store.list_models(), now=now, tool_version=__version__, host_name=host)
