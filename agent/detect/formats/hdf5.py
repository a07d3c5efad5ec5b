"""Tell a Keras HDF5 model (.h5) apart from any other HDF5 file, and read its model config.

Keras writes `keras_version`, `backend` and `model_config` as attributes of the root group.
This module follows the superblock to the root group's object header, reads its attribute
messages (continuation blocks included), and fetches string values from the global heap.
An HDF5 file without those attributes is data, not a model: parse returns None. Attributes
in dense storage (a fractal heap, used past eight attributes) are not read. The parameter
count is the element count of the datasets under `model_weights` (hdf5_weights).
"""

from __future__ import annotations

import json
from dataclasses import replace

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.hdf5_objects import (
    MAX_BLOCKS,
    MAX_MESSAGES,
    UNDEFINED,
    File,
    Header,
    object_header,
)
from agent.detect.formats.hdf5_weights import weight_count
from agent.detect.formats.keras_config import LAMBDA_REASON, judge_config
from agent.errors import FormatError

FORMAT = "hdf5"
SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Without a user block the superblock is at 0; with one, at the next power of two from 512.
SUPERBLOCK_OFFSETS = (0, 512, 1024, 2048)
KERAS_ATTRIBUTES = frozenset({"keras_version", "backend", "model_config"})
MAX_TEXT = 256
__all__ = ["LAMBDA_REASON", "MAX_BLOCKS", "MAX_MESSAGES", "claims", "parse"]


def claims(head: bytes, size: int) -> bool:
    """True when the HDF5 signature sits where a superblock may start."""
    return _superblock_offset(head) is not None


def _superblock_offset(head: bytes) -> int | None:
    for offset in SUPERBLOCK_OFFSETS:
        if head[offset : offset + 8] == SIGNATURE:
            return offset
    return None


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for an HDF5 file whose root group has no Keras attributes; FormatError when the
    superblock or root object header breaks."""
    head = read_at(0, min(4096, size))
    at = _superblock_offset(head)
    if at is None:
        raise FormatError(FORMAT, 0, "no HDF5 signature")
    f = File(read_at, size)
    root = _superblock(f, at)
    header = Header(KERAS_ATTRIBUTES)
    object_header(f, root, header)
    attributes = header.attributes
    if not ("keras_version" in attributes or "model_config" in attributes):
        return None
    return replace(_keras_info(attributes, at), parameters=weight_count(f, header))


def _superblock(f: File, at: int) -> int:
    """Set the address widths and base; return the root group's object header address."""
    raw = f.read(at, 16, "superblock")
    version = raw[8]
    if version in (0, 1):
        f.offsets, f.lengths = raw[13], raw[14]
        fields = at + 24 + (4 if version == 1 else 0)
        root_entry = fields + 4 * f.offsets
        root_field = root_entry + f.offsets
    elif version in (2, 3):
        f.offsets, f.lengths = raw[9], raw[10]
        fields = at + 12
        root_field = fields + 3 * f.offsets
    else:
        raise FormatError(FORMAT, at + 8, f"unknown superblock version {version}")
    if f.offsets not in (2, 4, 8) or f.lengths not in (2, 4, 8):
        raise FormatError(FORMAT, at + 13, f"address sizes {f.offsets}/{f.lengths}")
    f.base = f.uint(fields, f.offsets, "base address")
    root = f.address(root_field, "root group address")
    if root == UNDEFINED:
        raise FormatError(FORMAT, root_field, "no root group")
    return root


def _keras_info(attributes: dict[str, str | None], at: int) -> ModelInfo:
    version = attributes.get("keras_version")
    config_text = attributes.get("model_config")
    architecture = name = None
    found = None
    if config_text:
        config = _json(config_text, at)
        architecture, name = _class_and_name(config)
        found = judge_config(config)
    return ModelInfo(
        format=FORMAT,
        name=name,
        architecture=architecture,
        producer=f"keras {version[:MAX_TEXT]}" if version else "keras",
        unsafe=found.unsafe if found else None,
        unsafe_reasons=found.reasons if found else (),
        risk=found.risk if found else None,
    )


def _json(text: str, at: int) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatError(FORMAT, at, f"model_config is not JSON: {e}") from None


def _class_and_name(config: object) -> tuple[str | None, str | None]:
    if not isinstance(config, dict):
        return None, None
    class_name = config.get("class_name")
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    return (
        class_name[:MAX_TEXT] if isinstance(class_name, str) else None,
        name[:MAX_TEXT] if isinstance(name, str) else None,
    )
