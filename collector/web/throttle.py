"""Pure: how long a login must wait after failures, per username and per source network.

A few failures are free; then each one doubles the wait, up to a cap, and an hour without
one forgets them. Counting by /64 for IPv6 since one attacker holds a whole /64.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.web.passwords import valid_username


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 5
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=15)
    forget_after: timedelta = timedelta(hours=1)

    def delay(self, failures: int) -> timedelta:
        """The wait after the `failures`th failure in a row."""
        if failures < self.free_failures:
            return timedelta(0)
        doublings = min(failures - self.free_failures, 32)  # 2**32 x 30 s is past any cap
        delay: timedelta = self.base_delay * (2**doublings)
        return min(delay, self.max_delay)

    def wait(self, counts: Mapping[str, tuple[int, datetime]], now: datetime) -> timedelta:
        """How long until a login may be tried, given key -> (failures, last failure)."""
        longest = timedelta(0)
        for failures, last in counts.values():
            if now - last >= self.forget_after:
                continue
            longest = max(longest, last + self.delay(failures) - now)
        return longest


def throttle_keys(username: str, address: str | None) -> tuple[str, str]:
    """The username's key and the source network's key; text that is no username (NUL
    bytes, megabytes) is keyed by its digest, so that it never reaches the store as is."""
    name = username.casefold()
    if not valid_username(name):
        name = "#" + hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]
    return "user:" + name, "addr:" + network(address)


def network(address: str | None) -> str:
    """An IPv4 address as is, an IPv6 address as its /64, anything else as given."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "".join(c for c in address[:64] if c.isascii() and c.isprintable()) or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
