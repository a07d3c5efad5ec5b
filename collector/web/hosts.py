"""The Host header allow-list: a request names a host this collector serves, or is refused.

A DNS-rebinding page reaches a loopback dashboard under the attacker's own name, so the
browser sends that name in `Host`; refusing unknown names keeps such a page out.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from collector.errors import CollectorError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?")
_WILDCARDS = ("", "0.0.0.0", "::")


class BadHost(CollectorError):
    """A Host header (or an --allowed-host) that is not HOST[:PORT]."""


def parse_host(value: str) -> tuple[str, int | None]:
    """(host, port or None) of `HOST[:PORT]` or `[IPv6][:PORT]`; the name lowercased, without
    a trailing dot, an IPv6 address in its short form. BadHost for anything else."""
    if not value or len(value) > 300 or not value.isascii():
        raise BadHost(f"host {value[:80]!r}: empty, too long or not ASCII")
    text = value.lower()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise BadHost(f"host {value[:80]!r}: unclosed [")
        try:
            if "%" in inside:  # a zone id names an interface of the client, never us
                raise ValueError(inside)
            host = str(ipaddress.IPv6Address(inside))
        except ValueError:
            raise BadHost(f"host {value[:80]!r}: not an IPv6 address") from None
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
        host = host.removesuffix(".")
        if not _NAME.fullmatch(host) or ".." in host:
            raise BadHost(f"host {value[:80]!r}: not a host name or address")
    return host, _port(rest, value)


def _port(rest: str, value: str) -> int | None:
    if not rest:
        return None
    digits = rest.removeprefix(":")
    if rest[0] != ":" or not digits.isdigit() or len(digits) > 5 or int(digits) > 65535:
        raise BadHost(f"host {value[:80]!r}: bad port")
    return int(digits)


@dataclass(frozen=True)
class HostAllowList:
    """`served` names come with the served `port` (None: any port); `given` pairs are the
    operator's, a None port there meaning any port, since a proxy in front may use its own."""

    served: frozenset[str]
    port: int | None
    given: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def local(cls, port: int | None = None) -> HostAllowList:
        return cls(frozenset(LOOPBACK_NAMES), port)

    def allows(self, header: str) -> bool:
        """Whether a request with this Host header is for us; False when it does not parse."""
        try:
            host, port = parse_host(header)
        except BadHost:
            return False
        return self.allows_parsed(host, port)

    def allows_parsed(self, host: str, port: int | None) -> bool:
        """The same for a header parse_host already read."""
        if host in self.served and self._served_port(port):
            return True
        return (host, port) in self.given or (host, None) in self.given

    def _served_port(self, port: int | None) -> bool:
        if self.port is None:
            return True
        return port == self.port or (port is None and self.port == 80)


def allowed_hosts(
    bind_host: str, port: int, given: Iterable[str], machine: Iterable[str] = ()
) -> HostAllowList:
    """The bind host and loopback names on `port`, the `machine` names when bound to every
    interface, and the operator's `given` names (NAME or NAME:PORT)."""
    served = set(LOOPBACK_NAMES)
    host = bind_host.strip("[]").lower()
    if host in _WILDCARDS:
        served.update(name.lower().removesuffix(".") for name in machine if name)
    else:
        served.add(parse_host(f"[{host}]" if ":" in host else host)[0])
    return HostAllowList(frozenset(served), port, frozenset(parse_host(g) for g in given))


def machine_names() -> list[str]:
    """This machine's host name and fully qualified name (the OS's answer, may repeat)."""
    return [socket.gethostname(), socket.getfqdn()]
