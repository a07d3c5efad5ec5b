"""GGUF headers: GGUFWriter files, hand-built v1/v2 and big-endian files, hostile claims."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import pytest

from agent.detect.formats import ModelInfo, ReadAt, identify
from agent.detect.formats import gguf as reader
from agent.errors import FormatError

# What the conftest writes: token_embd 64x32, output_norm 32, attn_q 32x32, ffn_down 32x64.
GGUF_PARAMETERS = 64 * 32 + 32 + 32 * 32 + 32 * 64


def read_bytes(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def identify_bytes(data: bytes) -> ModelInfo | None:
    return identify(read_bytes(data), len(data))


@dataclass
class Builder:
    """Writes GGUF headers by hand, for the versions and claims GGUFWriter never produces."""

    version: int = 3
    order: str = "<"

    def u32(self, value: int) -> bytes:
        return struct.pack(self.order + "I", value)

    def count(self, value: int) -> bytes:
        return struct.pack(self.order + ("Q" if self.version >= 2 else "I"), value)

    def string(self, text: str) -> bytes:
        raw = text.encode()
        return self.count(len(raw)) + raw

    def kv_string(self, key: str, value: str) -> bytes:
        return self.string(key) + self.u32(8) + self.string(value)

    def kv_u32(self, key: str, value: int) -> bytes:
        return self.string(key) + self.u32(4) + self.u32(value)

    def tensor(self, name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
        encoded = b"".join(self.count(d) for d in dims)
        offset_bytes = struct.pack(self.order + "Q", offset)
        return (
            self.string(name) + self.u32(len(dims)) + encoded + self.u32(ggml_type) + offset_bytes
        )

    def header(self, n_tensors: int, n_kv: int) -> bytes:
        return b"GGUF" + self.u32(self.version) + self.count(n_tensors) + self.count(n_kv)

    def file(self, kvs: list[bytes], tensors: list[bytes], data: bytes = b"") -> bytes:
        body = self.header(len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)
        return body + b"\0" * (-len(body) % 32) + data


def test_reads_the_fields_of_a_gguf_written_by_gguf_writer(gguf_model: Path) -> None:
    info = identify_bytes(gguf_model.read_bytes())

    assert info is not None
    assert replace(info, header_bytes=0) == ModelInfo(
        format="gguf",
        name="Tiny Llama Test",
        architecture="llama",
        parameters=GGUF_PARAMETERS,
        parameters_estimated=True,
        quantization="Q8_0",
        context_length=4096,
        license="apache-2.0",
        tensor_count=4,
    )
    # The 5000-token vocabulary sits in the header, the tensor data after it.
    assert 5000 * 4 < info.header_bytes < gguf_model.stat().st_size


def test_big_endian_file_reads_the_same_as_little_endian(make_gguf: Callable[..., Path]) -> None:
    little = identify_bytes(make_gguf().read_bytes())
    big = identify_bytes(make_gguf(endianess=gguf.GGUFEndian.BIG).read_bytes())

    assert big == little


def test_without_file_type_the_dominant_tensor_type_names_the_quantization(
    make_gguf: Callable[..., Path],
) -> None:
    info = identify_bytes(make_gguf(file_type=None).read_bytes())

    # F32 holds 2080 elements, Q8_0 2048, F16 1024.
    assert info is not None and info.quantization == "F32"


def test_file_type_marked_guessed_keeps_its_name(make_gguf: Callable[..., Path]) -> None:
    guessed = gguf.LlamaFileType.MOSTLY_Q4_K_M | gguf.LlamaFileType.GUESSED
    info = identify_bytes(make_gguf(file_type=guessed).read_bytes())

    assert info is not None and info.quantization == "Q4_K_M"


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("order", ["<", ">"])
def test_reads_every_version_in_either_byte_order(version: int, order: str) -> None:
    b = Builder(version, order)
    kvs = [
        b.kv_string("general.architecture", "llama"),
        b.kv_string("general.name", "hand built"),
        b.kv_u32("llama.context_length", 2048),
        b.kv_u32("general.file_type", 15),
    ]
    tensors = [b.tensor("a", [256, 4], 12, 0), b.tensor("b", [8], 0, 576)]
    data = b.file(kvs, tensors, data=bytes(576 + 32))

    info = identify_bytes(data)

    assert info is not None
    assert (info.name, info.architecture, info.context_length) == ("hand built", "llama", 2048)
    assert (info.parameters, info.quantization, info.tensor_count) == (1032, "Q4_K_M", 2)


def test_tensor_type_table_matches_the_gguf_library() -> None:
    theirs = {
        int(t): (t.name, *gguf.GGML_QUANT_SIZES[t])
        for t in gguf.GGMLQuantizationType
        if t in gguf.GGML_QUANT_SIZES
    }
    assert theirs == reader.TENSOR_TYPES


def test_file_type_names_match_llama_file_type() -> None:
    for member in gguf.LlamaFileType:
        if member is gguf.LlamaFileType.GUESSED:
            continue
        expected = member.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        assert reader.FILE_TYPES[int(member)] == expected


def test_text_that_starts_with_gguf_is_not_a_model() -> None:
    assert identify_bytes(b"GGUF files hold llama.cpp models, see the notes below.\n") is None


def test_magic_then_garbage_is_not_a_model() -> None:
    assert identify_bytes(b"GGUF" + bytes(range(200, 256)) * 4) is None


def test_magic_and_version_then_garbage_is_a_broken_gguf() -> None:
    data = b"GGUF" + struct.pack("<I", 3) + b"\xff" * 100

    with pytest.raises(FormatError) as e:
        identify_bytes(data)
    assert e.value.format == "gguf"


def test_unsupported_version_is_named() -> None:
    with pytest.raises(FormatError, match="unsupported version 4") as e:
        identify_bytes(b"GGUF" + struct.pack("<I", 4) + bytes(32))
    assert e.value.offset == 4


class Recorder:
    """A ReadAt over bytes that keeps the largest length anyone asked for."""

    def __init__(self, data: bytes, size: int | None = None) -> None:
        self.data = data
        self.size = len(data) if size is None else size
        self.largest = 0

    def __call__(self, offset: int, length: int) -> bytes:
        self.largest = max(self.largest, length)
        # Past the bytes we hold, the file reads as zeros, like a sparse file.
        want = max(0, min(length, self.size - offset))
        chunk = self.data[offset : offset + want]
        return chunk + bytes(want - len(chunk))


def assert_refused(data: bytes, reason: str, *, size: int | None = None) -> FormatError:
    recorder = Recorder(data, size)
    with pytest.raises(FormatError, match=reason) as e:
        identify(recorder, recorder.size)
    # Nothing the file claimed made us ask for more than a chunk or a capped string.
    assert recorder.largest <= max(reader.MAX_STRING, 64 << 10)
    return e.value


def test_key_claiming_a_huge_string_is_refused_at_its_offset() -> None:
    b = Builder()
    data = b.header(0, 1) + b.count(2**60) + b"x" * 64

    error = assert_refused(data, "cap")
    assert error.offset == 24


def test_array_claiming_2_to_the_40_items_is_refused() -> None:
    b = Builder()
    kv = b.string("tokenizer.ggml.tokens") + b.u32(9) + b.u32(8) + b.count(2**40)

    assert_refused(b.header(0, 1) + kv + bytes(64), "claims 1099511627776 items")


def test_file_claiming_2_to_the_50_tensors_is_refused() -> None:
    error = assert_refused(Builder().header(2**50, 0) + bytes(64), "tensor count")
    assert error.offset == 8


def test_string_in_an_array_claiming_a_huge_length_is_refused() -> None:
    b = Builder()
    kv = b.string("tokenizer.ggml.tokens") + b.u32(9) + b.u32(8) + b.count(3)
    kv += b.string("a") + b.count(2**60)

    assert_refused(b.header(0, 1) + kv + bytes(64), "cap")


def test_scalar_array_longer_than_the_file_is_refused() -> None:
    b = Builder()
    kv = b.string("tokenizer.ggml.scores") + b.u32(9) + b.u32(6) + b.count(1 << 23)

    assert_refused(b.header(0, 1) + kv + bytes(64), "file ends")


def test_header_larger_than_the_cap_is_refused_even_in_a_huge_file() -> None:
    b = Builder()
    # 16M 8-byte items: within the item cap, but 128 MiB of header.
    kv = b.string("big") + b.u32(9) + b.u32(10) + b.count(reader.MAX_ARRAY)

    assert_refused(b.header(0, 1) + kv, "header past", size=1 << 40)


def test_tensor_with_too_many_dims_is_refused() -> None:
    b = Builder()
    data = b.file([], [b.tensor("t", [1] * 9, 0, 0)], data=bytes(64))

    assert_refused(data, "9 dims")


def test_unknown_value_type_is_refused() -> None:
    b = Builder()
    data = b.file([b.string("k") + b.u32(13) + bytes(8)], [])

    assert_refused(data, "unknown value type 13")


def test_arrays_nested_too_deep_are_refused() -> None:
    b = Builder()
    nested = b.u32(9) + b.count(1)
    kv = b.string("k") + b.u32(9) + nested * 4 + b.u32(0) + b.count(1) + b"\0"

    assert_refused(b.file([kv], []), "nest deeper")


def test_tensor_data_past_the_end_of_the_file_is_refused() -> None:
    b = Builder()
    data = b.file([], [b.tensor("t", [1024], 0, 0)], data=bytes(100))

    assert_refused(data, "past the file")


def test_alignment_that_is_not_a_power_of_two_is_refused() -> None:
    b = Builder()
    data = b.file([b.kv_u32("general.alignment", 3)], [])

    assert_refused(data, "power of two")


def test_quantized_tensor_must_hold_whole_blocks() -> None:
    b = Builder()
    data = b.file([], [b.tensor("t", [33], 8, 0)], data=bytes(64))

    assert_refused(data, "whole blocks")


def test_every_truncation_of_a_real_file_is_refused(small_gguf: Path) -> None:
    data = small_gguf.read_bytes()

    for n in range(len(data)):
        prefix = data[:n]
        if n < 8:
            assert identify_bytes(prefix) is None
        else:
            with pytest.raises(FormatError):
                identify_bytes(prefix)
    assert identify_bytes(data) is not None
