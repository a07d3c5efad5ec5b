"""Known-evil pickles rewritten the ways evasions rewrite them (opcode variants, memo
indirection, computed STACK_GLOBAL names, REDUCE through getattr, copyreg, functools and operator
chains, padding, wrappers and containers) must stay `dangerous`; plain data must stay unreported."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_payloads import call, dumps, seen, stack_global, unicode, value, whole, zipped

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TARGETS = [
    ("os", "system"), ("posix", "system"), ("nt", "system"), ("subprocess", "Popen"),
    ("subprocess", "check_output"), ("builtins", "eval"), ("builtins", "exec"),
    ("__builtin__", "eval"), ("runpy", "run_path"), ("socket", "create_connection"),
    ("requests", "get"), ("aiohttp", "request"), ("httplib", "HTTPConnection"),
    ("sys", "exit"), ("webbrowser", "open"), ("pty", "spawn"),
]  # fmt: skip


def line_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str, how: int) -> bytes:
    """A string pushed by one of the opcodes that can carry it."""
    raw = s.encode()
    return [
        unicode(s),
        b"X" + struct.pack("<I", len(raw)) + raw,
        b"V" + raw + b"\n",
        b"S'" + raw + b"'\n",
        b"U" + bytes([len(raw)]) + raw,
        b"T" + struct.pack("<i", len(raw)) + raw,
        b"\x8d" + struct.pack("<Q", len(raw)) + raw,
    ][how]


def importer(module: str, name: str, how: int, memo: int) -> bytes:
    """Opcodes pushing module.name: GLOBAL, or STACK_GLOBAL of strings (through the memo)."""
    if how == 7:
        return line_global(module, name)
    pushed = text(module, how) + text(name, how)
    if memo == 0:
        return pushed + b"\x93"
    if memo == 1:  # both strings memoised, popped, then fetched back
        return text(module, how) + b"\x94" + text(name, how) + b"\x94" + b"00h\x00h\x01\x93"
    return (
        text(module, how)
        + b"q\x07"
        + b"0"
        + text(name, how)
        + b"r\x08\x00\x00\x00"
        + b"0"
        + (b"h\x07j\x08\x00\x00\x00\x93")
    )


def invocation(target: bytes, arg: str, how: int) -> bytes:
    """Call the callable pushed by `target` with one string: REDUCE, OBJ, NEWOBJ, NEWOBJ_EX."""
    if how == 0:
        return target + unicode(arg) + b"\x85R"
    if how == 1:
        return b"(" + target + unicode(arg) + b"o"
    if how == 2:
        return target + unicode(arg) + b"\x85\x81"
    return target + unicode(arg) + b"\x85}\x92"


@st.composite
def evil(draw: st.DrawFn) -> bytes:
    module, name = draw(st.sampled_from(TARGETS))
    target = importer(module, name, draw(st.integers(0, 7)), draw(st.integers(0, 2)))
    body = invocation(target, "id", draw(st.integers(0, 3)))
    padding = draw(st.sampled_from([b"", b"N0" * draw(st.integers(1, 50)), b"}(K\x01K\x02u0"]))
    framed = draw(st.booleans())
    head = b"\x80" + bytes([draw(st.integers(2, 5))])
    opcodes = padding + body + b"."
    if framed:
        opcodes = b"\x95" + struct.pack("<Q", len(opcodes)) + opcodes
    return head + opcodes


def gadget(draw: st.DrawFn, module: str, name: str) -> bytes:
    """Reach module.name through a chain instead of importing it by its own name."""
    kind = draw(st.integers(0, 5))
    if kind == 0:  # getattr(__import__(module), name)(...)
        mod = call("builtins", "__import__", module)
        got = stack_global("builtins", "getattr") + b"(" + mod + unicode(name) + b"tR"
        return whole(got + value(("id",)) + b"R")
    if kind == 1:  # operator.attrgetter(name)(importlib.import_module(module))(...)
        mod = call("importlib", "import_module", module)
        getter = call("operator", "attrgetter", name) + b"(" + mod + b"tR"
        return whole(getter + value(("id",)) + b"R")
    if kind == 2:  # functools.partial(module.name, "id")()
        part = stack_global("functools", "partial") + b"(" + stack_global(module, name)
        return whole(part + unicode("id") + b"tR)R")
    if kind == 3:  # copyreg._reconstructor(module.name, object, None)
        rec = stack_global("copyreg", "_reconstructor") + b"("
        return whole(rec + stack_global(module, name) + stack_global("builtins", "object") + b"NtR")
    if kind == 4:  # computed name: STACK_GLOBAL of a module name built by a call
        computed = call("builtins", "str", module)
        return whole(computed + unicode(name) + b"\x93" + value(("id",)) + b"R")
    # operator.methodcaller(name, "id")(pydoc.locate(module))
    located = call("pydoc", "locate", module)
    return whole(call("operator", "methodcaller", name, "id") + b"(" + located + b"tR")


@st.composite
def chained(draw: st.DrawFn) -> bytes:
    module, name = draw(st.sampled_from(TARGETS))
    return gadget(draw, module, name)


def dangerous(data: bytes) -> None:
    info = seen(data)
    assert info is not None, "not reported"
    assert (info.risk, info.unsafe) == ("dangerous", True), info.unsafe_reasons


@FUZZ
@given(evil())
def test_opcode_variants_and_memo_indirection_stay_dangerous(data: bytes) -> None:
    dangerous(data)


@FUZZ
@given(chained())
def test_gadget_chains_stay_dangerous(data: bytes) -> None:
    dangerous(data)


@FUZZ
@given(evil(), st.sampled_from(["gzip", "bz2", "xz", "lzma", "zip", "stored", "junk", "tail"]))
def test_wrappers_keep_the_verdict(data: bytes, wrapper: str) -> None:
    dangerous(wrap(data, wrapper))


def wrap(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "bz2":
        return bz2.compress(data)
    if how == "xz":
        return lzma.compress(data)
    if how == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    if how == "zip":
        return zipped({"notes.txt": data})
    if how == "stored":
        return zipped({"a/data.pkl": data}, zipfile.ZIP_STORED)
    if how == "junk":
        return b"\x00\x01GARBAGE\xff\xfe" * 3 + data
    return data + b"\x00trailing garbage\xff" * 10


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("protocol", range(6))
def test_several_pickles_in_a_row_are_all_read(protocol: int) -> None:
    dangerous(dumps({"a": 1}, protocol) + dumps([1, 2], protocol) + dumps(Shell(), protocol))


@pytest.mark.parametrize("protocol", range(6))
def test_a_plain_data_pickle_stays_unreported_in_every_wrapper(protocol: int) -> None:
    data = dumps({"a": [1, 2.5, "x"], "b": (None, True, b"raw")}, protocol)
    for how in ("gzip", "bz2", "xz", "zip", "tail"):
        assert seen(wrap(data, how)) is None, how


def test_a_zip_with_a_data_descriptor_and_a_doctored_directory_is_read() -> None:
    archive = bytearray(zipped({"archive/data.pkl": dumps(Shell(), 2)}))
    central = archive.index(b"PK\x01\x02")
    archive[central + 46 : central + 46 + 16] = b"archive/safe.txt"  # the directory lies
    dangerous(bytes(archive))


def test_a_duplicate_member_name_hides_nothing() -> None:
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as z:
        warnings.simplefilter("ignore")
        z.writestr("archive/data.pkl", dumps(Shell(), 2))
        z.writestr("archive/data.pkl", dumps({"w": 1}, 2))
    dangerous(buffer.getvalue())


def test_an_npz_member_is_judged_by_what_its_pickle_imports(tmp_path: Any) -> None:
    plain, evil_path = tmp_path / "plain.npz", tmp_path / "evil.npz"
    np.savez(plain, a=np.array([1, "x", None], dtype=object), b=np.ones(3))
    np.savez(evil_path, a=np.array([Shell()], dtype=object))

    plain_info = seen(plain.read_bytes())
    assert plain_info is not None and plain_info.risk == "none"
    dangerous(evil_path.read_bytes())


def test_a_protocol_0_pickle_after_binary_junk_is_found() -> None:
    dangerous(b"\x00\x00\xff" * 8 + pickle.dumps(Shell(), protocol=0))


@pytest.mark.parametrize(
    "filters",
    [None, [{"id": lzma.FILTER_LZMA1}], [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}]],
    ids=["default", "lzma", "bcj-lzma2"],
)
def test_a_pickle_in_a_7z_archive_is_read(filters: list[dict[str, int]] | None) -> None:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", **({} if filters is None else {"filters": filters})) as z:
        z.writestr(b"readme " * 20, "readme.txt")
        z.writestr(dumps(Shell(), 4), "model.bin")
    dangerous(buffer.getvalue())


def test_a_7z_archive_of_plain_files_is_not_a_model() -> None:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as z:
        z.writestr(b"readme " * 20, "readme.txt")
        z.writestr(dumps({"a": 1}, 4), "data.pkl")
    assert seen(buffer.getvalue()) is None


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_pickle_inside_a_tar_is_found_after_its_header(mode: str) -> None:
    import tarfile

    payload = dumps(Shell(), 4)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        entry = tarfile.TarInfo("model.pkl")
        entry.size = len(payload)
        tar.addfile(entry, io.BytesIO(payload))
    dangerous(buffer.getvalue())
