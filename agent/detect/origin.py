"""Where a model file sits, as a security team reads it: a model store, an installed package, or
the user's own files (`ai.model.origin`), and which package root to ask for the owner.

Pure: a path (and the store the index found) in, an origin and a package root out.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from dataclasses import dataclass

STORE = "store"
PACKAGE = "package"
USER = "user"

# Kinds of package root, each with its own way of naming the owner (agent.sensors.packages).
PYTHON = "python"  # site-packages / dist-packages: *.dist-info/RECORD, *.egg-info
NODE = "node"  # node_modules/<name> or node_modules/@scope/<name>: package.json
CONDA = "conda"  # <conda>/pkgs/<name>-<version>-<build>: info/index.json
APP = "app"  # /Applications/X.app, Program Files\X: the bundle's own name

_PYTHON_DIRS = frozenset({"site-packages", "dist-packages"})
_PROGRAM_FILES = frozenset({"program files", "program files (x86)"})
# A conda package cache folder is "<name>-<version>-<build>"; the build string has no dash.
_CONDA_PACKAGE = re.compile(r"(.+)-([^-]+)-([^-]+)")
_PRINTABLE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,213}")  # npm caps names at 214


@dataclass(frozen=True)
class PackageRoot:
    """The folder a package tree starts at, and what kind of tree it is.

    For PYTHON, `root` is the site-packages folder (its dist-info RECORDs name files relative
    to it); for NODE and CONDA it is the one package's folder; for APP it is the bundle and
    `name` is already known from the path.
    """

    kind: str
    root: str
    name: str | None = None


def origin(store: str | None, path: str) -> str:
    """`store` when the store index recognised the file, `package` inside a package tree,
    `user` anywhere else."""
    if store:
        return STORE
    return PACKAGE if package_root(path) is not None else USER


def package_root(path: str) -> PackageRoot | None:
    """The innermost package tree holding `path` (a file path, either separator), or None.

    Innermost, because a node_modules folder inside a Python package belongs to the node
    package, and a wheel vendored inside an application bundle to the wheel.
    """
    sep = "\\" if "\\" in path and "/" not in path else "/"
    parts = path.split(sep)
    folders = parts[:-1]  # the file's own name never makes it a package
    for i in range(len(folders) - 1, -1, -1):
        found = _root_at(folders, i, sep)
        if found is not None:
            return found
    return None


def _root_at(folders: list[str], i: int, sep: str) -> PackageRoot | None:
    name = folders[i]
    lowered = name.lower()
    above = folders[i - 1].lower() if i > 0 else ""
    if lowered in _PYTHON_DIRS:
        return PackageRoot(PYTHON, sep.join(folders[: i + 1]))
    if above == "node_modules" and not name.startswith("@") and name not in (".bin", ".cache"):
        return PackageRoot(NODE, sep.join(folders[: i + 1]))
    if i > 1 and folders[i - 2].lower() == "node_modules" and above.startswith("@"):
        return PackageRoot(NODE, sep.join(folders[: i + 1]))
    if above == "pkgs" and _CONDA_PACKAGE.fullmatch(name):
        return PackageRoot(CONDA, sep.join(folders[: i + 1]))
    if lowered.endswith(".app") and len(name) > 4:
        return PackageRoot(APP, sep.join(folders[: i + 1]), name[:-4])
    if above in _PROGRAM_FILES or _installed_app(folders, i):
        return PackageRoot(APP, sep.join(folders[: i + 1]), name)
    return None


def _installed_app(folders: list[str], i: int) -> bool:
    """A per-user Windows install (AppData\\Local\\Programs\\X), a snap (/snap/X) or a
    Flatpak (.../flatpak/app/X): folders that only an installer writes to."""
    lowered = [f.lower() for f in folders[max(0, i - 3) : i]]
    if lowered[-3:] == ["appdata", "local", "programs"]:
        return True
    if i == 2 and folders[0] == "" and folders[1] == "snap":
        return True
    return lowered[-2:] == ["flatpak", "app"]


def conda_name(folder: str) -> str | None:
    """ "numpy 2.1.3" from a conda package cache folder name "numpy-2.1.3-py311h..."."""
    found = _CONDA_PACKAGE.fullmatch(folder.replace("\\", "/").rsplit("/", 1)[-1])
    return f"{found.group(1)} {found.group(2)}" if found else None


def record_paths(text: str) -> list[str]:
    """The file paths a dist-info RECORD lists (CSV rows: path, hash, size), as written."""
    paths: list[str] = []
    rows = csv.reader(io.StringIO(text, newline=""))
    # A broken row ends the list: what came before it is still what it says.
    with contextlib.suppress(csv.Error):
        paths.extend(row[0] for row in rows if row and row[0])
    return paths


def metadata_name(text: str) -> str | None:
    """ "name version" from the headers of a METADATA or PKG-INFO file; None without a name."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the body (the long description) starts after the first blank line
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in headers:
            headers[key] = value.strip()
    return _joined(headers.get("Name"), headers.get("Version"))


def npm_name(data: bytes) -> str | None:
    """ "name version" from a package.json; None when it is not one or names nothing."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    name, version = parsed.get("name"), parsed.get("version")
    return _joined(
        name if isinstance(name, str) else None, version if isinstance(version, str) else None
    )


def _joined(name: str | None, version: str | None) -> str | None:
    if not name or not _PRINTABLE.fullmatch(name):
        return None
    if version and _PRINTABLE.fullmatch(version):
        return f"{name} {version}"
    return name
