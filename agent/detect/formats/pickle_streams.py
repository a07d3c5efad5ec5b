"""Compressed pickles as loaders open them (gzip, zlib, bz2, xz and lzma, joblib's old "ZF"
files): what a head is compressed with, and a forward-only bounded reader over the stream."""

from __future__ import annotations

import bz2
import lzma
import re
import zlib
from typing import Protocol

from agent.detect.formats import ReadAt
from agent.errors import FormatError

FORMAT = "pickle"
GZIP, ZLIB, BZ2, XZ, LZMA = "gzip", "zlib", "bz2", "xz", "lzma"
_CHUNK = 64 << 10
# joblib before 0.10 wrote "ZF", the length in hex padded with spaces, then a zlib stream.
_ZFILE_HEADER = re.compile(rb"ZF0x[0-9a-fA-F]{1,17}L? {0,20}")
# An lzma-alone header (joblib's "lzma" compression): properties 0x5d, as every writer uses,
# then a dictionary size of at least 64 KiB, whose low two bytes are zero.
_LZMA_ALONE = b"\x5d\x00\x00"
_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)

Stream = tuple[str, int]


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


def compression(head: bytes) -> Stream | None:
    """(kind, where the compressed stream starts) for the wrappers loaders accept."""
    if head[:3] == b"\x1f\x8b\x08":
        return GZIP, 0
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return BZ2, 0
    if head[:6] == b"\xfd7zXZ\x00":
        return XZ, 0
    zfile = _ZFILE_HEADER.match(head)
    start = zfile.end() if zfile else 0
    pair = head[start : start + 2]
    if len(pair) == 2 and pair[0] == 0x78 and (pair[0] << 8 | pair[1]) % 31 == 0:
        return ZLIB, start
    if head[:3] == _LZMA_ALONE:
        return LZMA, 0
    return None


def _decompressor(kind: str) -> _Decompressor:
    if kind == GZIP:
        return zlib.decompressobj(31)
    if kind == ZLIB:
        return zlib.decompressobj(15)
    if kind == BZ2:
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == XZ else lzma.FORMAT_ALONE)


def inflate_head(head: bytes, stream: Stream, want: int = 4096) -> tuple[bytes, bool]:
    """The first bytes the head inflates to (b"" when it does not inflate), and whether they
    are all the stream holds (it ended within the head)."""
    kind, start = stream
    inflater = _decompressor(kind)
    try:
        return inflater.decompress(head[start:], want), inflater.eof
    except _ERRORS:
        return b"", False


class Inflated:
    """A forward-only ReadAt over a compressed stream that keeps one window in memory.

    The pickle walk only moves forward, so bytes before the last offset asked for are dropped;
    the caller caps how far it asks.
    """

    def __init__(self, read_at: ReadAt, size: int, stream: Stream) -> None:
        self.read_at, self.size = read_at, size
        kind, self.consumed = stream
        self.zlib = kind in (GZIP, ZLIB)
        self.inflater = _decompressor(kind)
        self.pending = b""
        self.window, self.window_at = b"", 0

    def __call__(self, offset: int, length: int) -> bytes:
        if offset < self.window_at:
            raise FormatError(FORMAT, offset, "compressed pickle read out of order")
        self._drop(offset)
        while len(self.window) < offset - self.window_at + length:
            piece = self._more()
            if not piece:
                break
            self.window += piece
            self._drop(offset)
        start = offset - self.window_at
        return self.window[start : start + length]

    def _drop(self, offset: int) -> None:
        cut = min(offset - self.window_at, len(self.window))
        self.window, self.window_at = self.window[cut:], self.window_at + cut

    def _more(self) -> bytes:
        while not self.inflater.eof:
            buffered = not self.zlib and not getattr(self.inflater, "needs_input", True)
            if not self.pending and not buffered:
                if self.consumed >= self.size:
                    return b""
                self.pending = self.read_at(self.consumed, min(_CHUNK, self.size - self.consumed))
                if not self.pending:
                    return b""
                self.consumed += len(self.pending)
            try:
                out = self.inflater.decompress(self.pending, _CHUNK)
            except _ERRORS as e:
                raise FormatError(FORMAT, self.consumed, f"compressed pickle: {e}") from None
            # zlib hands back what it did not read; bz2 and lzma keep it inside.
            self.pending = getattr(self.inflater, "unconsumed_tail", b"") if self.zlib else b""
            if out:
                return out
        return b""
