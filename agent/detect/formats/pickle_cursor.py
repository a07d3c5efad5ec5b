"""The pickle walk's forward reader: bounded buffered reads over [start, end), and the Budget
signal a capped walk stops on."""

from __future__ import annotations

import struct

from agent.detect.formats import ReadAt
from agent.errors import FormatError

MAX_LINE = 1 << 16
_CHUNK = 64 << 10
STRUCTS = {code: struct.Struct(code) for code in ("B", "<H", "<i", "<I", "<Q", ">d")}


class Budget(Exception):
    """A cap was reached: the walk stops and says so instead of failing."""


class Cursor:
    """A forward reader over [start, end) that refills a bounded buffer."""

    def __init__(
        self, read_at: ReadAt, start: int, end: int, fmt: str, *, capped: bool, buf: bytes = b""
    ) -> None:
        """`buf`: the bytes read_at gives from `start` on, when the caller holds them."""
        self.read_at, self.end, self.fmt, self.capped = read_at, end, fmt, capped
        self.pos = start
        self.buf, self.buf_at = buf[: max(0, end - start)], start

    def error(self, at: int, reason: str) -> FormatError:
        return FormatError(self.fmt, at, reason)

    def _past_end(self, n: int, what: str) -> None:
        if self.capped:
            raise Budget(f"{what} runs past the {self.end} bytes that are scanned")
        raise self.error(self.pos, f"{what} needs {n} bytes but the data ends at {self.end}")

    def _short(self, n: int, what: str) -> FormatError:
        return self.error(self.pos, f"{what} needs {n} bytes but the data ends early")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            self._past_end(n, what)
        start = self.pos - self.buf_at
        if start < 0 or start + n > len(self.buf):
            self.buf = self.read_at(self.pos, min(max(n, _CHUNK), self.end - self.pos))
            self.buf_at, start = self.pos, 0
            if len(self.buf) < n:
                raise self._short(n, what)
        self.pos += n
        return self.buf[start : start + n]

    def refill(self, at: int) -> bool:
        """Buffer the next chunk from `at`; False when there is none (the data ends there, or
        the reader gives nothing), which take and byte then report."""
        if at >= self.end:
            return False
        buf = self.read_at(at, min(_CHUNK, self.end - at))
        if not buf:
            return False
        self.buf, self.buf_at = buf, at
        return True

    def skip(self, n: int, what: str) -> None:
        if self.pos + n > self.end:
            self._past_end(n, what)
        self.pos += n

    def byte(self, what: str) -> int:
        at = self.pos - self.buf_at
        if 0 <= at < len(self.buf):
            # The buffer never reaches past `end`, so a byte in it is a byte of the pickle.
            self.pos += 1
            return self.buf[at]
        return self.take(1, what)[0]

    def unpack(self, code: str, what: str) -> int:
        layout = STRUCTS[code]
        value: int = layout.unpack(self.take(layout.size, what))[0]
        return value

    def line(self, what: str) -> bytes:
        """The bytes up to the next newline, which is consumed; at most MAX_LINE of them."""
        start = self.pos - self.buf_at
        at = self.buf.find(b"\n", start, start + MAX_LINE + 1) if start >= 0 else -1
        if at < 0:
            want = min(MAX_LINE + 1, self.end - self.pos)
            self.buf, self.buf_at, start = self.read_at(self.pos, want), self.pos, 0
            at = self.buf.find(b"\n")
            if at < 0 and len(self.buf) < want:
                raise self._short(len(self.buf) + 1, what)
            if at < 0 and want <= MAX_LINE:
                self._past_end(want + 1, what)
            if at < 0:
                raise self.error(self.pos, f"{what} is longer than {MAX_LINE} bytes")
        self.pos += at - start + 1
        return self.buf[start:at]
