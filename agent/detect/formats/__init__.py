"""Identify a model file by its content and read what its header says about the model.

Parsers take a bounded reader (offset, length) -> bytes and the file size, never a path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ReadAt = Callable[[int, int], bytes]
"""Return up to `length` bytes at `offset`; fewer only at the end of the file."""

HEAD_BYTES = 4096


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


Claims = Callable[[bytes, int], bool]
Parse = Callable[[ReadAt, int], "ModelInfo | None"]


def identify(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None when the bytes are no model format we know; FormatError when they claim a format
    and break it.

    Formats with a magic number go first; protobuf-based formats have none, so each of them
    may decline a file (parse returns None) and let the next one look.
    """
    head = read_at(0, min(HEAD_BYTES, size)) if size > 0 else b""
    for claims, parse in FORMATS:
        if claims(head, size):
            info = parse(read_at, size)
            if info is not None:
                return info
    return None


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


# Magic numbers first; then zips by layout; then the protobuf formats, which have no magic
# and decline each other's files; pickles last, since their claim is the loosest.
FORMATS: tuple[tuple[Claims, Parse], ...] = (
    (lambda head, size: gguf.claims(head), gguf.parse),
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
    (lambda head, size: ziparchive.is_zip_head(head), _repacked_zip),
    (onnx.claims, onnx.parse),
    (coreml.claims, coreml.parse),
    (savedmodel.claims, savedmodel.parse),
    (pickle_format.claims, pickle_format.parse),
)
