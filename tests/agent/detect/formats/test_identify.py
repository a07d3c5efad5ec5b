"""Identification by content: non-models are None, and no bytes make a parser fail another way.

Also the pure helpers built on it: the header fingerprint and the model_file event fields.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo, identify
from agent.detect.model import FileObservation, fingerprint, model_file_fields
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def identify_checked(data: bytes) -> ModelInfo | None:
    """identify over bytes, asserting it never asks to read more than the file holds."""
    largest = 0

    def read_at(offset: int, length: int) -> bytes:
        nonlocal largest
        largest = max(largest, length)
        return data[offset : offset + length]

    try:
        return identify(read_at, len(data))
    except FormatError:
        return None
    finally:
        assert largest <= len(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"just some notes about llama.cpp and GGUF files\n" * 20,
        json.dumps({"model": "llama", "weights": [1, 2, 3]}).encode(),
        b"\x89PNG\r\n\x1a\n" + bytes(64),
        b"PK\x03\x04" + bytes(64),
        random.Random(1).randbytes(4096),
    ],
    ids=["empty", "text", "json", "png", "zip", "random"],
)
def test_files_that_are_no_model_are_none(data: bytes) -> None:
    assert identify(lambda o, n: data[o : o + n], len(data)) is None


def test_identification_ignores_the_name(gguf_model: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "notes.txt"
    renamed.write_bytes(gguf_model.read_bytes())
    data = renamed.read_bytes()

    info = identify(lambda o, n: data[o : o + n], len(data))

    assert info is not None and info.format == "gguf"


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_parse_or_raise_format_error(data: bytes) -> None:
    identify_checked(data)


@FUZZ
@given(
    st.sampled_from([b"\x01\x00\x00\x00", b"\x02\x00\x00\x00", b"\x03\x00\x00\x00"])
    | st.sampled_from([b"\x00\x00\x00\x01", b"\x00\x00\x00\x02", b"\x00\x00\x00\x03"])
    | st.binary(min_size=4, max_size=4),
    st.binary(max_size=4096),
)
def test_bytes_after_gguf_magic_parse_or_raise_format_error(version: bytes, rest: bytes) -> None:
    identify_checked(b"GGUF" + version + rest)


@FUZZ
@given(st.binary(max_size=2048), st.binary(max_size=256), st.integers(0, 16))
def test_bytes_after_safetensors_prefix_parse_or_raise_format_error(
    body: bytes, data: bytes, slack: int
) -> None:
    header = b"{" + body
    identify_checked(struct.pack("<Q", max(0, len(header) - slack)) + header + data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6), st.binary(max_size=128))
def test_any_json_object_header_parses_or_raises_format_error(
    header: dict[str, object], data: bytes
) -> None:
    encoded = json.dumps(header).encode()
    identify_checked(struct.pack("<Q", len(encoded)) + encoded + data)


@FUZZ
@given(st.data())
def test_damaged_real_files_parse_or_raise_format_error(
    small_gguf: Path, safetensors_model: Path, data: st.DataObject
) -> None:
    original = data.draw(st.sampled_from([small_gguf, safetensors_model])).read_bytes()
    damaged = bytearray(original)
    # Damage lands in the first KiB, where both formats keep their headers.
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, 1023))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    identify_checked(bytes(damaged[:cut]))


def test_fingerprint_covers_size_and_first_mebibyte() -> None:
    head = bytes(range(256)) * 4096 + b"tail"
    expected = hashlib.sha256((5 << 20).to_bytes(8, "little") + head[: 1 << 20]).hexdigest()

    assert fingerprint(head, 5 << 20) == expected
    assert fingerprint(head, 5 << 20) == fingerprint(head[: 1 << 20], 5 << 20)
    assert fingerprint(head, 5 << 20) != fingerprint(head, 6 << 20)


def observation(info: ModelInfo, sha256: str | None) -> FileObservation:
    return FileObservation(
        path="/models/m.gguf",
        size=1234,
        mtime_ns=1,
        device=2,
        inode=3,
        sha256=sha256,
        fingerprint="ab" * 32,
        info=info,
    )


def test_model_file_fields_use_design_names() -> None:
    info = ModelInfo(
        format="gguf",
        name="n",
        architecture="llama",
        parameters=7,
        quantization="Q4_K_M",
        context_length=4096,
        license="mit",
        tensor_count=1,
        header_bytes=100,
    )

    assert model_file_fields(observation(info, "cd" * 32)) == {
        "file.path": "/models/m.gguf",
        "file.size": 1234,
        "file.hash.sha256": "cd" * 32,
        "ai.model.format": "gguf",
        "ai.model.fingerprint": "ab" * 32,
        "ai.model.name": "n",
        "ai.model.architecture": "llama",
        "ai.model.parameters": 7,
        "ai.model.quantization": "Q4_K_M",
        "ai.model.context_length": 4096,
        "ai.model.license": "mit",
        "ai.model.tensor_count": 1,
    }


def test_model_file_fields_leave_out_what_is_unknown() -> None:
    fields = model_file_fields(observation(ModelInfo(format="safetensors"), None))

    assert fields == {
        "file.path": "/models/m.gguf",
        "file.size": 1234,
        "ai.model.format": "safetensors",
        "ai.model.fingerprint": "ab" * 32,
    }
