"""NumPy .npz archives written by numpy: element counts from each member's header, object
arrays walked as the pickles they are; headers that lie are refused."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo, ReadAt, npz
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYSTEM = f"{os.system.__module__}.system"


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def parse_bytes(data: bytes) -> ModelInfo | None:
    return npz.parse(reader(data), len(data))


def saved(tmp_path: Path, compressed: bool = False, **arrays: Any) -> bytes:
    path = tmp_path / "arrays.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path.read_bytes()


def npy(array: Any, version: tuple[int, int] = (1, 0)) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), version=version, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
def test_element_counts_and_the_dominant_dtype(tmp_path: Path, compressed: bool) -> None:
    data = saved(
        tmp_path,
        compressed,
        w=np.ones((30, 4), np.float16),
        b=np.ones(5, np.float32),
        step=np.int64(3),
    )

    info = parse_bytes(data)

    assert npz.claims(data[:64], len(data))
    assert info is not None
    assert (info.format, info.parameters, info.quantization) == ("numpy", 126, "F16")
    assert info.tensor_count == 3 and info.unsafe is False


def test_an_object_array_is_unsafe_and_its_pickle_is_walked(tmp_path: Path) -> None:
    data = saved(tmp_path, labels=np.array(["a", None], dtype=object), w=np.ones(3))

    info = parse_bytes(data)

    assert info is not None and info.parameters == 3
    assert info.unsafe_reasons == ("numpy object array in 'labels.npy'",)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_payload_in_an_object_array_is_named(tmp_path: Path, compressed: bool) -> None:
    data = saved(tmp_path, compressed, x=np.array([Shell()], dtype=object))

    info = parse_bytes(data)

    assert info is not None and info.unsafe
    assert info.unsafe_reasons == (
        "numpy object array in 'x.npy'",
        f"dangerous import {SYSTEM}",
    )


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_npy_header_version_is_read(version: tuple[int, int]) -> None:
    raw = npy(np.zeros((2, 3, 4), np.int8), version)

    header = npz.parse_npy_header(raw)

    assert (header.descr, header.shape, header.elements) == ("|i1", (2, 3, 4), 24)
    assert raw[header.data_offset :] == bytes(24)


def test_record_dtypes_with_an_object_field_are_object_arrays() -> None:
    raw = npy(np.zeros(2, dtype=[("name", object), ("value", "<f4")]))

    assert npz.parse_npy_header(raw).is_object


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x93NUMPX\x01\x00", "no .npy magic"),
        (b"\x93NUMPY\x09\x00\x00\x00", ".npy version 9"),
        (b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30), "cut or huge"),
        (b"\x93NUMPY\x01\x00\x08\x00__import", "no Python literal"),
        (b"\x93NUMPY\x01\x00\x04\x00[1] ", "not a dict"),
        (b"\x93NUMPY\x01\x00\x0d\x00{'shape': -1}", "lacks a shape or descr"),
    ],
)
def test_broken_npy_headers_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        npz.parse_npy_header(raw, "x.npy")


def test_deeply_nested_headers_are_refused_not_recursed() -> None:
    text = b"(" * 5000 + b")" * 5000
    raw = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text

    with pytest.raises(FormatError):
        npz.parse_npy_header(raw)


@pytest.mark.parametrize(
    ("descr", "name"),
    [("<f4", "F32"), ("<f2", "F16"), ("|i1", "I8"), ("|u1", "U8"), ("|b1", "BOOL"), ("<U5", None)],
)
def test_dtype_names(descr: str, name: str | None) -> None:
    assert npz.dtype_name(descr) == name


NUMPY_DATA = Path(np.__file__).parent / "lib" / "tests" / "data"


@pytest.mark.parametrize("name", ["py2-objarr.npz", "py3-objarr.npz"])
def test_the_object_array_archives_numpy_ships_are_unsafe(name: str) -> None:
    info = parse_bytes((NUMPY_DATA / name).read_bytes())

    assert info is not None and info.format == "numpy" and info.parameters is None
    assert info.unsafe_reasons[0] == "numpy object array in 'x.npy'"


def test_the_sobol_tables_scipy_ships_are_counted() -> None:
    import scipy  # type: ignore[import-untyped]

    path = Path(scipy.__file__).parent / "stats" / "_sobol_direction_numbers.npz"
    with np.load(path) as arrays:
        expected = sum(arrays[k].size for k in arrays.files)

    info = parse_bytes(path.read_bytes())

    assert info is not None and (info.parameters, info.quantization) == (expected, "I64")


def test_zips_with_other_members_are_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", npy(np.ones(2)))
        z.writestr("readme.txt", "hello")

    assert parse_bytes(path.read_bytes()) is None


def test_every_cut_of_an_archive_is_none_or_an_error(tmp_path: Path) -> None:
    data = saved(tmp_path, w=np.ones((4, 4)), o=np.array([1, "x"], dtype=object))
    for cut in range(len(data)):
        with contextlib.suppress(FormatError):
            assert parse_bytes(data[:cut]) is None


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_headers_parse_or_raise_format_error(data: bytes) -> None:
    for candidate in (data, b"\x93NUMPY\x01\x00" + data, b"\x93NUMPY\x03\x00" + data):
        with contextlib.suppress(FormatError):
            header = npz.parse_npy_header(candidate)
            assert header.data_offset <= len(candidate)


@FUZZ
@given(st.data())
def test_mutated_archives_parse_or_raise_format_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("npz")
    original = bytearray(saved(root, data.draw(st.booleans()), w=np.ones((2, 2), np.float32)))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        parse_bytes(bytes(original))
