"""Identify a model file by its content and read what its header says about the model.

Parsers take a bounded reader (offset, length) -> bytes and the file size, never a path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.detect.frozen import quick_init
from agent.detect.quantized import Packed

ReadAt = Callable[[int, int], bytes]
"""Return up to `length` bytes at `offset`; fewer only at the end of the file."""

HEAD_BYTES = 4096


@quick_init  # built once per model file found: see agent.detect.frozen
@dataclass(frozen=True)
class ModelInfo:
    """What a model file's header says; values follow DESIGN.md's `ai.model.*` fields."""

    format: str
    name: str | None = None
    architecture: str | None = None
    parameters: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    license: str | None = None
    tensor_count: int = 0
    header_bytes: int = 0
    base_model: str | None = None
    producer: str | None = None  # the library or tool that wrote the file, with its version
    unsafe: bool | None = None  # None: the format cannot carry code, or it was not checked
    unsafe_reasons: tuple[str, ...] = ()
    # dangerous / suspicious / none (DESIGN.md); None: the format cannot carry code, or it was
    # not checked. `unsafe` is True exactly when this is "dangerous".
    risk: str | None = None
    kind: str | None = None  # llm / embedding / speech / vision / other; None when nothing says
    architecture_class: str | None = None  # LlamaForCausalLM; `architecture` holds the family
    # True: `parameters` counts weights before quantization (plain or unpacked from a scheme we
    # recognise); False: a packed layout we do not recognise, so it is the stored element count.
    parameters_estimated: bool | None = None
    chat_template_sha256: str | None = None
    companions: tuple[str, ...] = ()  # names of files this one needs (shards, external data)
    # Tensors that may hold packed weights, kept so that a set's config can unpack them.
    packed: Packed | None = None


Claims = Callable[[bytes, int], bool]
Parse = Callable[[ReadAt, int], "ModelInfo | None"]


def identify(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None when the bytes are no model format we know; FormatError when they claim a format
    and break it.

    Formats with a magic number go first; protobuf-based formats have none, so each of them
    may decline a file (parse returns None) and let the next one look. Only the formats whose
    claim can start with the file's first byte are asked (`_BY_LEAD`): most files on a disk
    are no model, and this spares each of them most claims.
    """
    head = read_at(0, min(HEAD_BYTES, size)) if size > 0 else b""
    for claims, parse in _BY_LEAD[head[0] if head else 256]:
        if claims(head, size):
            info = parse(read_at, size)
            if info is not None:
                return info
    return None


def claimed(head: bytes, size: int) -> bool:
    """Whether any format claims a file of `size` bytes that starts with `head` (its first
    min(HEAD_BYTES, size) bytes): False means identify() would return None without reading
    further, so a caller holding the head can skip the file."""
    # A loop rather than any() over a generator: this runs for every file of a walk.
    for claims, _ in _BY_LEAD[head[0] if head else 256]:  # noqa: SIM110
        if claims(head, size):
            return True
    return False


# The format modules import ModelInfo and ReadAt from this package, so they load after both
# are defined.
from agent.detect.formats import (  # noqa: E402
    coreml,
    ggml,
    gguf,
    hdf5,
    keras3,
    llamafile,
    npy,
    npz,
    onnx,
    pickle_format,
    pytorch,
    safetensors,
    savedmodel,
    tflite,
    whispercpp,
    ziparchive,
)

_BY_ZIP_KIND: dict[str, Parse] = {
    "pytorch": pytorch.parse,
    "torchscript": pytorch.parse,
    "keras": keras3.parse,
    "npz": npz.parse,
    "llamafile": llamafile.parse,
}


def _repacked_zip(read_at: ReadAt, size: int) -> ModelInfo | None:
    """A zip whose first member did not give it away (a repacked archive): ask its layout."""
    kind = ziparchive.zip_kind(read_at, size)
    parse = _BY_ZIP_KIND.get(kind) if kind is not None else None
    return parse(read_at, size) if parse is not None else None


def _zip_claims(head: bytes, size: int) -> bool:
    return ziparchive.is_zip_head(head)


def _gguf_claims(head: bytes, size: int) -> bool:
    return gguf.claims(head)


# Magic numbers first; then zips by layout; then the protobuf formats, which have no magic
# and decline each other's files; pickles last, since their claim is the loosest.
FORMATS: tuple[tuple[Claims, Parse], ...] = (
    (_gguf_claims, gguf.parse),
    (safetensors.claims, safetensors.parse),
    (whispercpp.claims, whispercpp.parse),  # before ggml: the same magic, other layouts
    (ggml.claims, ggml.parse),
    (npy.claims, npy.parse),
    (hdf5.claims, hdf5.parse),
    (tflite.claims, tflite.parse),
    (pytorch.claims, pytorch.parse),
    (keras3.claims, keras3.parse),
    (npz.claims, npz.parse),
    (llamafile.claims, llamafile.parse),
    (_zip_claims, _repacked_zip),
    (onnx.claims, onnx.parse),
    (coreml.claims, coreml.parse),
    (savedmodel.claims, savedmodel.parse),
    (pickle_format.claims, pickle_format.parse),
)

_ZIP = b"P"  # "PK": a local header or an empty archive's end record
_PROTOBUF = b"\x08"  # field 1 as a varint: ir_version, specificationVersion, schema version
# The first bytes each claim below can accept, from its magic or its first field: a claim is
# asked only about files that start with one of them. Listed are the claims that cost most on
# the files that are no model (the protobuf ones walk the head's fields) and the ones sure to
# keep their first byte; a claim not listed is asked about every file.
# tests/agent/detect/formats/test_identify_leads.py holds each claim to its entry.
LEADS: dict[Claims, bytes] = {
    _gguf_claims: b"G",  # GGUF
    ggml.claims: b"lft",  # lmgg, fmgg, tjgg: the legacy magics as little-endian words
    npy.claims: b"\x93",  # \x93NUMPY
    pytorch.claims: b"\x80" + _ZIP,  # a legacy checkpoint's pickle, or a zip
    llamafile.claims: b"\x7fM#\xcf\xce\xca",  # ELF, PE, a script, Mach-O, universal binary
    keras3.claims: _ZIP,
    npz.claims: _ZIP,
    _zip_claims: _ZIP,
    onnx.claims: _PROTOBUF,
    coreml.claims: _PROTOBUF,
    savedmodel.claims: _PROTOBUF,
}


def _formats_led_by(byte: int) -> tuple[tuple[Claims, Parse], ...]:
    return tuple(f for f in FORMATS if f[0] not in LEADS or byte in LEADS[f[0]])


# The formats to ask, in FORMATS order, by the head's first byte; index 256: an empty head.
_BY_LEAD = (*(_formats_led_by(b) for b in range(256)), FORMATS)
