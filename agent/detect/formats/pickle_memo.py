"""What a pickle claim found, kept for the parse that follows it: the walk of a whole pickle,
a head that does not walk as one, and a whole inflated stream, so that none of these is
worked out twice for one file.

Each entry is keyed by the bytes it was made from (and where they sit) and compared by
content. Claims and parses are pure, so an entry changes no answer, and threads that share
these slots cannot mix files up: a stale entry only matches bytes it is right for.
"""

from __future__ import annotations

from agent.detect.formats.pickle_values import PickleScan

_walk: tuple[bytes, int, PickleScan] | None = None
_refused: tuple[bytes, int] | None = None
_stream: tuple[bytes, bytes] | None = None


def keep_walk(head: bytes, at: int, scan: PickleScan) -> None:
    """A complete walk of the pickle that starts `head`, which sits at `at` in its file."""
    global _walk
    _walk = (head, at, scan)


def walked(head: bytes, at: int = 0) -> PickleScan | None:
    walk = _walk
    if walk is None or walk[1] != at or walk[0] != head:
        return None
    return walk[2]


def keep_refusal(head: bytes, size: int) -> None:
    """The head of a file of `size` bytes does not look like a pickle."""
    global _refused
    _refused = (head, size)


def refused(head: bytes, size: int) -> bool:
    refusal = _refused
    return refusal is not None and refusal[1] == size and refusal[0] == head


def keep_stream(head: bytes, data: bytes) -> None:
    """`data`: all that the compressed stream starting `head` inflates to."""
    global _stream
    _stream = (head, data)


def inflated(head: bytes) -> bytes | None:
    stream = _stream
    return stream[1] if stream is not None and stream[0] == head else None


def forget() -> None:
    """Drop every entry, as before the first claim of a scan."""
    global _walk, _refused, _stream
    _walk = _refused = _stream = None
