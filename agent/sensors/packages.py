"""Name the installed package that owns a file: dist-info RECORDs, egg-info file lists,
package.json, conda package folders. Thin reader over agent.detect.origin, cached per folder.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Mapping

from agent.detect.origin import (
    APP,
    CONDA,
    NODE,
    PYTHON,
    conda_name,
    metadata_name,
    npm_name,
    package_root,
    record_paths,
)

MAX_RECORD_BYTES = 16 << 20  # torch's RECORD is ~2 MB; anything far larger is not a RECORD
MAX_SMALL_BYTES = 64 << 10  # package.json, METADATA headers
MAX_ROOTS = 64  # site-packages folders remembered at once

_TopLevel = Mapping[str, tuple[str, ...]]  # first path component -> dist-info / egg-info folders


class PackageOwners:
    """`owner(path)`: "name version" of the package that installed the file, or None.

    Each site-packages folder is indexed once (which distributions installed files under
    each top-level folder) and indexed again only when its mtime changes, as it does when a
    distribution is installed or removed. Safe to call from several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._python: dict[str, tuple[int, _TopLevel]] = {}

    def owner(self, path: str) -> str | None:
        root = package_root(path)
        if root is None:
            return None
        if root.kind == APP:
            return root.name
        if root.kind == CONDA:
            return conda_name(root.root)
        if root.kind == NODE:
            return npm_name(_read(os.path.join(root.root, "package.json"), MAX_SMALL_BYTES))
        if root.kind == PYTHON:
            return self._python_owner(root.root, path)
        return None

    def _python_owner(self, site: str, path: str) -> str | None:
        relative = os.path.relpath(path, site).replace(os.sep, "/")
        top = relative.split("/", 1)[0]
        candidates = self._top_level(site).get(top, ())
        for folder in candidates:
            if relative in _installed(folder, _mtime(folder)):
                return _dist_name(folder, _mtime(folder))
        # A file the package wrote after installing (a downloaded weight inside its own
        # folder) is in no RECORD; the folder's one installer still owns it.
        if len(candidates) == 1:
            return _dist_name(candidates[0], _mtime(candidates[0]))
        return None

    def _top_level(self, site: str) -> _TopLevel:
        mtime = _mtime(site)
        with self._lock:
            cached = self._python.get(site)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        index = _index_site(site)
        with self._lock:
            if len(self._python) >= MAX_ROOTS:
                self._python.pop(next(iter(self._python)))
            self._python[site] = (mtime, index)
        return index


def _index_site(site: str) -> _TopLevel:
    tops: dict[str, list[str]] = {}
    try:
        entries = sorted(os.listdir(site))
    except OSError:
        return {}
    for entry in entries:
        if not entry.endswith((".dist-info", ".egg-info")):
            continue
        folder = os.path.join(site, entry)
        for top in {relative.split("/", 1)[0] for relative in _listed(folder)}:
            if top not in (entry, "..", ""):
                tops.setdefault(top, []).append(folder)
    return {top: tuple(folders) for top, folders in tops.items()}


@functools.lru_cache(maxsize=1)
def _installed(folder: str, mtime: int) -> frozenset[str]:
    """What `_listed` says, kept for the next lookup: a scan reports a package's files one
    after another, and one set (torch's is ~2 MB) is all that stays in memory. `mtime` is
    part of the key, so a reinstalled distribution is read again."""
    return frozenset(_listed(folder))


def _listed(folder: str) -> list[str]:
    """Paths relative to site-packages that a dist-info or egg-info folder lists."""
    if folder.endswith(".dist-info"):
        text = _read(os.path.join(folder, "RECORD"), MAX_RECORD_BYTES)
        return [os.path.normpath(p).replace(os.sep, "/") for p in _paths(text)]
    text = _read(os.path.join(folder, "installed-files.txt"), MAX_RECORD_BYTES)
    base = os.path.basename(folder)
    listed = (os.path.normpath(os.path.join(base, line.strip())) for line in _lines(text))
    return [p.replace(os.sep, "/") for p in listed]


def _paths(data: bytes) -> list[str]:
    return record_paths(data.decode("utf-8", "replace"))


def _lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]


@functools.lru_cache(maxsize=256)
def _dist_name(folder: str, mtime: int) -> str | None:
    header = "METADATA" if folder.endswith(".dist-info") else "PKG-INFO"
    found = metadata_name(
        _read(os.path.join(folder, header), MAX_SMALL_BYTES).decode("utf-8", "replace")
    )
    if found is not None:
        return found
    # No readable METADATA: the folder's own name is "{name}-{version}.dist-info".
    name, _, version = os.path.basename(folder).rsplit(".", 1)[0].partition("-")
    return f"{name} {version.split('-')[0]}".strip() if name else None


def _read(path: str, limit: int) -> bytes:
    with contextlib.suppress(OSError), open(path, "rb") as f:
        return f.read(limit)
    return b""


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
