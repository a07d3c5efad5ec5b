"""From file observations to reported models: store provenance, origin and owner, sets and
folders, kind, fields.

The daemon and `scan` share this, so a model is named, grouped and described the same way
whether it is shipped or printed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from agent import platform
from agent.detect.groups import ModelGroup, group_model_files, metadata_paths
from agent.detect.kind import is_numeric_data, with_kind
from agent.detect.model import FileObservation, model_file_fields
from agent.detect.origin import PACKAGE, origin
from agent.inventory import Reported, reported_models
from agent.sensors.files import ScanStats, list_folders
from agent.sensors.packages import PackageOwners
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


def catalog_models(observations: Sequence[FileObservation]) -> list[Reported]:
    """The models to report for a pass's model files: grouped into sets and folders, each
    with its kind, and without the numeric arrays that are data rather than models."""
    groups = group_observations(observations)
    by_path = {group.path: group for group in groups}
    found = []
    for model in reported_models(observations, groups):
        group = by_path.get(model.path)
        config, card = (group.config, group.card) if group is not None else (None, None)
        info = with_kind(model.info, config, card)
        if not is_numeric_data(info, config, card):
            found.append(replace(model, info=info))
    return found


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


OWNERS = PackageOwners()  # one cache of site-packages indexes for the whole process


def model_fields(
    model: Reported, digest: str | None, stores: Stores, *, owners: PackageOwners = OWNERS
) -> dict[str, Any]:
    """The model_file fields of one reported model (a file, a set or a folder)."""
    obs = model.primary
    fields = model_file_fields(replace(obs, path=model.path, info=model.info, sha256=digest))
    if model.members:
        fields["ai.model.file_count"] = len(model.members)
        fields["file.size"] = total_size(model.members)
    fields.update(origin_fields(stores, model.path, digest))
    fields.update(package_fields(fields.get("ai.model.store"), model.path, owners))
    owner = user_name(obs.uid)
    if owner is not None:
        fields["user.name"] = owner
    return fields


def package_fields(store: object, path: str, owners: PackageOwners) -> dict[str, Any]:
    """`ai.model.origin`, and `ai.model.package` for a file inside an installed package."""
    where = origin(store if isinstance(store, str) else None, path)
    fields: dict[str, Any] = {"ai.model.origin": where}
    if where == PACKAGE:
        try:
            package = owners.owner(path)
        except Exception:
            # An unreadable or odd package tree costs the package's name, not the model.
            log.exception("%s: naming the owning package failed", path)
            package = None
        if package:
            fields["ai.model.package"] = package
    return fields


@functools.lru_cache(maxsize=256)
def user_name(uid: int | None) -> str | None:
    """The account name of a uid; None where there is no uid or no name for it."""
    if uid is None:
        return None
    try:
        import pwd  # POSIX only; Windows observations carry no uid
    except ImportError:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


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
