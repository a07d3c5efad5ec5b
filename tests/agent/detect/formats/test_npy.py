"""NumPy .npy headers: files written by numpy (versions 1-3, object and structured arrays), the
files numpy ships for its own tests, and broken or hostile headers."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import outcome, parsed

from agent.detect.formats import ModelInfo
from agent.detect.formats import npy as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIPPED = Path(np.__file__).parent / "lib" / "tests" / "data"


def saved(array: np.ndarray[Any, Any], version: tuple[int, int] | None = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version, allow_pickle=True)
    return out.getvalue()


SYSTEM = f"{os.system.__module__}.system"


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def header_file(header: bytes, data: bytes = b"", version: int = 1) -> bytes:
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header + data


def test_a_float_array_is_a_numpy_file_with_its_element_count() -> None:
    data = saved(np.ones((64, 32), dtype=np.float16))

    info = parsed(reader, data)

    assert info == ModelInfo(
        format="numpy",
        parameters=64 * 32,
        quantization="F16",
        tensor_count=1,
        header_bytes=len(data) - 64 * 32 * 2,
        unsafe=False,
        risk="none",
    )


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (np.float32, "F32"),
        (np.float64, "F64"),
        (np.int8, "I8"),
        (np.uint8, "U8"),
        (np.int64, "I64"),
        (np.bool_, "BOOL"),
        (np.complex64, "C64"),
        (">f4", "F32"),
        ("<U7", None),
        ("M8[ns]", None),
    ],
)
def test_dtype_gives_the_quantization(dtype: Any, name: str | None) -> None:
    info = parsed(reader, saved(np.zeros((3, 5), dtype=dtype)))

    assert (info.quantization, info.parameters, info.unsafe) == (name, 15, False)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_header_version_numpy_writes_is_read(version: tuple[int, int]) -> None:
    info = parsed(reader, saved(np.zeros((2, 3, 4), dtype=np.float32), version))

    assert (info.parameters, info.quantization) == (24, "F32")


def test_an_object_array_of_plain_values_is_judged_by_its_pickle() -> None:
    info = parsed(reader, saved(np.array([1, "two", None, (3.5, b"x")], dtype=object)))

    assert (info.risk, info.unsafe) == ("none", False)
    assert info.unsafe_reasons == ("numpy object array (pickle)",)
    assert info.quantization is None


def test_an_object_array_holding_a_payload_is_dangerous() -> None:
    info = parsed(reader, saved(np.array([1, Shell()], dtype=object)))

    assert (info.risk, info.unsafe) == ("dangerous", True)
    assert info.unsafe_reasons == ("numpy object array (pickle)", f"dangerous import {SYSTEM}")


def test_structured_array_with_an_object_field_is_walked() -> None:
    array = np.zeros(4, dtype=[("weight", "<f4"), ("extra", [("note", "O")])])

    info = parsed(reader, saved(array))

    assert info.risk == "none" and info.unsafe_reasons == ("numpy object array (pickle)",)


def test_structured_array_of_numbers_is_safe() -> None:
    info = parsed(reader, saved(np.zeros(4, dtype=[("w", "<f4"), ("b", "<i8", (2,))])))

    assert (info.unsafe, info.parameters, info.quantization) == (False, 4, None)


def test_files_numpy_ships_are_read() -> None:
    paths = sorted(SHIPPED.glob("*.npy"))
    assert len(paths) >= 5

    for path in paths:
        info = parsed(reader, path.read_bytes())
        assert (info.risk, info.unsafe) == ("none", False), path
        assert bool(info.unsafe_reasons) is ("objarr" in path.name), path


def test_python2_long_integers_in_the_shape_are_read() -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }"

    info = parsed(reader, header_file(header, bytes(16)))

    assert info.parameters == 2


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"{'descr': '<f4', 'fortran_order': False}", "dict of"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), 'x': 1}", "dict of"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "non-negative"),
        (
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,)}",
            "non-negative",
        ),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}", "non-negative"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", "tuple"),
        (b"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "bool"),
        (b"{'descr': 'float', 'fortran_order': False, 'shape': (2,)}", "no dtype"),
        (b"{'descr': 4, 'fortran_order': False, 'shape': (2,)}", "neither"),
        (b"{'descr': [('a',)], 'fortran_order': False, 'shape': (2,)}", "structured"),
        (b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000,)}", "do not fit"),
        (b"__import__('os').system('true')", "literal"),
        (b"(" * 500 + b")" * 500, "literal"),
        (b"{'descr': '\xff'}", "dict of"),
        (b"[" + b"[" * 100 + b"]" * 100 + b"]", "dict of"),
    ],
)
def test_broken_headers_are_refused(header: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        reader.parse(lambda o, n: header_file(header)[o : o + n], len(header_file(header)))


def test_version_3_header_must_be_utf8() -> None:
    data = header_file(b"{'descr': '\xff'}", version=3)

    result = outcome(reader, data)

    assert isinstance(result, FormatError) and "utf8" in result.reason


def test_header_length_past_the_cap_is_refused() -> None:
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{" + bytes(100)

    result = outcome(reader, data)

    assert isinstance(result, FormatError) and "header length" in result.reason


@pytest.mark.parametrize("version", [0, 4, 255])
def test_unknown_version_is_not_claimed(version: int) -> None:
    assert not reader.claims(b"\x93NUMPY" + bytes([version, 0]) + bytes(64), 72)


def test_every_cut_of_a_real_file_is_refused() -> None:
    data = saved(np.ones((4, 4), dtype=np.float32))

    for cut in range(10, len(data)):
        assert isinstance(outcome(reader, data[:cut]), FormatError), cut


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.sampled_from([1, 2, 3]), st.binary(max_size=1024))
def test_bytes_after_the_magic_give_a_model_none_or_format_error(version: int, rest: bytes) -> None:
    outcome(reader, b"\x93NUMPY" + bytes([version, 0]) + rest)


literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.lists(inner, max_size=4),
    max_leaves=16,
)


@FUZZ
@given(literals, literals, st.booleans() | literals, st.binary(max_size=64))
def test_any_header_dict_gives_a_model_none_or_format_error(
    descr: object, shape: object, fortran: object, data: bytes
) -> None:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    outcome(reader, header_file(header, data))
