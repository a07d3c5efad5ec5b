"""Read a Keras 3 `.keras` archive: metadata.json says which Keras wrote it, config.json what
the model is. A Lambda layer carries marshalled Python bytecode, so it makes the file dangerous.
"""

from __future__ import annotations

import json

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.keras_config import LAMBDA_REASON, judge_config
from agent.detect.formats.ziparchive import (
    Archive,
    archive_kind,
    first_name,
    read_archive,
    read_member,
)
from agent.errors import FormatError

FORMAT = "keras"
MAX_METADATA = 1 << 20
MAX_CONFIG = 16 << 20
MAX_TEXT = 256
__all__ = ["LAMBDA_REASON", "claims", "parse"]
_FIRST_MEMBERS = frozenset({"metadata.json", "config.json", "model.weights.h5"})


def claims(head: bytes, size: int) -> bool:
    """A zip whose first member is one that `model.save("m.keras")` writes."""
    return first_name(head) in _FIRST_MEMBERS


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None when the zip lacks Keras's config.json and metadata.json; FormatError when they are
    not the JSON objects Keras writes."""
    archive = read_archive(read_at, size, FORMAT)
    if archive is None or archive_kind(archive, read_at(0, min(size, 64))) != "keras":
        return None
    metadata = _json_member(read_at, archive, "metadata.json", MAX_METADATA)
    config = _json_member(read_at, archive, "config.json", MAX_CONFIG)
    version = metadata.get("keras_version")
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    found = judge_config(config)
    return ModelInfo(
        format=FORMAT,
        name=_text(name),
        architecture=_text(config.get("class_name")),
        tensor_count=0,
        header_bytes=size - archive.directory_offset,
        producer=f"keras {_text(version)}" if _text(version) else "keras",
        unsafe=found.unsafe,
        unsafe_reasons=found.reasons,
        risk=found.risk,
    )


def _json_member(read_at: ReadAt, archive: Archive, name: str, cap: int) -> dict[str, object]:
    member = archive.find(name)
    if member is None:
        raise FormatError(FORMAT, archive.directory_offset, f"no {name}")
    if member.file_size > cap:
        reason = f"{name} is {member.file_size} bytes (cap {cap})"
        raise FormatError(FORMAT, member.header_offset, reason)
    raw = read_member(read_at, archive, member, limit=cap, fmt=FORMAT)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        # Also Python's own limits: integers too long to convert, nesting too deep.
        reason = f"{name} is not JSON: {str(e)[:MAX_TEXT]}"
        raise FormatError(FORMAT, member.header_offset, reason) from None
    if not isinstance(value, dict):
        raise FormatError(FORMAT, member.header_offset, f"{name} is not a JSON object")
    return value


def _text(value: object) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value else None
