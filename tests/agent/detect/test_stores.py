"""Store layouts to provenance, on values: paths, metadata bytes and snapshot links.

The layouts follow each tool's source: Ollama server/modelpath.go and types/model/name.go,
huggingface_hub file_download.py, llama.cpp common/arg.cpp and hf-cache.cpp, Jan's llamacpp
extension (model.yml) and 0.4 model.json, LM Studio's and GPT4All's documented model folders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

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
    build_index,
    descends,
    wants_metadata,
)

HOME = Path(os.sep, "home", "dev")
OLLAMA_ROOT = HOME / ".ollama" / "models"
HUB = HOME / ".cache" / "huggingface" / "hub"
LLAMA = HOME / ".cache" / "llama.cpp"
LMS = HOME / ".lmstudio" / "models"
GPT = HOME / ".local" / "share" / "nomic.ai" / "GPT4All"
JAN_ROOT = HOME / ".local" / "share" / "Jan" / "data" / "llamacpp" / "models"
ROOTS = [
    StoreRoot(OLLAMA_ROOT, OLLAMA),
    StoreRoot(HUB, HUGGINGFACE),
    StoreRoot(LLAMA, LLAMA_CPP),
    StoreRoot(LMS, LMSTUDIO),
    StoreRoot(GPT, GPT4ALL),
    StoreRoot(JAN_ROOT, JAN),
]
WEIGHTS = "1" * 64
PROJECTOR = "2" * 64
TEMPLATE = "3" * 64
REV = "a" * 40
OLD_REV = "b" * 40


def manifest(*layers: tuple[str, str]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json"},
            "layers": [
                {"mediaType": f"application/vnd.ollama.image.{kind}", "digest": f"sha256:{d}"}
                for kind, d in layers
            ],
        }
    ).encode()


def tag_path(host: str, namespace: str, model: str, tag: str) -> str:
    return str(OLLAMA_ROOT / "manifests" / host / namespace / model / tag)


def test_ollama_blob_is_named_by_every_tag_that_uses_it() -> None:
    layers = manifest(("model", WEIGHTS), ("template", TEMPLATE))
    files = {
        tag_path("registry.ollama.ai", "library", "llama3.2", "latest"): layers,
        tag_path("registry.ollama.ai", "library", "llama3.2", "1b"): layers,
        tag_path("hf.co", "bartowski", "Llama-3.2-1B-GGUF", "Q4_K_M"): layers,
        tag_path("registry.ollama.ai", "alice", "mine", "v1"): layers,
    }
    index = build_index(ROOTS, files)

    found = index.lookup(str(OLLAMA_ROOT / "blobs" / f"sha256-{WEIGHTS}"))

    assert found == Provenance(
        store=OLLAMA,
        source="ollama:registry.ollama.ai/alice/mine:v1",
        name="alice/mine:v1",
        expected_sha256=WEIGHTS,
        names=(
            "alice/mine:v1",
            "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M",
            "llama3.2:1b",
            "llama3.2:latest",
        ),
        role="model",
    )
    assert index.problems == []


def test_ollama_projector_and_orphan_blobs() -> None:
    files = {
        tag_path("registry.ollama.ai", "library", "llava", "7b"): manifest(
            ("model", WEIGHTS), ("projector", PROJECTOR)
        )
    }
    index = build_index(ROOTS, files)

    projector = index.lookup(str(OLLAMA_ROOT / "blobs" / f"sha256-{PROJECTOR}"))
    orphan = index.lookup(str(OLLAMA_ROOT / "blobs" / f"sha256:{TEMPLATE}"))
    partial = index.lookup(str(OLLAMA_ROOT / "blobs" / f"sha256-{WEIGHTS}-partial-0"))

    assert projector is not None and (projector.name, projector.role) == ("llava:7b", "projector")
    assert orphan == Provenance(OLLAMA, None, None, TEMPLATE)
    assert partial == Provenance(OLLAMA, None, None, None)


def test_broken_ollama_manifests_are_problems() -> None:
    files = {
        tag_path("registry.ollama.ai", "library", "x", "1"): b"{not json",
        tag_path("registry.ollama.ai", "library", "y", "1"): b'{"layers": "none"}',
        str(OLLAMA_ROOT / "manifests" / "stray"): b"{}",
    }
    index = build_index(ROOTS, files)

    assert len(index.problems) == 2  # the stray file is not a manifest path, so never read
    assert index.lookup(str(OLLAMA_ROOT / "blobs" / f"sha256-{WEIGHTS}")) == Provenance(
        OLLAMA, None, None, WEIGHTS
    )


def hf_index(links: dict[str, str] | None = None) -> tuple[Path, StoreIndex]:
    repo = HUB / "models--meta-llama--Llama-3.2-1B"
    files = {str(repo / "refs" / "main"): REV.encode() + b"\n"}
    default_links = {
        str(repo / "snapshots" / REV / "model.safetensors"): str(repo / "blobs" / WEIGHTS),
        str(repo / "snapshots" / OLD_REV / "model.safetensors"): str(repo / "blobs" / WEIGHTS),
        str(repo / "snapshots" / REV / "config.json"): str(repo / "blobs" / ("c" * 40)),
    }
    return repo, build_index(ROOTS, files, default_links if links is None else links)


def test_hf_snapshot_names_repo_and_revision_and_promises_the_lfs_sha256() -> None:
    repo, index = hf_index()
    snapshot = str(repo / "snapshots" / REV / "model.safetensors")

    found = index.lookup(snapshot)

    assert found == Provenance(
        HUGGINGFACE,
        f"hf:meta-llama/Llama-3.2-1B@{REV}",
        "meta-llama/Llama-3.2-1B",
        WEIGHTS,
        display_path=snapshot,
    )


def test_hf_small_file_blob_is_a_git_sha1_not_a_sha256() -> None:
    repo, index = hf_index()
    found = index.lookup(str(repo / "snapshots" / REV / "config.json"))
    assert found is not None and found.expected_sha256 is None


def test_hf_blob_resolves_to_the_snapshot_main_points_at() -> None:
    repo, index = hf_index()
    blob = str(repo / "blobs" / WEIGHTS)

    found = index.lookup(blob)

    assert found is not None
    assert found.source == f"hf:meta-llama/Llama-3.2-1B@{REV}"
    assert found.display_path == str(repo / "snapshots" / REV / "model.safetensors")
    assert index.canonical_path(blob) == found.display_path


def test_hf_blob_without_links_still_names_the_repo() -> None:
    repo, index = hf_index(links={})
    found = index.lookup(str(repo / "blobs" / WEIGHTS))
    assert found == Provenance(
        HUGGINGFACE, "hf:meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B", WEIGHTS
    )


def test_hf_cache_is_recognised_outside_the_known_roots() -> None:
    """from_pretrained(cache_dir=...) puts the same layout anywhere."""
    index = build_index(ROOTS, {})
    path = os.path.join(os.sep, "srv", "cache", "datasets--org--set", "snapshots", REV, "x.npz")

    found = index.lookup(path)

    assert found is not None
    assert (found.store, found.source, found.name) == (
        HUGGINGFACE,
        f"hf:datasets/org/set@{REV}",
        "org/set",
    )
    assert index.lookup(os.path.join(os.sep, "srv", "models--x", "notes", "a")) is None


def test_hf_bad_ref_is_a_problem() -> None:
    index = build_index(ROOTS, {str(HUB / "models--a--b" / "refs" / "main"): b"not a sha"})
    assert len(index.problems) == 1


def test_lmstudio_and_gpt4all_name_by_folder() -> None:
    index = build_index(ROOTS, {})
    lms = index.lookup(str(LMS / "lmstudio-community" / "Qwen2.5-7B-Instruct-GGUF" / "q.gguf"))
    loose = index.lookup(str(LMS / "loose.gguf"))
    gpt = index.lookup(str(GPT / "Meta-Llama-3-8B-Instruct.Q4_0.gguf"))

    assert lms == Provenance(
        LMSTUDIO,
        "lmstudio:lmstudio-community/Qwen2.5-7B-Instruct-GGUF",
        "lmstudio-community/Qwen2.5-7B-Instruct-GGUF",
        None,
    )
    assert loose == Provenance(LMSTUDIO, None, None, None)
    assert gpt == Provenance(GPT4ALL, "gpt4all:Meta-Llama-3-8B-Instruct.Q4_0.gguf", None, None)


def test_jan_model_yml_and_legacy_model_json() -> None:
    yml = JAN_ROOT / "unsloth" / "gemma-3-1b" / "model.yml"
    legacy = JAN_ROOT / "tinyllama-1.1b" / "model.json"
    files = {
        str(yml): b"model_path: llamacpp/models/unsloth/gemma-3-1b/model.gguf\nname: Gemma 3 1B\n",
        str(legacy): json.dumps({"id": "tinyllama-1.1b", "object": "model"}).encode(),
    }
    index = build_index(ROOTS, files)

    assert index.lookup(str(yml.parent / "model.gguf")) == Provenance(
        JAN, "jan:unsloth/gemma-3-1b", "Gemma 3 1B", None
    )
    assert index.lookup(str(legacy.parent / "tinyllama.gguf")) == Provenance(
        JAN, "jan:tinyllama-1.1b", "tinyllama-1.1b", None
    )
    assert index.lookup(str(JAN_ROOT / "other" / "m.gguf")) == Provenance(
        JAN, "jan:other", None, None
    )


def test_llama_cpp_manifest_maps_cached_files_to_their_repository() -> None:
    digest = "d" * 64
    node = {"rfilename": "sub/Llama-3.2-1B-Q4_K_M.gguf", "lfs": {"sha256": digest, "size": 1}}
    files = {
        str(LLAMA / "manifest=bartowski=Llama-3.2-1B-GGUF=Q4_K_M.json"): json.dumps(
            {"ggufFile": node}
        ).encode(),
        str(LLAMA / "old.gguf.json"): json.dumps(
            {"url": f"https://huggingface.co/org/repo/resolve/{REV}/old.gguf", "etag": "x"}
        ).encode(),
        str(LLAMA / "web.gguf.json"): b'{"url": "https://user:pw@example.com/m/web.gguf?sig=1"}',
    }
    index = build_index(ROOTS, files)

    cached = LLAMA / "bartowski_Llama-3.2-1B-GGUF_sub_Llama-3.2-1B-Q4_K_M.gguf"
    assert index.lookup(str(cached)) == Provenance(
        LLAMA_CPP, "hf:bartowski/Llama-3.2-1B-GGUF", "bartowski/Llama-3.2-1B-GGUF", digest
    )
    assert index.lookup(str(LLAMA / "old.gguf")) == Provenance(
        LLAMA_CPP, f"hf:org/repo@{REV}", "org/repo", None
    )
    web = index.lookup(str(LLAMA / "web.gguf"))
    assert web is not None and web.source == "https://example.com/m/web.gguf"
    assert index.lookup(str(LLAMA / "unknown.gguf")) == Provenance(LLAMA_CPP, None, None, None)


def test_nested_root_wins_and_outside_paths_have_no_store() -> None:
    roots = [StoreRoot(HOME, LMSTUDIO), StoreRoot(GPT, GPT4ALL)]
    index = build_index(roots, {})
    found = index.lookup(str(GPT / "m.gguf"))
    assert found is not None and found.store == GPT4ALL
    assert index.lookup(os.path.join(os.sep, "opt", "m.gguf")) is None


def test_metadata_plan_reads_only_small_files() -> None:
    ollama, hf, lms = ROOTS[0], ROOTS[1], ROOTS[3]
    assert wants_metadata(ollama, ("manifests", "h", "n", "m", "t"))
    assert not wants_metadata(ollama, ("blobs", f"sha256-{WEIGHTS}"))
    assert not descends(ollama, ("blobs",))
    assert wants_metadata(hf, ("models--a--b", "refs", "main"))
    assert descends(hf, ("models--a--b", "snapshots"))
    assert not descends(hf, ("models--a--b", "blobs"))
    assert not descends(lms, ())


paths = st.lists(
    st.sampled_from(["blobs", "snapshots", "manifests", "refs", "models--a--b", REV, ".."])
    | st.text(min_size=1, max_size=8).filter(lambda s: os.sep not in s),
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ROOTS),
    paths,
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["url", "ggufFile", "layers", "name", "id"]), st.text()),
)
def test_any_metadata_and_path_never_fails(
    root: StoreRoot, rel: list[str], data: bytes, obj: dict[str, str]
) -> None:
    path = os.path.join(root.path, *rel)
    files = {path: data, path + "x": json.dumps(obj).encode()}
    for name in ("manifest=a=b=c.json", "z.json"):
        files[os.path.join(LLAMA, name)] = data
    index = build_index(ROOTS, files, {path: path})

    for candidate in (path, path + "x", str(OLLAMA_ROOT / "blobs" / f"sha256-{WEIGHTS}")):
        index.lookup(candidate)
        index.canonical_path(candidate)
