"""The bounded zip reader: zipfile-written archives listed and read, zip64 handled, bombs and
overlaps refused, every cut and mutation answered with a FormatError at worst."""

from __future__ import annotations

import contextlib
import io
import random
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ReadAt
from agent.detect.formats import ziparchive as za
from agent.detect.formats import zipwalk as zw
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Files = dict[str, bytes]


def make_zip(
    files: Files, method: int = zipfile.ZIP_DEFLATED, *, force_zip64: bool = False
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in files.items():
            with z.open(name, "w", force_zip64=force_zip64) as f:
                f.write(data)
    return buf.getvalue()


def with_zip64_end(data: bytes, count: int) -> bytes:
    """Move the end record's counts into zip64 records, as writers do for huge archives."""
    end = data.rfind(za.EOCD_SIG)
    _, _, _, _, _, size, offset, _ = struct.unpack_from("<4s4H2LH", data, end)
    record = struct.pack(
        "<4sQ2H2L4Q", za.ZIP64_EOCD_SIG, 44, 45, 45, 0, 0, count, count, size, offset
    )
    locator = struct.pack("<4sLQL", za.ZIP64_LOCATOR_SIG, 0, end, 1)
    eocd = struct.pack("<4s4H2LH", za.EOCD_SIG, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:end] + record + locator + eocd


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def listing(data: bytes) -> za.Archive | None:
    return za.read_archive(reader(data), len(data))


def central_offsets(data: bytes) -> list[int]:
    at, found = 0, []
    while (at := data.find(za.CENTRAL_SIG, at)) >= 0:
        found.append(at)
        at += 4
    return found


def patch(data: bytes, at: int, code: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(code, out, at, value)
    return bytes(out)


FILES: Files = {"a.txt": b"hello " * 100, "dir/b.bin": bytes(range(256)) * 4, "empty": b""}


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_lists_and_reads_what_zipfile_wrote(method: int) -> None:
    data = make_zip(FILES, method)

    archive = listing(data)

    assert archive is not None
    assert [m.name for m in archive.members] == list(FILES)
    assert [m.file_size for m in archive.members] == [len(v) for v in FILES.values()]
    for m in archive.members:
        assert za.read_member(reader(data), archive, m, limit=1 << 20) == FILES[m.name]
        assert za.read_member(reader(data), archive, m, limit=5) == FILES[m.name][:5]


def test_zip64_records_and_extra_fields_are_read() -> None:
    data = with_zip64_end(make_zip(FILES, force_zip64=True), len(FILES))

    archive = listing(data)

    assert archive is not None
    a = archive.find("a.txt")
    assert a is not None
    assert za.read_member(reader(data), archive, a, limit=1 << 20) == FILES["a.txt"]


def test_an_archive_appended_to_other_bytes_is_read_at_its_offset() -> None:
    # The offsets inside count from the archive's start, as `cat prefix archive` leaves them.
    prefix = b"\x7fELF" + bytes(5000)
    data = prefix + make_zip(FILES)

    archive = listing(data)

    assert archive is not None
    member = archive.find("dir/b.bin")
    assert member is not None and member.header_offset > len(prefix)
    assert za.read_member(reader(data), archive, member, limit=1 << 20) == FILES["dir/b.bin"]


def test_member_reader_windows_a_stored_member_in_place() -> None:
    data = make_zip({"x": b"0123456789"}, zipfile.ZIP_STORED)
    archive = listing(data)
    assert archive is not None

    read_at, size = za.member_reader(reader(data), archive, archive.members[0], limit=4)

    assert size == 10 and read_at(3, 100) == b"3456789" and read_at(20, 5) == b""


def test_an_empty_archive_has_no_members() -> None:
    data = make_zip({})

    archive = listing(data)

    assert archive is not None and archive.members == ()
    assert za.zip_kind(reader(data), len(data)) is None


def test_a_file_without_an_end_record_is_not_a_zip() -> None:
    assert listing(b"just text, no archive here") is None
    assert listing(make_zip(FILES)[:-1]) is None


def test_every_cut_of_an_archive_is_none_or_an_error() -> None:
    data = make_zip(FILES)
    for cut in range(len(data)):
        with contextlib.suppress(FormatError):
            assert listing(data[:cut]) is None


def test_a_member_claiming_a_bomb_ratio_is_refused() -> None:
    data = make_zip({"bomb": bytes(1024)})
    usize_at = central_offsets(data)[0] + 24

    with pytest.raises(FormatError, match="zip bomb"):
        listing(patch(data, usize_at, "<I", 1 << 30))


def test_a_member_claiming_a_gigabyte_from_a_megabyte_inflates_only_what_is_asked() -> None:
    payload = random.Random(3).randbytes(1 << 20)
    data = make_zip({"big": payload})
    lying = patch(data, central_offsets(data)[0] + 24, "<I", 1 << 30)
    archive = listing(lying)
    assert archive is not None
    member = archive.members[0]

    assert za.read_member(reader(lying), archive, member, limit=4096) == payload[:4096]
    with pytest.raises(FormatError, match="not the 1073741824 it claims"):
        za.read_member(reader(lying), archive, member, limit=1 << 30)


def test_a_highly_compressed_member_is_inflated_up_to_the_limit() -> None:
    data = make_zip({"zeros": bytes(64 << 20)})
    archive = listing(data)
    assert archive is not None

    assert za.read_member(reader(data), archive, archive.members[0], limit=1 << 20) == bytes(
        1 << 20
    )


def test_nested_archives_are_listed_not_opened() -> None:
    inner = make_zip({f"bomb{i}": bytes(1 << 20) for i in range(4)})
    data = make_zip({"inner.zip": inner, "readme.txt": b"hi"})

    archive = listing(data)

    assert archive is not None and [m.name for m in archive.members] == ["inner.zip", "readme.txt"]
    assert za.zip_kind(reader(data), len(data)) is None


def test_overlapping_members_are_refused() -> None:
    # Two directory entries for one local header: the overlapping-file zip bomb's trick.
    data = make_zip({"a": b"x" * 100, "b": b"y" * 100}, zipfile.ZIP_STORED)
    second = central_offsets(data)[1]

    with pytest.raises(FormatError, match="overlaps"):
        listing(patch(data, second + 42, "<I", 0))


def test_a_count_of_two_to_the_32_members_is_refused() -> None:
    data = with_zip64_end(make_zip({"a": b"x"}), 1 << 32)

    with pytest.raises(FormatError, match=r"claims 4294967296 members \(cap 65536\)"):
        listing(data)


def test_a_count_the_directory_cannot_hold_is_refused() -> None:
    data = make_zip({"a": b"x"})
    end = data.rfind(za.EOCD_SIG)

    with pytest.raises(FormatError, match="cannot hold 1000 entries"):
        listing(patch(patch(data, end + 8, "<H", 1000), end + 10, "<H", 1000))


def test_multi_disk_archives_are_refused() -> None:
    data = make_zip({"a": b"x"})
    end = data.rfind(za.EOCD_SIG)

    with pytest.raises(FormatError, match="several disks"):
        listing(patch(data, end + 4, "<H", 1))


@pytest.mark.parametrize("flag", [0x1, 0x20, 0x40])
def test_flag_bits_do_not_hide_a_member_as_torch_reads_it(flag: int) -> None:
    data = make_zip({"a": b"x" * 10})
    flagged = patch(data, central_offsets(data)[0] + 8, "<H", flag)
    archive = listing(flagged)
    assert archive is not None

    assert za.read_member(reader(flagged), archive, archive.members[0], limit=100) == b"x" * 10


def test_members_of_unsupported_methods_are_not_read() -> None:
    bz2 = make_zip({"a": b"x" * 10}, zipfile.ZIP_BZIP2)
    archive = listing(bz2)
    assert archive is not None

    with pytest.raises(FormatError, match="compression method 12"):
        za.read_member(reader(bz2), archive, archive.members[0], limit=100)


@pytest.mark.parametrize(
    ("names", "head", "kind"),
    [
        (["m/data.pkl", "m/data/0", "m/version"], b"", "pytorch"),
        (["m/data.pkl", "m/constants.pkl", "m/code/__torch__/a.py"], b"", "torchscript"),
        (["metadata.json", "config.json", "model.weights.h5"], b"", "keras"),
        (["w.npy", "b.npy"], b"", "npz"),
        (["model.gguf", ".args"], b"\x7fELF", "llamafile"),
        (["[Content_Types].xml", "word/document.xml"], b"", None),
        (["notes.txt"], b"", None),
        (["notes.txt"], b"MZ", None),
    ],
)
def test_archive_kind_follows_the_member_layout(
    names: list[str], head: bytes, kind: str | None
) -> None:
    data = head + make_zip(dict.fromkeys(names, b"{}"))

    assert za.zip_kind(reader(data), len(data)) == kind


def test_first_name_reads_the_first_local_header() -> None:
    data = make_zip({"archive/data.pkl": b"x"})

    assert za.first_name(data[:64]) == "archive/data.pkl"
    assert za.first_name(b"PK\x03\x04") is None
    assert za.is_zip_head(data) and not za.is_executable_head(data)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_list_or_raise_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        listing(b"PK\x03\x04" + data + b"PK\x05\x06" + data[-18:])
    with contextlib.suppress(FormatError):
        listing(data)


@FUZZ
@given(st.data())
def test_mutated_archives_list_and_read_or_raise_format_error(data: st.DataObject) -> None:
    original = bytearray(make_zip(FILES, data.draw(st.sampled_from([0, 8]))))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    mutated = bytes(original)
    with contextlib.suppress(FormatError):
        archive = listing(mutated)
        for m in archive.members if archive is not None else ():
            assert archive is not None
            assert len(za.read_member(reader(mutated), archive, m, limit=1 << 16)) <= 1 << 16


def test_local_headers_find_what_the_central_directory_leaves_out() -> None:
    hidden = make_zip({"hidden.pkl": b"x" * 10})
    hidden = hidden[: hidden.index(za.CENTRAL_SIG)]
    data = hidden + make_zip({"a": b"y" * 5, "b": b"z" * 7})

    view, members = zw.every_member(reader(data), len(data))

    assert [m.name for m in members] == ["hidden.pkl", "a", "b"]
    assert za.read_member(reader(data), view, members[0], limit=100) == b"x" * 10


def test_a_broken_central_directory_leaves_the_local_headers() -> None:
    data = bytearray(make_zip({"a": b"y" * 5, "b": b"z" * 7}))
    data[data.index(za.CENTRAL_SIG)] = ord("X")

    _, members = zw.every_member(reader(bytes(data)), len(data))

    assert [m.name for m in members] == ["a", "b"]


def test_sizes_after_the_data_come_from_the_central_directory() -> None:
    buffer = io.BytesIO()

    class Unseekable(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            return buffer.write(b)

    with zipfile.ZipFile(Unseekable(), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.pkl", b"x" * 100)
        z.writestr("b.pkl", b"y" * 50)
    data = buffer.getvalue()

    view, members = zw.every_member(reader(data), len(data))

    assert all(m.flags & 0x8 for m in members)
    assert [za.read_member(reader(data), view, m, limit=200) for m in members] == [
        b"x" * 100,
        b"y" * 50,
    ]


@FUZZ
@given(st.data())
def test_every_member_of_a_mutated_zip_parses_or_raises_format_error(data: st.DataObject) -> None:
    raw = bytearray(make_zip({"a.pkl": b"\x80\x04N." * 20, "b/data.pkl": b"x" * 40}))
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        view, members = zw.every_member(reader(bytes(raw)), len(raw))
        for m in members:
            with contextlib.suppress(FormatError):
                za.read_member(reader(bytes(raw)), view, m, limit=1 << 16)
