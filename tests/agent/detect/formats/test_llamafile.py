"""llamafiles built the way llamafile builds them: a real executable with a zip appended that
stores a GGUF written by the gguf library. No llamafile binary ships on PyPI, so the
executable here is this machine's `true`; the reader only cares that it is one."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo, ReadAt, gguf, llamafile
from agent.errors import FormatError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXECUTABLE = Path(shutil.which("true") or sys.executable)


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def parse_bytes(data: bytes) -> ModelInfo | None:
    return llamafile.parse(reader(data), len(data))


def appended(files: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    """The executable with a zip written after it, offsets counted from the file's start as
    llamafile's zipalign writes them."""
    out = io.BytesIO()
    out.write(EXECUTABLE.read_bytes())
    with zipfile.ZipFile(out, "w", compression=method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def model(make_gguf: Callable[..., Path]) -> bytes:
    return make_gguf("llamafile-inner.gguf", tokens=8).read_bytes()


def test_the_gguf_inside_is_read_in_place(model: bytes) -> None:
    data = appended({"model.gguf": model, ".args": b"-m\nmodel.gguf\n"})

    info = parse_bytes(data)
    plain = gguf.parse(reader(model), len(model))

    assert llamafile.claims(data[:64], len(data))
    assert info is not None and info.format == "llamafile"
    assert (info.name, info.architecture, info.parameters, info.quantization) == (
        plain.name,
        plain.architecture,
        plain.parameters,
        plain.quantization,
    )
    assert info.header_bytes > len(EXECUTABLE.read_bytes()) + plain.header_bytes


def test_a_zip_concatenated_after_the_executable_is_found_too(model: bytes) -> None:
    # `cat true archive.zip` leaves offsets counted from the archive's own start.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("weights/model.gguf", model)
    data = EXECUTABLE.read_bytes() + buf.getvalue()

    info = parse_bytes(data)

    assert info is not None and info.name == "Tiny Llama Test"


def test_a_compressed_gguf_is_refused(model: bytes) -> None:
    data = appended({"model.gguf": model}, zipfile.ZIP_DEFLATED)

    with pytest.raises(FormatError, match="is compressed"):
        parse_bytes(data)


def test_a_gguf_member_that_is_not_gguf_is_refused() -> None:
    data = appended({"model.gguf": b"not a model at all" * 10})

    with pytest.raises(FormatError, match="not a GGUF file"):
        parse_bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        EXECUTABLE.read_bytes(),
        appended({"readme.txt": b"hello"}),
        EXECUTABLE.read_bytes() + b"PK\x05\x06" + bytes(18),
        EXECUTABLE.read_bytes() + b"PK\x05\x06\x01\x00" + bytes(16),
    ],
    ids=["bare", "no-gguf", "empty-zip", "broken-end-record"],
)
def test_executables_without_a_model_are_not_llamafiles(data: bytes) -> None:
    assert parse_bytes(data) is None


def test_non_executables_are_not_claimed(model: bytes) -> None:
    assert not llamafile.claims(model[:64], len(model))
    assert not llamafile.claims(b"PK\x03\x04" + bytes(60), 10_000)


def test_cuts_are_none_or_errors(model: bytes) -> None:
    data = appended({"model.gguf": model})
    for cut in range(len(data) - 2000, len(data)):
        with contextlib.suppress(FormatError):
            assert parse_bytes(data[:cut]) is None


@FUZZ
@given(st.data())
def test_mutated_llamafiles_parse_or_raise_format_error(model: bytes, data: st.DataObject) -> None:
    original = bytearray(appended({"model.gguf": model}))
    start = len(EXECUTABLE.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(start, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        parse_bytes(bytes(original))
