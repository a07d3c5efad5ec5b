"""Fold groups: near-duplicate programs are held out together, and groups are dealt into folds
so that each fold holds both labels. Pure: program names in, fold numbers out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

# Programs whose work is done by the same runtime build, or that are copies of one program: a
# model that saw one of them has as good as seen the others, so a split that separates them
# grades it on what it trained on. Same runtime on another OS is a different build (other
# libraries, other features) and stays apart.
NEAR_DUPLICATES: Mapping[str, tuple[tuple[str, ...], str]] = {
    "node-llama-cpp (Linux)": (
        (
            "node-llama-cpp-server",
            "node-llama-cpp-8080",
            "node-llama-cpp-generate",
            "node-llama-cpp-idle",
            "llama-renamed-binary",
        ),
        "one prebuilt llama.cpp addon behind node; the renamed copy is the same node and addon",
    ),
    "libtorch (Linux)": (
        (
            "torchscript-loop",
            "torch-http-8000",
            "torch-notebook-idle",
            "transformers-generate",
            "transformers-chat-7860",
            "transformers-embeddings-5000",
            "keras-predict",
        ),
        "one torch wheel under every front end: scripts, servers, transformers, Keras's torch "
        "backend",
    ),
    "onnxruntime (Linux)": (
        ("ort-batch-scoring", "ort-embedded-idle", "ort-http-unusual-port"),
        "one onnxruntime wheel behind a batch job, an idle app and a server",
    ),
    "llama.cpp (macOS)": (
        ("llama-server-macos", "lmstudio-macos", "ollama-runner-macos"),
        "llama.cpp behind three front ends; LM Studio ships the same libggml/libllama dylibs",
    ),
    "llama.cpp (Windows)": (
        ("llama-server-windows", "lmstudio-windows", "ollama-runner-windows"),
        "llama.cpp behind three front ends (ggml.dll and llama.dll)",
    ),
    "GCC (Linux)": (
        ("gcc-compile", "g++-compile", "make-build"),
        "cc1 and cc1plus of one GCC; make's rows are the cc1 it starts",
    ),
    "numpy (Linux)": (
        ("numpy-matrix-job", "sklearn-fit", "python-big-arrays"),
        "CPython with numpy on OpenBLAS; scikit-learn works through the same libraries",
    ),
    "python http.server (Linux)": (
        ("python-http-server", "python-http-server-8000"),
        "one program on two ports",
    ),
    "node (Linux)": (
        ("node-web-3000", "node-crunch"),
        "one node binary behind two scripts",
    ),
}

_GROUP_OF = {p: group for group, (programs, _) in NEAR_DUPLICATES.items() for p in programs}


def group_of(program: str) -> str:
    """The fold group of a program: its near-duplicate set, or the program alone."""
    return _GROUP_OF.get(program, program)


def _hash(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def deal(groups: Sequence[str], labels: Sequence[int], folds: int) -> dict[str, int]:
    """Each group's fold. Groups of each label are dealt largest first (ties by a hash of the
    name) to the fold holding the fewest rows of that label, so that every fold holds both
    labels while there are enough groups, and no fold is mostly one large group's rows."""
    rows: dict[str, int] = {}
    label: dict[str, int] = {}
    for group, y in zip(groups, labels, strict=True):
        rows[group] = rows.get(group, 0) + 1
        label[group] = max(label.get(group, 0), y)  # a group is one label; inference wins
    found: dict[str, int] = {}
    for wanted in (1, 0):
        load = [0] * folds
        members = [g for g in rows if label[g] == wanted]
        for group in sorted(members, key=lambda g: (-rows[g], _hash(g))):
            fold = min(range(folds), key=lambda f: (load[f], f))
            found[group] = fold
            load[fold] += rows[group]
    return found
