"""identify() asks only the formats whose claim can start with the file's first byte: each
claim in LEADS must refuse every other first byte, and the answer must be the one asking every
format gives."""

from __future__ import annotations

import io
import struct
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from coremltools.proto import Model_pb2  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import GgmlTensor, ggml_file, onnx_model, saved_model

from agent.detect.formats import FORMATS, LEADS, ModelInfo, claimed, identify
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _zip(first_member: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(first_member, b"\x80\x02}q\x00." + bytes(64))
        archive.writestr("other.bin", bytes(64))
    return out.getvalue()


def _npy() -> bytes:
    out = io.BytesIO()
    np.save(out, np.zeros((4, 4), dtype=np.float32))
    return out.getvalue()


def _torch_legacy() -> bytes:
    import torch

    out = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, out, _use_new_zipfile_serialization=False)
    return out.getvalue()


def _coreml() -> bytes:
    model = Model_pb2.Model(specificationVersion=4)
    model.description.metadata.shortDescription = "leads"
    layer = model.neuralNetwork.layers.add()
    layer.name = "dense"
    data: bytes = model.SerializeToString()
    return data


def exemplars(gguf: bytes) -> dict[str, bytes]:
    """A head of every format a LEADS entry covers, most written by the format's own library
    (zips whose claim reads only the first member's name are written by zipfile)."""
    return {
        "gguf": gguf,
        "ggml": ggml_file(b"tjgg", 3, [GgmlTensor("w", (32, 32), 0)]),
        "npy": _npy(),
        "onnx": onnx_model().SerializeToString(),
        "coreml": _coreml(),
        "savedmodel": saved_model([((4, 4), 1)]),
        "pytorch_zip": _zip("archive/data.pkl"),
        "pytorch_legacy": _torch_legacy(),
        "keras": _zip("metadata.json"),
        "npz": _zip("w.npy"),
        "llamafile": b"\x7fELF" + bytes(8192),
        "repacked_zip": _zip("weights/model.bin"),
    }


def every_format(data: bytes) -> ModelInfo | str | None:
    """The answer of asking every format in order, as identify did before leads."""
    head = data[:4096]
    try:
        for claims, parse in FORMATS:
            if claims(head, len(data)):
                info = parse(lambda o, n: data[o : o + n], len(data))
                if info is not None:
                    return info
    except FormatError:
        return "FormatError"
    return None


def led(data: bytes) -> ModelInfo | str | None:
    try:
        return identify(lambda o, n: data[o : o + n], len(data))
    except FormatError:
        return "FormatError"


@pytest.fixture(scope="module")
def heads(gguf_model: Path) -> dict[str, bytes]:
    return exemplars(gguf_model.read_bytes())


def test_each_led_claim_refuses_every_other_first_byte(heads: dict[str, bytes]) -> None:
    for name, data in heads.items():
        for claims, leads in LEADS.items():
            for byte in set(range(256)) - set(leads):
                changed = bytes([byte]) + data[1:]
                assert not claims(changed[:4096], len(changed)), (name, claims, byte)


def test_every_led_claim_accepts_its_exemplar(heads: dict[str, bytes]) -> None:
    claimed = {
        claims for claims in LEADS for data in heads.values() if claims(data[:4096], len(data))
    }
    assert claimed == set(LEADS)


def test_exemplars_get_the_answer_of_every_format(heads: dict[str, bytes]) -> None:
    for name, data in heads.items():
        assert led(data) == every_format(data), name


@FUZZ
@given(st.binary(max_size=2048), st.integers(0, 255))
def test_leads_change_no_answer_on_arbitrary_bytes(rest: bytes, first: int) -> None:
    data = bytes([first]) + rest
    assert led(data) == every_format(data)


@cache
def small_exemplars() -> list[bytes]:
    """The exemplars with an empty GGUF, written once for every fuzz example."""
    return sorted(exemplars(struct.pack("<4sIQQ", b"GGUF", 3, 0, 0)).values())


@FUZZ
@given(st.data())
def test_leads_change_no_answer_on_damaged_real_heads(data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from(small_exemplars())))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    assert led(bytes(blob)) == every_format(bytes(blob))


@FUZZ
@given(st.binary(max_size=6000))
def test_a_head_no_format_claims_is_no_model(data: bytes) -> None:
    if not claimed(data[:4096], len(data)):
        assert led(data) is None


def test_every_exemplar_head_is_claimed(heads: dict[str, bytes]) -> None:
    for name, data in heads.items():
        assert claimed(data[:4096], len(data)), name
