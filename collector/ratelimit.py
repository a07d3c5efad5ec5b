"""Pure token buckets keyed by source address: allow a call, or say how long to wait."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Buckets:
    """`burst` calls at once, refilled at `per_second`; at most `max_keys` addresses kept."""

    per_second: float
    burst: float
    max_keys: int = 10_000
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str, now: float) -> float:
        """0.0 if allowed (a token is spent); otherwise the seconds until one is available."""
        tokens, at = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.per_second)
        if tokens >= 1.0:
            self._remember(key, (tokens - 1.0, now))
            return 0.0
        self._remember(key, (tokens, now))
        return (1.0 - tokens) / self.per_second

    def _remember(self, key: str, value: tuple[float, float]) -> None:
        if key not in self._state and len(self._state) >= self.max_keys:
            # Forget the address seen longest ago: a full bucket is what it would have anyway.
            oldest = min(self._state, key=lambda k: self._state[k][1])
            del self._state[oldest]
        self._state[key] = value


def peer_host(peer: str) -> str:
    """gRPC's peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5", "unix:...") without the port."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _port = rest.rpartition(":")
        return host.strip("[]") or rest
    return peer
