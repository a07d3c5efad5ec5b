"""Turn a model file observation into the flat `shadowai.model_file` event fields.

Pure: the file sensor reads, this module only arranges values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from agent.detect.formats import ModelInfo
from agent.detect.frozen import quick_init

FINGERPRINT_HEAD_BYTES = 1 << 20


@quick_init  # built once per model file found: see agent.detect.frozen
@dataclass(frozen=True)
class FileObservation:
    """One model file as the sensor saw it: where, how big, which inode, what its header says."""

    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    sha256: str | None
    fingerprint: str
    info: ModelInfo
    uid: int | None = None  # the file's owner (POSIX st_uid); None where the OS has none


def fingerprint(head: bytes, size: int) -> str:
    """Hex sha256 over the size (8 bytes little-endian) and the first MiB of the file.

    Cheap enough for every scan, and stable across renames and copies; the full sha256 is
    computed separately and throttled.
    """
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    digest.update(head[:FINGERPRINT_HEAD_BYTES])
    return digest.hexdigest()


def model_file_fields(obs: FileObservation) -> dict[str, object]:
    """DESIGN.md's dotted field names for one model file; absent values are left out."""
    info = obs.info
    candidates: dict[str, object | None] = {
        "file.path": obs.path,
        "file.size": obs.size,
        "file.hash.sha256": obs.sha256,
        "ai.model.format": info.format,
        "ai.model.fingerprint": obs.fingerprint,
        "ai.model.name": info.name,
        "ai.model.architecture": info.architecture,
        "ai.model.parameters": info.parameters,
        "ai.model.quantization": info.quantization,
        "ai.model.context_length": info.context_length,
        "ai.model.license": info.license,
        "ai.model.base_model": info.base_model,
        "ai.model.producer": info.producer,
        "ai.model.chat_template_sha256": info.chat_template_sha256,
        "ai.model.unsafe": info.unsafe,
        "ai.model.unsafe_reasons": list(info.unsafe_reasons) if info.unsafe_reasons else None,
        "ai.model.risk": info.risk,
        "ai.model.kind": info.kind,
        "ai.model.architecture_class": info.architecture_class,
        "ai.model.parameters_estimated": info.parameters_estimated,
        "ai.model.tensor_count": info.tensor_count or None,
    }
    return {key: value for key, value in candidates.items() if value is not None}
