"""The bounded 7z reader: files come out in archive order from archives py7zr writes (LZMA,
LZMA2, copy, BCJ chains); anything else parses or raises FormatError, never crashes or hangs."""

from __future__ import annotations

import contextlib
import io
import lzma
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import sevenzip
from agent.errors import FormatError

py7zr = pytest.importorskip("py7zr")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = {"a.txt": b"alpha " * 30, "b.bin": bytes(range(256)), "c.txt": b"c"}


def archive(filters: list[dict[str, int]] | None = None) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", **({} if filters is None else {"filters": filters})) as z:
        for name, data in FILES.items():
            z.writestr(data, name)
    return buffer.getvalue()


def files(data: bytes) -> tuple[list[bytes], list[str]]:
    return sevenzip.streams(lambda o, n: data[o : o + n], len(data))


@pytest.mark.parametrize(
    "filters",
    [
        None,
        [{"id": lzma.FILTER_LZMA1}],
        [{"id": lzma.FILTER_LZMA2}],
        [{"id": py7zr.FILTER_COPY}],
        [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}],
    ],
    ids=["default", "lzma", "lzma2", "copy", "bcj"],
)
def test_every_file_comes_out_in_order(filters: list[dict[str, int]] | None) -> None:
    assert files(archive(filters)) == (list(FILES.values()), [])


def test_a_coder_we_do_not_unpack_is_named_not_guessed() -> None:
    data = archive([{"id": py7zr.FILTER_ZSTD}])

    assert files(data) == ([], ["7z folder 0: coder chain or filter not unpacked"])


def test_a_header_outside_the_file_is_refused() -> None:
    data = bytearray(archive())
    data[12:20] = struct.pack("<Q", 1 << 40)

    with pytest.raises(FormatError, match="outside the file"):
        files(bytes(data))


# Written once: py7zr stamps the time, and hypothesis needs the same bytes on every run.
SAMPLES = [archive(), archive([{"id": lzma.FILTER_LZMA1}])]


@FUZZ
@given(st.data())
def test_mutated_archives_parse_or_raise_format_error(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(SAMPLES)))
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        files(bytes(raw))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_the_signature_parse_or_raise_format_error(rest: bytes) -> None:
    with contextlib.suppress(FormatError):
        files(sevenzip.MAGIC + rest)
