"""Files that together are one model (sharded sets, GGUF splits, ONNX external data), folders that
are one model (TensorFlow SavedModel, CoreML .mlpackage), partial downloads, and the folder
metadata (config.json, model card) that applies to the weights beside it.

Pure: a directory listing and the bytes of a few small files in, groups out.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agent.detect.hfconfig import (
    MAX_CARD_CHARS,
    MAX_CONFIG_BYTES,
    CardInfo,
    ConfigInfo,
    card_text,
    load_json,
    parse_config,
    parse_genai_config,
    parse_model_card,
    parse_quantize_config,
)
from agent.detect.merge import apply_folder_metadata as apply_folder_metadata
from agent.detect.merge import merge_infos as merge_infos
from agent.detect.quantconfig import scheme_of_quantize_config
from agent.errors import FormatError

MAX_INDEX_BYTES = 16 << 20
MAX_SHARDS = 10_000
_METADATA_LIMITS = {
    "config.json": MAX_CONFIG_BYTES,
    "adapter_config.json": MAX_CONFIG_BYTES,
    "quantize_config.json": MAX_CONFIG_BYTES,
    "genai_config.json": MAX_CONFIG_BYTES,
    "README.md": MAX_CARD_CHARS,
    "Manifest.json": MAX_CONFIG_BYTES,
}
# <stem>-00001-of-00004.<ext>: transformers' shards and llama.cpp's gguf-split (%s-%05d-of-%05d).
_SPLIT = re.compile(r"(?P<stem>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.(?P<ext>gguf|safetensors|bin)")
_SPLIT_FORMATS = {"gguf": "gguf", "safetensors": "safetensors", "bin": "pytorch"}
# Downloads in progress: browsers (.part, .crdownload, .download), huggingface_hub
# (blobs/<etag>.incomplete), llama.cpp (.downloadInProgress), tools writing <name>.tmp then
# renaming, Ollama (blobs/sha256-<hex>-partial[-<n>]) and GPT4All (incomplete-<file>).
_PARTIAL_SUFFIXES = (
    ".part",
    ".partial",
    ".incomplete",
    ".tmp",
    ".crdownload",
    ".download",
    ".downloadinprogress",
)
_OLLAMA_PARTIAL = re.compile(r"sha256[-:][0-9a-f]{64}-partial(-\d+)?")
_WEIGHT_EXTENSIONS = frozenset(
    {
        ".gguf",
        ".ggml",
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".ckpt",
        ".onnx",
        ".h5",
        ".hdf5",
        ".keras",
        ".tflite",
        ".mlmodel",
        ".npz",
        ".npy",
        ".pkl",
        ".pickle",
        ".joblib",
        ".llamafile",
        ".msgpack",
    }
)
_ONNX_DATA_SUFFIXES = ("_data", ".data")


@dataclass(frozen=True)
class ModelGroup:
    """One model made of `members` (absolute paths), reported once under `path`.

    `format` is set for folder models (tf_savedmodel, coreml) and, as a hint from the names,
    for file sets; the members' own ModelInfo, merged with `merge_infos`, is authoritative. A
    `partial` group is a download in progress or a set with `missing` members: report it as
    partial, never as a model.
    """

    path: str
    format: str | None
    members: tuple[str, ...]
    config: ConfigInfo | None = None
    card: CardInfo | None = None
    partial: bool = False
    missing: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def is_partial_download(name: str) -> bool:
    """Whether a file name marks a download that has not finished."""
    lower = name.lower()
    return (
        lower.endswith(_PARTIAL_SUFFIXES)
        or lower.startswith("incomplete-")
        or _OLLAMA_PARTIAL.fullmatch(lower) is not None
    )


def metadata_limit(name: str) -> int | None:
    """How many bytes of a small metadata file to read; None for files grouping does not read."""
    if name.endswith(".index.json"):
        return MAX_INDEX_BYTES
    return _METADATA_LIMITS.get(name)


def metadata_paths(dir_listing: Mapping[str, Sequence[str]]) -> list[str]:
    """The small files `group_model_files` wants to see, to be read up to `metadata_limit`."""
    return sorted(
        os.path.join(folder, name)
        for folder, names in dir_listing.items()
        for name in names
        if metadata_limit(name) is not None
    )


def _weights_name(name: str) -> bool:
    return os.path.splitext(name.lower())[1] in _WEIGHT_EXTENSIONS


def _strip_partial(name: str) -> str:
    lower = name.lower()
    for suffix in _PARTIAL_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name.removeprefix("incomplete-")


@dataclass(frozen=True)
class _FolderMeta:
    config: ConfigInfo | None = None
    card: CardInfo | None = None
    problems: tuple[str, ...] = ()


class _Grouper:
    def __init__(
        self,
        listing: Mapping[str, Sequence[str]],
        files: Mapping[str, bytes],
        models: Collection[str] | None,
        companions: Mapping[str, Sequence[str]],
    ) -> None:
        self.listing = {os.path.normpath(k): v for k, v in listing.items()}
        self.files = {os.path.normpath(k): v for k, v in files.items()}
        self.models = {os.path.normpath(m) for m in models} if models is not None else None
        self.companions = {os.path.normpath(k): v for k, v in companions.items()}
        self.folders = sorted(self.listing)
        self.consumed: set[str] = set()
        self.groups: list[ModelGroup] = []
        self.metadata: dict[str, _FolderMeta] = {}

    def file_names(self, folder: str) -> list[str]:
        """Names of the files (not sub-folders) in a folder."""
        names = self.listing.get(folder, ())
        return sorted(n for n in set(names) if os.path.join(folder, n) not in self.listing)

    def files_below(self, folder: str) -> list[str]:
        """Every file in the folder and its sub-folders; the sorted keys keep this a range."""
        prefix = folder.rstrip(os.sep) + os.sep
        start = bisect.bisect_left(self.folders, folder)
        found: list[str] = []
        for sub in itertools.islice(self.folders, start, None):
            if sub != folder and not sub.startswith(prefix):
                # Sorted order puts "a-b" between "a" and "a/b"; step over such siblings.
                if sub > prefix:
                    break
                continue
            found.extend(os.path.join(sub, n) for n in self.file_names(sub))
        return sorted(found)

    def add(self, group: ModelGroup) -> None:
        self.groups.append(group)
        self.consumed.update(group.members)

    def free(self, path: str) -> bool:
        return path not in self.consumed


def group_model_files(
    dir_listing: Mapping[str, Sequence[str]],
    index_files: Mapping[str, bytes],
    *,
    models: Collection[str] | None = None,
    companions: Mapping[str, Sequence[str]] | None = None,
) -> list[ModelGroup]:
    """Group a scan's files into models.

    `dir_listing` maps each folder to the names in it (sub-folders may be listed too);
    `index_files` holds the bytes of `metadata_paths(dir_listing)`. `models` are the paths
    identified as models by content: each one not in a set becomes a group of its own with its
    folder's metadata. `companions` maps a model path to the names its ModelInfo says it needs.
    Every path lands in at most one group.
    """
    g = _Grouper(dir_listing, index_files, models, companions or {})
    for folder in sorted(g.listing):
        _folder_model(g, folder)
    for folder in sorted(g.listing):
        _file_sets(g, folder)
    return sorted(g.groups, key=lambda group: group.path)


def _folder_model(g: _Grouper, folder: str) -> None:
    """A SavedModel or .mlpackage folder is one model; its files are not reported apart."""
    names = set(g.listing[folder])
    has_variables = "variables" in names or os.path.join(folder, "variables") in g.listing
    if names & {"saved_model.pb", "saved_model.pbtxt"} and has_variables:
        members = [p for p in g.files_below(folder) if g.free(p)]
        if members:
            g.add(ModelGroup(folder, "tf_savedmodel", tuple(members)))
        return
    manifest = g.files.get(os.path.join(folder, "Manifest.json"))
    root_model = _mlpackage_root(manifest) if manifest is not None else None
    if root_model is None:
        return
    members = [p for p in g.files_below(folder) if g.free(p)]
    expected = os.path.join(folder, "Data", *root_model.split("/"))
    missing = () if expected in members else (expected,)
    if members:
        g.add(ModelGroup(folder, "coreml", tuple(members), partial=bool(missing), missing=missing))


def _mlpackage_root(data: bytes) -> str | None:
    """The root model's path inside Data/, from a CoreML package's Manifest.json."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("itemInfoEntries"), dict):
        return None
    entry = manifest["itemInfoEntries"].get(manifest.get("rootModelIdentifier"))
    path = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(path, str) or ".." in path.split("/") or path.startswith("/"):
        return None
    return path


def _file_sets(g: _Grouper, folder: str) -> None:
    names = [n for n in g.file_names(folder) if g.free(os.path.join(folder, n))]
    if not names:
        return
    meta = _folder_metadata(g, folder)
    _partials(g, folder, names)
    _indexed_sets(g, folder, names, meta)
    _companion_sets(g, folder, names, meta)
    _split_sets(g, folder, names, meta)
    for name in names:
        path = os.path.join(folder, name)
        if g.models is not None and path in g.models and g.free(path):
            g.add(ModelGroup(path, None, (path,), meta.config, meta.card, problems=meta.problems))


def _partials(g: _Grouper, folder: str, names: list[str]) -> None:
    for name in names:
        path = os.path.join(folder, name)
        if not is_partial_download(name) or not g.free(path):
            continue
        known = g.models is not None and path in g.models
        if known or _weights_name(_strip_partial(name)) or _OLLAMA_PARTIAL.fullmatch(name):
            g.add(ModelGroup(path, None, (path,), partial=True))


def _indexed_sets(g: _Grouper, folder: str, names: list[str], meta: _FolderMeta) -> None:
    """transformers' <weights>.index.json: a weight_map from tensor names to shard files."""
    for name in names:
        data = g.files.get(os.path.join(folder, name))
        if not name.endswith(".index.json") or data is None:
            continue
        shards = _weight_map_files(data)
        if shards is None:
            continue
        ext = name[: -len(".index.json")].rsplit(".", 1)[-1]
        fmt = "safetensors" if ext == "safetensors" else "pytorch" if ext in ("bin", "pt") else None
        _add_set(
            g, os.path.join(folder, name), fmt, [os.path.join(folder, s) for s in shards], meta
        )


def _weight_map_files(data: bytes) -> list[str] | None:
    try:
        index = json.loads(data)
    except (ValueError, RecursionError):
        return None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        return None
    shards = {v for v in weight_map.values() if isinstance(v, str) and _inside(v)}
    return sorted(shards)[:MAX_SHARDS] if shards else None


def _inside(relative: str) -> bool:
    """A name from an untrusted index must stay in its folder."""
    parts = relative.replace("\\", "/").split("/")
    # "." or an empty part would name the folder itself, ".." a folder above it.
    return (
        bool(relative) and not relative.startswith(("/", "\\")) and not {"", ".", ".."} & set(parts)
    )


def _companion_sets(g: _Grouper, folder: str, names: list[str], meta: _FolderMeta) -> None:
    """A model and the files it names (ONNX external data); without a parser's list, the
    conventional <model>.onnx_data and <model>.onnx.data."""
    for name in names:
        path = os.path.join(folder, name)
        if not g.free(path):
            continue
        needed = g.companions.get(path)
        if needed is None and name.lower().endswith(".onnx"):
            needed = [
                n for n in names if n.startswith(name) and n[len(name) :] in _ONNX_DATA_SUFFIXES
            ]
        needed = [n for n in needed or () if _inside(n)][:MAX_SHARDS]
        if needed:
            others = [os.path.normpath(os.path.join(folder, n)) for n in needed]
            _add_set(g, path, None, [path, *others], meta)


def _split_sets(g: _Grouper, folder: str, names: list[str], meta: _FolderMeta) -> None:
    """Shards named <stem>-00001-of-0000N without an index: the numbering says what is missing."""
    sets: set[tuple[str, str, str]] = set()
    for name in names:
        match = _SPLIT.fullmatch(name)
        if match and g.free(os.path.join(folder, name)):
            sets.add((match["stem"], match["n"], match["ext"]))
    for stem, total, ext in sorted(sets):
        count = int(total)
        if not 1 <= count <= MAX_SHARDS:
            continue
        expected = [f"{stem}-{i:05d}-of-{total}.{ext}" for i in range(1, count + 1)]
        members = [os.path.join(folder, n) for n in expected]
        _add_set(g, members[0], _SPLIT_FORMATS[ext], members, meta, path_if_present=True)


def _add_set(
    g: _Grouper,
    path: str,
    fmt: str | None,
    members: list[str],
    meta: _FolderMeta,
    *,
    path_if_present: bool = False,
) -> None:
    present = [m for m in members if _exists(g, m) and g.free(m)]
    missing = tuple(m for m in members if not _exists(g, m))
    if not present:
        return
    if path_if_present and path not in present:
        path = present[0]
    group = ModelGroup(path, fmt, tuple(present), meta.config, meta.card, problems=meta.problems)
    g.add(dataclasses.replace(group, partial=bool(missing), missing=missing))


def _exists(g: _Grouper, path: str) -> bool:
    folder, name = os.path.split(path)
    return name in g.listing.get(folder, ())


def _folder_metadata(g: _Grouper, folder: str) -> _FolderMeta:
    """config.json and README.md of the folder, else of its parent (a repository's onnx/ or
    gguf/ sub-folder shares the repository's files)."""
    if folder not in g.metadata:
        g.metadata[folder] = _read_folder_metadata(g, folder)
    return g.metadata[folder]


def _read_folder_metadata(g: _Grouper, folder: str) -> _FolderMeta:
    problems: list[str] = []
    for where in (folder, os.path.dirname(folder)):
        config = _config(g, where, problems)
        card = _card(g, where, problems)
        if config is not None or card is not None:
            return _FolderMeta(config, card, tuple(problems))
    return _FolderMeta(problems=tuple(problems))


_CONFIG_PARSERS = (
    ("config.json", parse_config),
    ("adapter_config.json", parse_config),
    ("genai_config.json", parse_genai_config),
)


def _config(g: _Grouper, folder: str, problems: list[str]) -> ConfigInfo | None:
    found: ConfigInfo | None = None
    for name, parse in _CONFIG_PARSERS:
        data = g.files.get(os.path.join(folder, name))
        if data is None:
            continue
        try:
            info = parse(data)
        except FormatError as e:
            problems.append(f"{os.path.join(folder, name)}: {e}")
            continue
        if info.is_model:
            found = _merge_configs(found, info)
    quantize = g.files.get(os.path.join(folder, "quantize_config.json"))
    if found is not None and quantize is not None and not (found.quantization and found.scheme):
        try:
            found = _with_quantize_config(found, quantize)
        except FormatError as e:
            problems.append(f"{os.path.join(folder, 'quantize_config.json')}: {e}")
    return found


def _with_quantize_config(config: ConfigInfo, data: bytes) -> ConfigInfo:
    """AutoGPTQ's quantize_config.json fills what config.json's quantization_config left out."""
    scheme = scheme_of_quantize_config(load_json("hf-quantize-config", data, MAX_CONFIG_BYTES))
    return dataclasses.replace(
        config,
        quantization=config.quantization or parse_quantize_config(data),
        scheme=config.scheme or scheme,
    )


def _merge_configs(base: ConfigInfo | None, extra: ConfigInfo) -> ConfigInfo:
    if base is None:
        return extra
    changes = {
        f.name: getattr(extra, f.name)
        for f in dataclasses.fields(base)
        if getattr(base, f.name) in (None, False)
    }
    return dataclasses.replace(base, **changes)


def _card(g: _Grouper, folder: str, problems: list[str]) -> CardInfo | None:
    data = g.files.get(os.path.join(folder, "README.md"))
    if data is None:
        return None
    try:
        card = parse_model_card(card_text(data))
    except FormatError as e:
        problems.append(f"{os.path.join(folder, 'README.md')}: {e}")
        return None
    return card if card != CardInfo() else None
