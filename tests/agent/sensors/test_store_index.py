"""Store layouts built on disk as each tool lays them out, read by the store sensor, then the
walker's paths looked up.

No network here, so no tool downloads anything: the Ollama layout follows server/modelpath.go
and server/download.go (manifests/<host>/<namespace>/<model>/<tag>, blobs/sha256-<hex>); the
Hugging Face cache follows huggingface_hub's file_download.py and is checked with its own
scan_cache_dir and try_to_load_from_cache; llama.cpp's cache follows common/arg.cpp
(manifest=<owner>=<repo>=<tag>.json and <owner>_<repo>_<file>); Jan's follows its llamacpp
extension (llamacpp/models/<id>/model.gguf beside model.yml); LM Studio's and GPT4All's their
documentation (~/.lmstudio/models/<publisher>/<repo>/, a flat nomic.ai/GPT4All folder).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, try_to_load_from_cache

from agent.detect.groups import metadata_paths
from agent.detect.stores import (
    GPT4ALL,
    HUGGINGFACE,
    JAN,
    LLAMA_CPP,
    LMSTUDIO,
    OLLAMA,
    Provenance,
    StoreIndex,
    StoreRoot,
)
from agent.platform import Platform
from agent.sensors.files import ScanStats, iter_files, sha256_file
from agent.sensors.stores import (
    MAX_METADATA_BYTES,
    load_store_index,
    read_metadata_files,
)

REV = "0123456789abcdef0123456789abcdef01234567"
OLD_REV = "fedcba9876543210fedcba9876543210fedcba98"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """What the Hub uses as the ETag, and so the blob name, of a file not stored in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def ollama_store(models: Path, weights: bytes, *tags: tuple[str, str, str, str]) -> Path:
    blob = write(models / "blobs" / f"sha256-{sha256(weights)}", weights)
    template = b"{{ .Prompt }}"
    write(models / "blobs" / f"sha256-{sha256(template)}", template)
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{sha256(weights)}"},
        {
            "mediaType": "application/vnd.ollama.image.template",
            "digest": f"sha256:{sha256(template)}",
        },
    ]
    for host, namespace, model, tag in tags:
        body = {"schemaVersion": 2, "layers": layers}
        write(models / "manifests" / host / namespace / model / tag, json.dumps(body).encode())
    return blob


def hf_repo(hub: Path, repo_id: str, files: dict[str, bytes], *revisions: str) -> Path:
    """A cached repository: blobs named by ETag, each revision's snapshot linking into them
    relatively, refs/main naming the first revision."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    write(repo / "refs" / "main", revisions[0].encode())
    for name, data in files.items():
        etag = sha256(data) if name.endswith(".safetensors") else git_blob_sha1(data)
        write(repo / "blobs" / etag, data)
        for rev in revisions:
            link = repo / "snapshots" / rev / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(repo / "blobs" / etag, link.parent))
    return repo


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home" / "dev"


def platform_for(home: Path) -> Platform:
    return Platform(os_type="linux", home=home, env={})


def walk_lookup(
    index: StoreIndex, roots: list[StoreRoot]
) -> dict[str, tuple[str, Provenance | None]]:
    """Every file the walker yields under the roots, by canonical path, with its provenance."""
    stats = ScanStats()
    found: dict[str, tuple[str, Provenance | None]] = {}
    for path, _ in iter_files([r.path for r in roots], stats=stats):
        found[index.canonical_path(str(path))] = (str(path), index.lookup(str(path)))
    assert stats.errors == []
    return found


def test_ollama_blob_digest_is_the_files_sha256_in_user_and_service_stores(
    home: Path, tmp_path: Path, gguf_model: Path
) -> None:
    weights = gguf_model.read_bytes()
    user = home / ".ollama" / "models"
    service = tmp_path / "usr" / "share" / "ollama" / ".ollama" / "models"
    blob = ollama_store(user, weights, ("registry.ollama.ai", "library", "tiny", "latest"))
    shared = ollama_store(service, weights, ("registry.ollama.ai", "alice", "tiny", "q8"))
    roots = [StoreRoot(user, OLLAMA), StoreRoot(service, OLLAMA)]
    stats = ScanStats()

    index = load_store_index(roots, stats=stats)

    mine, theirs = index.lookup(str(blob)), index.lookup(str(shared))
    assert mine is not None and theirs is not None
    assert (mine.name, mine.source) == (
        "tiny:latest",
        "ollama:registry.ollama.ai/library/tiny:latest",
    )
    assert (theirs.name, theirs.role) == ("alice/tiny:q8", "model")
    assert mine.expected_sha256 == sha256_file(blob) == theirs.expected_sha256
    assert (stats.error_count, index.problems) == (0, [])


def test_hf_cache_snapshots_are_counted_once_and_named_by_the_main_revision(
    home: Path, safetensors_model: Path
) -> None:
    hub = home / ".cache" / "huggingface" / "hub"
    weights = safetensors_model.read_bytes()
    config = b'{"model_type": "llama"}'
    files = {"model.safetensors": weights, "config.json": config}
    hf_repo(hub, "meta-llama/Llama-3.2-1B", files, REV, OLD_REV)
    write(hub / "models--meta-llama--Llama-3.2-1B" / "blobs" / (sha256(b"x") + ".incomplete"), b"x")
    # The cache as huggingface_hub itself reads it.
    (cached,) = scan_cache_dir(hub).repos
    assert (cached.repo_id, {r.commit_hash for r in cached.revisions}) == (
        "meta-llama/Llama-3.2-1B",
        {REV, OLD_REV},
    )
    snapshot = try_to_load_from_cache("meta-llama/Llama-3.2-1B", "model.safetensors", cache_dir=hub)
    assert snapshot == str(
        hub / "models--meta-llama--Llama-3.2-1B" / "snapshots" / REV / "model.safetensors"
    )
    roots = [r for r in platform_for(home).store_roots() if r.store == HUGGINGFACE]

    index = load_store_index(roots)
    seen = walk_lookup(index, roots)

    walked, found = seen[snapshot]
    assert found is not None
    assert found.source == f"hf:meta-llama/Llama-3.2-1B@{REV}"
    assert found.expected_sha256 == sha256_file(Path(walked))
    config_path = snapshot.replace("model.safetensors", "config.json")
    config_found = seen[config_path][1]
    assert config_found is not None and config_found.expected_sha256 is None
    weight_copies = [p for p, _ in seen.values() if Path(p).read_bytes() == weights]
    assert len(weight_copies) == 1


def test_app_stores_and_llama_cpp_cache(home: Path, gguf_model: Path) -> None:
    weights = gguf_model.read_bytes()
    share = home / ".local" / "share"
    lms = write(
        home / ".lmstudio" / "models" / "lmstudio-community" / "Tiny-GGUF" / "t.gguf", weights
    )
    gpt = write(share / "nomic.ai" / "GPT4All" / "tiny.Q8_0.gguf", weights)
    jan_dir = share / "Jan" / "data" / "llamacpp" / "models" / "unsloth" / "tiny"
    jan = write(jan_dir / "model.gguf", weights)
    write(
        jan_dir / "model.yml", b"model_path: llamacpp/models/unsloth/tiny/model.gguf\nname: Tiny\n"
    )
    cache = home / ".cache" / "llama.cpp"
    node = {"rfilename": "tiny-Q8_0.gguf", "lfs": {"sha256": sha256(weights), "size": len(weights)}}
    write(cache / "manifest=ggml-org=tiny-GGUF=Q8_0.json", json.dumps({"ggufFile": node}).encode())
    llama = write(cache / "ggml-org_tiny-GGUF_tiny-Q8_0.gguf", weights)
    write(cache / "ggml-org_tiny-GGUF_tiny-Q8_0.gguf.etag", b'"abc"')
    roots = platform_for(home).store_roots()
    stats = ScanStats()

    index = load_store_index(roots, stats=stats)

    found = {p: index.lookup(str(p)) for p in (lms, gpt, jan, llama)}
    assert {p.name: (f.store, f.source, f.name) for p, f in found.items() if f} == {
        "t.gguf": (
            LMSTUDIO,
            "lmstudio:lmstudio-community/Tiny-GGUF",
            "lmstudio-community/Tiny-GGUF",
        ),
        "tiny.Q8_0.gguf": (GPT4ALL, "gpt4all:tiny.Q8_0.gguf", None),
        "model.gguf": (JAN, "jan:unsloth/tiny", "Tiny"),
        "ggml-org_tiny-GGUF_tiny-Q8_0.gguf": (
            LLAMA_CPP,
            "hf:ggml-org/tiny-GGUF",
            "ggml-org/tiny-GGUF",
        ),
    }
    from_manifest = found[llama]
    assert from_manifest is not None and from_manifest.expected_sha256 == sha256_file(llama)
    assert (stats.error_count, index.problems) == (0, [])


def test_oversized_and_odd_metadata_is_counted_not_fatal(home: Path, tmp_path: Path) -> None:
    models = home / ".ollama" / "models"
    write(models / "manifests" / "h" / "n" / "big" / "t", b" " * (MAX_METADATA_BYTES + 1))
    write(models / "manifests" / "h" / "n" / "bad" / "t", b"{]")
    os.mkfifo(models / "manifests" / "h" / "n" / "bad" / "fifo")
    not_a_folder = write(tmp_path / "file-root", b"x")
    roots = [
        StoreRoot(models, OLLAMA),
        StoreRoot(not_a_folder, LLAMA_CPP),
        StoreRoot(tmp_path / "absent", HUGGINGFACE),
    ]
    stats = ScanStats()

    index = load_store_index(roots, stats=stats)

    assert stats.error_count == 2
    assert any("larger than" in e for e in stats.errors)
    assert len(index.problems) == 1


def test_metadata_files_beside_weights_are_read_within_limits(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    write(folder / "config.json", b'{"model_type": "llama"}')
    write(folder / "README.md", b"---\nlicense: mit\n---\n" + b"x" * (1 << 20))
    write(folder / "model.safetensors", b"weights are never read here")
    listing = {str(folder): ["README.md", "config.json", "model.safetensors", "gone.index.json"]}
    stats = ScanStats()

    found = read_metadata_files(metadata_paths(listing), stats=stats)

    assert set(found) == {str(folder / "README.md"), str(folder / "config.json")}
    assert len(found[str(folder / "README.md")]) < (1 << 20)
    assert (stats.error_count, len(stats.errors)) == (1, 1)
