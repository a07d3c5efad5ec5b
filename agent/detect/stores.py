"""Where a model file came from: the on-disk layouts of Ollama, the Hugging Face cache, LM Studio,
GPT4All, Jan and llama.cpp's download cache, turned into `ai.model.store`, `source` and a name.

Pure: agent.sensors.stores reads the stores' small metadata files and symlinks and hands them in.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

OLLAMA = "ollama"
HUGGINGFACE = "huggingface"
LMSTUDIO = "lmstudio"
GPT4ALL = "gpt4all"
JAN = "jan"
LLAMA_CPP = "llama.cpp"
STORES = (OLLAMA, HUGGINGFACE, LMSTUDIO, GPT4ALL, JAN, LLAMA_CPP)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# huggingface_hub's repo_folder_name: "<type>s--" + repo_id with "/" replaced by "--"; the Hub
# forbids "--" inside names, so splitting on it is exact.
_HF_REPO_DIR = re.compile(r"(models|datasets|spaces)--(.+)")
_HF_URL = re.compile(
    r"https?://(?:huggingface\.co|hf\.co)/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/.+"
)
# Ollama's layer media types that hold weights; the rest (template, params, licence, system
# prompt, config) are small text or JSON blobs.
_OLLAMA_WEIGHTS = {
    "application/vnd.ollama.image.model": "model",
    "application/vnd.ollama.image.projector": "projector",
    "application/vnd.ollama.image.adapter": "adapter",
}
_OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
_MAX_NAMES = 64


@dataclass(frozen=True)
class StoreRoot:
    """A folder where one store keeps its models."""

    path: Path
    store: str


@dataclass(frozen=True)
class Provenance:
    """What a store's layout says about one file."""

    store: str  # ai.model.store
    source: str | None  # ai.model.source: "ollama:<host>/<ns>/<model>:<tag>", "hf:<repo>@<rev>"
    name: str | None  # a readable name when the header has none: "llama3.2:1b", "org/repo"
    expected_sha256: str | None  # the digest the layout promises for these bytes
    names: tuple[str, ...] = ()  # every name the store gives these bytes (Ollama tags share blobs)
    role: str | None = None  # Ollama layer role: "model", "projector", "adapter"
    display_path: str | None = None  # the readable path of the same file (HF snapshot over blob)


@dataclass(frozen=True)
class _Named:
    source: str | None
    name: str | None
    expected_sha256: str | None = None


@dataclass(frozen=True)
class _OllamaTag:
    full: str  # registry.ollama.ai/library/llama3.2:1b
    display: str  # llama3.2:1b, as `ollama list` shows it
    role: str


@dataclass(frozen=True)
class _HfRepo:
    kind: str  # models, datasets, spaces
    repo_id: str

    def source(self, revision: str | None) -> str:
        prefix = "" if self.kind == "models" else f"{self.kind}/"
        suffix = f"@{revision}" if revision else ""
        return f"hf:{prefix}{self.repo_id}{suffix}"


def _hf_repo(folder: str) -> _HfRepo | None:
    match = _HF_REPO_DIR.fullmatch(folder)
    if match is None:
        return None
    return _HfRepo(match.group(1), "/".join(match.group(2).split("--")))


def _under(path: str, root: str) -> tuple[str, ...] | None:
    """The parts of `path` below `root`, or None when it is not below it."""
    if path == root:
        return ()
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not path.startswith(prefix):
        return None
    return tuple(part for part in path[len(prefix) :].split(os.sep) if part)


def _norm(path: str | Path) -> str:
    return os.path.normpath(os.fspath(path))


class StoreIndex:
    """Answers `lookup(path)` for files under the store roots it was built from."""

    def __init__(self, roots: Sequence[StoreRoot]) -> None:
        # Longest root first, so that a root nested inside another wins.
        pairs = {_norm(r.path): r for r in reversed(roots)}
        self._roots = sorted(pairs.items(), key=lambda item: -len(item[0]))
        self._ollama: dict[tuple[str, str], list[_OllamaTag]] = {}
        self._hf_refs: dict[str, dict[str, str]] = {}  # repo folder -> commit -> ref name
        self._hf_targets: dict[str, str] = {}  # snapshot path -> blob path
        self._hf_snapshots: dict[str, list[str]] = {}  # blob path -> snapshot paths
        self._jan: dict[str, _Named] = {}  # model folder -> what its model.yml/json says
        self._llama: dict[str, _Named] = {}  # cached file -> its repository
        self.problems: list[str] = []

    def root_of(self, path: str) -> tuple[str, StoreRoot, tuple[str, ...]] | None:
        for root_path, root in self._roots:
            rel = _under(path, root_path)
            if rel is not None:
                return root_path, root, rel
        return None

    def lookup(self, path: str) -> Provenance | None:
        """The store a file belongs to, by its path as the walker yields it; None if none.

        A Hugging Face cache is recognised by its layout anywhere, since `cache_dir=` puts one
        wherever a script likes.
        """
        norm = _norm(path)
        hit = self.root_of(norm)
        if hit is None:
            return self._hf_anywhere(norm)
        root_path, root, rel = hit
        if not rel:
            return None
        if root.store == OLLAMA:
            return self._ollama_lookup(root_path, rel)
        if root.store == HUGGINGFACE:
            repo_dir = os.path.join(root_path, rel[0])
            return self._hf_lookup(repo_dir, rel[0], rel[1:], norm)
        if root.store == JAN:
            return self._jan_lookup(root_path, norm, rel)
        if root.store == LLAMA_CPP:
            found = self._llama.get(norm, _Named(None, None))
            return Provenance(LLAMA_CPP, found.source, found.name, found.expected_sha256)
        return _by_folder(root.store, rel)

    def canonical_path(self, path: str) -> str:
        """The path to report for a file: a Hugging Face blob becomes its snapshot path."""
        found = self.lookup(path)
        return found.display_path if found and found.display_path else path

    # Ollama

    def _ollama_lookup(self, root: str, rel: tuple[str, ...]) -> Provenance:
        digest = _ollama_blob_digest(rel)
        if digest is None:
            return Provenance(OLLAMA, None, None, None)
        tags = self._ollama.get((root, digest), [])
        if not tags:
            return Provenance(OLLAMA, None, None, digest)
        first = tags[0]
        names = tuple(dict.fromkeys(t.display for t in tags))[:_MAX_NAMES]
        return Provenance(
            OLLAMA, f"ollama:{first.full}", first.display, digest, names=names, role=first.role
        )

    def add_ollama_manifest(self, root: str, rel: tuple[str, ...], data: bytes) -> None:
        where = os.path.join(root, *rel)
        if len(rel) != 5 or rel[0] != "manifests":
            self.problems.append(f"{where}: not at manifests/<host>/<namespace>/<model>/<tag>")
            return
        manifest = _json_object(data)
        layers = manifest.get("layers") if manifest else None
        if not isinstance(layers, list):
            self.problems.append(f"{where}: not an Ollama manifest with layers")
            return
        host, namespace, model, tag = rel[1:]
        for layer in layers:
            found = _ollama_layer(layer)
            if found is not None:
                digest, role = found
                entry = _OllamaTag(
                    f"{host}/{namespace}/{model}:{tag}",
                    _ollama_display(host, namespace, model, tag),
                    role,
                )
                tags = self._ollama.setdefault((root, digest), [])
                tags.append(entry)
                tags.sort(key=lambda t: (t.role != "model", t.display))

    # Hugging Face cache

    def _hf_anywhere(self, norm: str) -> Provenance | None:
        parts = norm.split(os.sep)
        for i in range(len(parts) - 3, -1, -1):
            if parts[i + 1] in ("snapshots", "blobs") and _HF_REPO_DIR.fullmatch(parts[i]):
                repo_dir = os.sep.join(parts[: i + 1]) or os.sep
                return self._hf_lookup(repo_dir, parts[i], tuple(parts[i + 1 :]), norm)
        return None

    def _hf_lookup(
        self, repo_dir: str, folder: str, rest: tuple[str, ...], norm: str
    ) -> Provenance:
        repo = _hf_repo(folder)
        if repo is None or len(rest) < 2:
            return Provenance(HUGGINGFACE, None, None, None)
        if rest[0] == "snapshots" and len(rest) >= 3:
            target = self._hf_targets.get(norm)
            etag = os.path.basename(target) if target else None
            return _hf_provenance(repo, rest[1], etag, norm)
        if rest[0] == "blobs" and len(rest) == 2:
            etag = rest[1]
            snapshot = self._preferred_snapshot(repo_dir, self._hf_snapshots.get(norm, []))
            if snapshot is None:
                return Provenance(HUGGINGFACE, repo.source(None), repo.repo_id, _sha(etag))
            revision = _under(snapshot, repo_dir)
            rev = revision[1] if revision and len(revision) > 1 else None
            return _hf_provenance(repo, rev, etag, snapshot)
        return Provenance(HUGGINGFACE, repo.source(None), repo.repo_id, None)

    def _preferred_snapshot(self, repo_dir: str, snapshots: list[str]) -> str | None:
        """A revision a ref points at (main first) over an old one; then the first by name."""
        refs = self._hf_refs.get(repo_dir, {})

        def rank(path: str) -> tuple[bool, bool, str]:
            rel = _under(path, repo_dir) or ()
            ref = refs.get(rel[1]) if len(rel) > 1 else None
            return ref is None, ref != "main", path

        return min(snapshots, key=rank) if snapshots else None

    def add_hf_ref(self, repo_dir: str, ref: str, data: bytes) -> None:
        commit = data.decode("ascii", "replace").strip()
        if not _COMMIT.fullmatch(commit):
            self.problems.append(f"{os.path.join(repo_dir, 'refs', ref)}: not a commit hash")
            return
        self._hf_refs.setdefault(repo_dir, {})[commit] = ref

    def add_hf_link(self, snapshot: str, blob: str) -> None:
        snapshot, blob = _norm(snapshot), _norm(blob)
        self._hf_targets[snapshot] = blob
        self._hf_snapshots.setdefault(blob, []).append(snapshot)

    # Jan, llama.cpp

    def _jan_lookup(self, root: str, norm: str, rel: tuple[str, ...]) -> Provenance:
        folder = os.path.dirname(norm)
        while len(folder) > len(root):
            if folder in self._jan:
                known = self._jan[folder]
                model_id = "/".join(_under(folder, root) or ())
                return Provenance(JAN, f"jan:{model_id}", known.name or model_id, None)
            folder = os.path.dirname(folder)
        if len(rel) < 2:
            return Provenance(JAN, None, None, None)
        return Provenance(JAN, f"jan:{'/'.join(rel[:-1])}", None, None)

    def add_jan_model(self, path: str, data: bytes) -> None:
        meta = _yaml_object(data) if path.endswith(".yml") else _json_object(data)
        if meta is None:
            self.problems.append(f"{path}: not a Jan model description")
            return
        name = meta.get("name") or meta.get("id")
        self._jan[os.path.dirname(path)] = _Named(None, name if isinstance(name, str) else None)

    def add_llama_cpp_json(self, root: str, name: str, data: bytes) -> None:
        meta = _json_object(data)
        if meta is None:
            self.problems.append(f"{os.path.join(root, name)}: not JSON")
        elif name.startswith("manifest="):
            self._llama.update(_llama_manifest(root, name, meta))
        elif isinstance(url := meta.get("url"), str):
            self._llama[os.path.join(root, name[: -len(".json")])] = _download_url(url)


def _by_folder(store: str, rel: tuple[str, ...]) -> Provenance:
    if store == LMSTUDIO and len(rel) >= 3:
        # LM Studio 0.3 (~/.lmstudio/models) and 0.2 (~/.cache/lm-studio/models) both keep
        # <publisher>/<repository>/<file>, the Hugging Face repository the file came from.
        repo = f"{rel[0]}/{rel[1]}"
        return Provenance(LMSTUDIO, f"lmstudio:{repo}", repo, None)
    if store == GPT4ALL:
        # GPT4All 2.x and 3.x download flat into the model folder under the catalogue's file name.
        return Provenance(GPT4ALL, f"gpt4all:{'/'.join(rel)}", None, None)
    return Provenance(store, None, None, None)


def _hf_provenance(repo: _HfRepo, revision: str | None, etag: str | None, path: str) -> Provenance:
    # Blob names are ETags: the sha256 for LFS files, a git sha1 (40 hex) for small ones.
    return Provenance(
        HUGGINGFACE, repo.source(revision), repo.repo_id, _sha(etag), display_path=path
    )


def _sha(text: str | None) -> str | None:
    return text if text is not None and _SHA256.fullmatch(text) else None


def _ollama_blob_digest(rel: tuple[str, ...]) -> str | None:
    # Blobs are blobs/sha256-<hex>; releases before early 2024 wrote "sha256:<hex>", which
    # Windows cannot store. Partial downloads end in "-partial" or "-partial-<n>".
    if len(rel) != 2 or rel[0] != "blobs":
        return None
    name = rel[1]
    if name[:7] in ("sha256-", "sha256:"):
        return _sha(name[7:])
    return None


def _ollama_layer(layer: object) -> tuple[str, str] | None:
    if not isinstance(layer, dict):
        return None
    role = _OLLAMA_WEIGHTS.get(str(layer.get("mediaType")))
    digest = layer.get("digest")
    if role is None or not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    hexdigest = _sha(digest[7:])
    return (hexdigest, role) if hexdigest else None


def _ollama_display(host: str, namespace: str, model: str, tag: str) -> str:
    """The shortest name Ollama accepts for the model, as `ollama list` prints it."""
    if host != _OLLAMA_DEFAULT_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace != "library":
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def _llama_manifest(root: str, name: str, meta: dict[str, object]) -> dict[str, _Named]:
    """llama.cpp's `-hf` downloads (2025 releases): manifest=<owner>=<repo>=<tag>.json is the
    Hub's manifest for the tag; each file it names is cached as <owner>_<repo>_<file>, with
    "/" in the file's path turned into "_" (common/arg.cpp, later hf-cache.cpp's migration)."""
    parts = name[: -len(".json")].split("=")
    if len(parts) != 4 or not parts[1] or not parts[2]:
        return {}
    owner, repo = parts[1], parts[2]
    found: dict[str, _Named] = {}
    for key in ("ggufFile", "mmprojFile"):
        node = meta.get(key)
        if not isinstance(node, dict) or not isinstance(node.get("rfilename"), str):
            continue
        lfs = node.get("lfs")
        digest = lfs.get("sha256") if isinstance(lfs, dict) else None
        cached = f"{owner}_{repo}_{node['rfilename']}".replace("/", "_")
        found[os.path.join(root, cached)] = _Named(
            f"hf:{owner}/{repo}",
            f"{owner}/{repo}",
            _sha(digest) if isinstance(digest, str) else None,
        )
    return found


def _download_url(url: str) -> _Named:
    """llama.cpp 2024 releases kept <file>.json beside a download: {"url", "etag", ...}."""
    match = _HF_URL.fullmatch(url)
    if match:
        kind = f"{match.group(1)}/" if match.group(1) else ""
        rev = match.group(3)
        suffix = f"@{rev}" if _COMMIT.fullmatch(rev) else ""
        return _Named(f"hf:{kind}{match.group(2)}{suffix}", match.group(2))
    parts = urlsplit(url)
    # Never the query or user info: signed URLs carry credentials there.
    host = parts.hostname or ""
    return _Named(f"{parts.scheme}://{host}{parts.path}" if host else None, None)


def _json_object(data: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _yaml_object(data: bytes) -> dict[str, object] | None:
    try:
        value = yaml.safe_load(data)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def wants_metadata(root: StoreRoot, rel: Sequence[str]) -> bool:
    """Whether the file at `rel` below a root is one of the small files `build_index` reads."""
    if root.store == OLLAMA:
        return len(rel) == 5 and rel[0] == "manifests"
    if root.store == HUGGINGFACE:
        return len(rel) >= 3 and rel[1] == "refs" and _hf_repo(rel[0]) is not None
    if root.store == JAN:
        return len(rel) >= 2 and rel[-1] in ("model.yml", "model.json")
    if root.store == LLAMA_CPP:
        return len(rel) == 1 and rel[0].endswith(".json")
    return False


def descends(root: StoreRoot, rel: Sequence[str]) -> bool:
    """Whether the sensor should list the folder at `rel` below a root for metadata or links."""
    if root.store == OLLAMA:
        return not rel or (rel[0] == "manifests" and len(rel) <= 4)
    if root.store == HUGGINGFACE:
        if not rel:
            return True
        if _hf_repo(rel[0]) is None:
            return False
        return len(rel) == 1 or (rel[1] in ("refs", "snapshots") and len(rel) <= 16)
    if root.store == JAN:
        # Jan 0.6: <data>/llamacpp/models/<id>/ where an id may hold one "/"; legacy
        # ~/jan/models/<id>/.
        return len(rel) <= 3
    return root.store == LLAMA_CPP and not rel


def is_snapshot_link(root: StoreRoot, rel: Sequence[str]) -> bool:
    """Whether a symlink at `rel` is a Hugging Face snapshot entry whose target names a blob."""
    return root.store == HUGGINGFACE and len(rel) >= 4 and rel[1] == "snapshots"


def build_index(
    roots: Sequence[StoreRoot],
    files: Mapping[str, bytes],
    links: Mapping[str, str] | None = None,
) -> StoreIndex:
    """An index over the stores' metadata: `files` are the small files `wants_metadata` asked
    for, by absolute path; `links` maps each snapshot symlink to the blob path it resolves to."""
    index = StoreIndex(roots)
    for path, data in sorted(files.items()):
        hit = index.root_of(_norm(path))
        if hit is None:
            continue
        root_path, root, rel = hit
        if not wants_metadata(root, rel):
            continue
        if root.store == OLLAMA:
            index.add_ollama_manifest(root_path, rel, data)
        elif root.store == HUGGINGFACE:
            index.add_hf_ref(os.path.join(root_path, rel[0]), "/".join(rel[2:]), data)
        elif root.store == JAN:
            index.add_jan_model(_norm(path), data)
        elif root.store == LLAMA_CPP:
            index.add_llama_cpp_json(root_path, rel[0], data)
    for snapshot, blob in sorted((links or {}).items()):
        index.add_hf_link(snapshot, blob)
    return index
