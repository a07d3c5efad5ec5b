"""From file observations to reported models: store provenance, sets and folders, fields.

The daemon and `scan` share this, so a model is named, grouped and described the same way
whether it is shipped or printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from agent import platform
from agent.detect.groups import ModelGroup, group_model_files, metadata_paths
from agent.detect.model import FileObservation, model_file_fields
from agent.inventory import Reported
from agent.sensors.files import ScanStats, list_folders
from agent.sensors.stores import read_metadata_files

log = logging.getLogger(__name__)
GROUP_LEVELS = 3  # a model's folder and two above it: a .mlpackage, a repository's config.json


class Provenance(Protocol):
    """Where a model file came from, as the store index says (agent.detect.stores)."""

    @property
    def store(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def expected_sha256(self) -> str | None: ...


class Stores(Protocol):
    """The store index: provenance by path, and the path to report (a HF snapshot, not a blob)."""

    def lookup(self, path: str) -> Provenance | None: ...

    def canonical_path(self, path: str) -> str: ...


class NoStores:
    def lookup(self, path: str) -> Provenance | None:
        return None

    def canonical_path(self, path: str) -> str:
        return path


def load_stores() -> Stores:
    """The index over this OS's model stores, read afresh (manifests change with every pull)."""
    from agent.sensors.stores import load_store_index

    return load_store_index(platform.current().store_roots())


def safe_stores(load: Any = load_stores) -> Stores:
    try:
        stores: Stores = load()
    except Exception:
        # A bug in reading the stores must cost their names, not the pass.
        log.exception("store index failed; reporting without store provenance")
        return NoStores()
    return stores


def group_observations(observations: Sequence[FileObservation]) -> list[ModelGroup]:
    """Sets, split files and folder models among the observations, from their folders'
    listings and small metadata files (config.json, *.index.json, README.md)."""
    if not observations:
        return []
    try:
        return _group_folders(observations)
    except Exception:
        # A grouping bug must not end the pass: each model file is then reported alone.
        log.exception("grouping model files failed; reporting each file alone")
        return []


def _group_folders(observations: Sequence[FileObservation]) -> list[ModelGroup]:
    folders: set[str] = set()
    for obs in observations:
        folder = os.path.dirname(obs.path)
        for _ in range(GROUP_LEVELS):
            folders.add(folder)
            folder = os.path.dirname(folder)
    ignored = ScanStats()  # folders above a model are read as a courtesy, not as coverage
    listing = list_folders(sorted(folders), stats=ignored)
    metadata = read_metadata_files(metadata_paths(listing), stats=ignored)
    return group_model_files(
        listing,
        metadata,
        models=[obs.path for obs in observations],
        companions={o.path: o.info.companions for o in observations if o.info.companions},
    )


def model_fields(model: Reported, digest: str | None, stores: Stores) -> dict[str, Any]:
    """The model_file fields of one reported model (a file, a set or a folder)."""
    obs = model.primary
    fields = model_file_fields(replace(obs, path=model.path, info=model.info, sha256=digest))
    if model.members:
        fields["ai.model.file_count"] = len(model.members)
        fields["file.size"] = total_size(model.members)
    fields.update(origin_fields(stores, model.path, digest))
    return fields


def origin_fields(stores: Stores | None, path: str, digest: str | None) -> dict[str, Any]:
    found = stores.lookup(path) if stores is not None else None
    if found is None:
        return {}
    if digest and found.expected_sha256 and digest != found.expected_sha256.lower():
        # The store's name for the content is kept: the content itself is what we hashed,
        # and the collector sees both the name and the real digest.
        log.warning(
            "%s: content sha256 %s differs from the %s store's %s",
            path,
            digest,
            found.store,
            found.expected_sha256,
        )
    values = {
        "ai.model.store": found.store,
        "ai.model.source": found.source,
        "ai.model.name": found.name,
    }
    return {k: v for k, v in values.items() if v}


def total_size(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # a member that vanished counts for nothing
            total += os.stat(path).st_size
    return total
