"""Legacy llama.cpp files (GGML, GGMF, GGJT v1-v3).

No maintained library writes these any more, so the files are packed by hand in the layout
llama.cpp's pre-GGUF loader read (see p_fixtures.ggml_file).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import GgmlTensor, ggml_file, outcome, parsed

from agent.detect.formats import ModelInfo
from agent.detect.formats import ggml as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GGML, GGMF, GGJT = b"lmgg", b"fmgg", b"tjgg"
F32, F16 = (0, (1, 4)), (1, (1, 2))
Q4_0_V3, Q4_0_OLD, Q4_K = (2, (32, 18)), (2, (32, 20)), (12, (256, 144))


def tensors(weight: tuple[int, tuple[int, int]]) -> list[GgmlTensor]:
    """An embedding and a projection of `weight`'s type, and an F32 norm: 2*64*64 + 64."""
    kind, block = weight
    return [
        GgmlTensor("tok_embeddings.weight", (64, 64), kind, block),
        GgmlTensor("norm.weight", (64,), 0, (1, 4)),
        GgmlTensor("output.weight", (64, 64), kind, block),
    ]


PARAMETERS = 2 * 64 * 64 + 64


def test_reads_a_ggjt_v3_file() -> None:
    data = ggml_file(GGJT, 3, tensors(Q4_0_V3), ftype=2)

    info = parsed(reader, data)

    assert info == ModelInfo(
        format="ggml",
        architecture="llama",
        parameters=PARAMETERS,
        quantization="Q4_0",
        tensor_count=3,
        header_bytes=len(data),
    )


@pytest.mark.parametrize(
    ("magic", "version", "weight", "ftype", "quantization"),
    [
        (GGJT, 1, Q4_0_OLD, 2, "Q4_0"),
        (GGJT, 2, Q4_0_OLD, 2, "Q4_0"),
        (GGJT, 3, Q4_K, 15, "Q4_K_M"),
        (GGMF, 1, F16, 1, "F16"),
        (GGML, None, F32, 0, "F32"),
        (GGML, None, Q4_0_OLD, 2002, "Q4_0"),
    ],
    ids=["ggjt-v1", "ggjt-v2", "ggjt-v3-kquant", "ggmf", "ggml", "quant-version-factor"],
)
def test_each_container_version_is_walked(
    magic: bytes, version: int | None, weight: tuple[int, tuple[int, int]], ftype: int,
    quantization: str,
) -> None:  # fmt: skip
    info = parsed(reader, ggml_file(magic, version, tensors(weight), ftype=ftype))

    assert (info.parameters, info.tensor_count, info.quantization) == (PARAMETERS, 3, quantization)


def test_unknown_file_type_falls_back_to_the_dominant_tensor_type() -> None:
    info = parsed(reader, ggml_file(GGJT, 3, tensors(Q4_0_V3), ftype=77))

    assert info.quantization == "Q4_0"


def test_plain_ggml_of_another_model_is_reported_without_metadata() -> None:
    # ggml's gpt-2 example: six hparams (n_vocab, n_ctx, n_embd, n_head, n_layer, ftype).
    data = b"lmgg" + struct.pack("<6i", 3, 1024, 64, 4, 2, 0)
    data += b"".join(struct.pack("<I", 3) + b"tok" for _ in range(3)) + bytes(40)

    assert outcome(reader, data) == ModelInfo(format="ggml", header_bytes=4)


@pytest.mark.parametrize(
    "data",
    [
        b"lmgg is what a ggml file starts with, said the notes",
        b"tjgg" + struct.pack("<I", 4) + struct.pack("<7i", 3, 64, 256, 4, 2, 16, 2),
        b"fmgg" + struct.pack("<I", 2) + struct.pack("<7i", 3, 64, 256, 4, 2, 16, 2),
        b"tjgg" + struct.pack("<I", 3) + struct.pack("<7i", 0, 64, 256, 4, 2, 16, 2),
        b"tjgg" + struct.pack("<I", 3) + struct.pack("<7i", 3, -64, 256, 4, 2, 16, 2),
        b"GGUF" + bytes(60),
    ],
    ids=["text", "ggjt-v4", "ggmf-v2", "no-vocab", "negative-embd", "gguf"],
)
def test_lookalikes_are_not_claimed(data: bytes) -> None:
    assert not reader.claims(data[:4096], len(data))


def with_tensor(tensor_header: bytes) -> bytes:
    base = ggml_file(GGJT, 3, [])
    return base + tensor_header


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (ggml_file(GGJT, 3, tensors(Q4_0_V3))[:-1], "tensor data runs past"),
        (with_tensor(struct.pack("<iiI", 9, 4, 0)), "9 dims"),
        (with_tensor(struct.pack("<iiI", 1, 1 << 20, 0)), "name"),
        (with_tensor(struct.pack("<iiIi", 1, 1, 0, -4) + b"w"), "not all positive"),
        (with_tensor(struct.pack("<iiIi", 1, 1, 99, 4) + b"w"), "unknown tensor type 99"),
        (with_tensor(struct.pack("<iiIi", 1, 1, 2, 33) + b"w"), "whole blocks"),
        (
            b"tjgg" + struct.pack("<I", 3) + struct.pack("<7i", 3, 64, 256, 4, 2, 16, 2)
            + struct.pack("<I", 1 << 30),
            "token claims",
        ),
    ],
    ids=["cut-data", "dims", "name", "negative-dim", "type", "blocks", "token"],
)  # fmt: skip
def test_broken_files_are_refused(data: bytes, reason: str) -> None:
    result = outcome(reader, data)

    assert isinstance(result, FormatError) and reason in result.reason


def test_every_cut_of_a_ggjt_file_is_refused_or_short_of_tensors() -> None:
    data = ggml_file(GGJT, 3, tensors(Q4_0_V3), ftype=2)

    for cut in range(36, len(data)):
        result = outcome(reader, data[:cut])
        # The format has no tensor count: a cut between two tensors leaves a smaller model.
        cut_between = isinstance(result, ModelInfo) and result.tensor_count < 3
        assert isinstance(result, FormatError) or cut_between, cut


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(
    st.sampled_from([GGML + b"", GGMF + b"\x01\0\0\0", GGJT + b"\x03\0\0\0", GGJT + b"\x01\0\0\0"]),
    st.lists(st.integers(1, 300), min_size=7, max_size=7),
    st.binary(max_size=2048),
)
def test_bytes_after_plausible_hparams_give_a_model_none_or_format_error(
    prefix: bytes, hparams: list[int], rest: bytes
) -> None:
    outcome(reader, prefix + struct.pack("<7i", *hparams) + rest)


@FUZZ
@given(st.data())
def test_damaged_files_give_a_model_none_or_format_error(data: st.DataObject) -> None:
    damaged = bytearray(ggml_file(GGJT, 3, tensors(Q4_0_V3), ftype=2))
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, 200))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))
