"""Each OS's model store roots and excludes, from Platform values built on fake homes and
environments; nothing here reads the machine's own environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.detect.stores import GPT4ALL, HUGGINGFACE, JAN, LLAMA_CPP, LMSTUDIO, OLLAMA
from agent.platform import Platform

HOME = Path("/home/dev")
MAC_HOME = Path("/Users/dev")
WIN_HOME = Path(r"C:\Users\dev")


def roots_by_store(platform: Platform) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for root in platform.store_roots():
        found.setdefault(root.store, []).append(root.path)
    return found


def test_linux_defaults() -> None:
    roots = roots_by_store(Platform("linux", HOME, {}))

    assert roots == {
        OLLAMA: [HOME / ".ollama/models", Path("/usr/share/ollama/.ollama/models")],
        HUGGINGFACE: [HOME / ".cache/huggingface/hub"],
        LLAMA_CPP: [HOME / ".cache/llama.cpp"],
        LMSTUDIO: [HOME / ".lmstudio/models", HOME / ".cache/lm-studio/models"],
        GPT4ALL: [HOME / ".local/share/nomic.ai/GPT4All"],
        JAN: [
            HOME / ".local/share/Jan/data/llamacpp/models",
            HOME / ".local/share/Jan/data/mlx/models",
            HOME / ".local/share/Jan/data/models",
            HOME / "jan/models",
        ],
    }


def test_linux_overrides_come_first_and_keep_the_defaults_that_still_matter() -> None:
    env = {
        "OLLAMA_MODELS": "/data/ollama",
        "HF_HOME": "/data/hf",
        "HF_HUB_CACHE": "/data/hub",
        "HUGGINGFACE_HUB_CACHE": "/legacy/hub",
        "TRANSFORMERS_CACHE": "/legacy/transformers",
        "LLAMA_CACHE": "/data/llama",
        "XDG_CACHE_HOME": "/xdg/cache",
        "XDG_DATA_HOME": "/xdg/data",
    }
    roots = roots_by_store(Platform("linux", HOME, env))

    assert roots[OLLAMA] == [
        Path("/data/ollama"),
        HOME / ".ollama/models",
        Path("/usr/share/ollama/.ollama/models"),
    ]
    assert roots[HUGGINGFACE] == [
        Path("/data/hub"),
        Path("/legacy/hub"),
        Path("/legacy/transformers"),
        Path("/data/hf/hub"),
    ]
    assert roots[LLAMA_CPP] == [Path("/data/llama")]
    assert roots[GPT4ALL] == [Path("/xdg/data/nomic.ai/GPT4All")]
    assert roots[JAN][0] == Path("/xdg/data/Jan/data/llamacpp/models")


def test_xdg_cache_home_moves_the_cache_defaults() -> None:
    roots = roots_by_store(Platform("linux", HOME, {"XDG_CACHE_HOME": "/xdg"}))
    assert roots[HUGGINGFACE] == [Path("/xdg/huggingface/hub")]
    assert roots[LLAMA_CPP] == [Path("/xdg/llama.cpp")]


def test_macos_defaults() -> None:
    roots = roots_by_store(Platform("macos", MAC_HOME, {}))
    support = MAC_HOME / "Library/Application Support"

    assert roots[OLLAMA] == [MAC_HOME / ".ollama/models"]
    assert roots[HUGGINGFACE] == [MAC_HOME / ".cache/huggingface/hub"]
    assert roots[LLAMA_CPP] == [MAC_HOME / "Library/Caches/llama.cpp"]
    assert roots[GPT4ALL] == [support / "nomic.ai/GPT4All"]
    assert roots[JAN][:2] == [
        support / "Jan/data/llamacpp/models",
        support / "Jan/data/mlx/models",
    ]


def test_windows_defaults_and_app_data_folders() -> None:
    local, roaming = r"C:\Users\dev\AppData\Local", r"C:\Users\dev\AppData\Roaming"
    env = {"LOCALAPPDATA": local, "APPDATA": roaming}
    roots = roots_by_store(Platform("windows", WIN_HOME, env))

    assert roots[OLLAMA] == [WIN_HOME / ".ollama" / "models"]
    assert roots[HUGGINGFACE] == [WIN_HOME / ".cache" / "huggingface" / "hub"]
    assert roots[LLAMA_CPP] == [Path(local) / "llama.cpp"]
    assert roots[GPT4ALL] == [Path(local) / "nomic.ai" / "GPT4All"]
    assert roots[JAN][0] == Path(roaming) / "Jan" / "data" / "llamacpp" / "models"
    assert roots[LMSTUDIO][0] == WIN_HOME / ".lmstudio" / "models"


def test_model_roots_are_the_store_paths_once() -> None:
    env = {"OLLAMA_MODELS": "/same", "HF_HUB_CACHE": "/same"}
    platform = Platform("linux", HOME, env)

    paths = platform.model_roots()

    assert paths == [root.path for root in platform.store_roots()]
    assert paths.count(Path("/same")) == 1
    assert platform.model_root_paths() == paths
    assert next(r for r in platform.store_roots() if r.path == Path("/same")).store == OLLAMA


@pytest.mark.parametrize(
    ("os_type", "expected"),
    [
        ("linux", {"/proc", "/sys", "/dev", "/run"}),
        ("macos", {"/dev", "/System", "/private/var/vm"}),
        ("windows", {r"D:\Windows", "System Volume Information"}),
    ],
)
def test_default_excludes(os_type: str, expected: set[str]) -> None:
    excludes = Platform(os_type, HOME, {"SystemRoot": r"D:\Windows"}).default_excludes()
    assert set(excludes) >= expected | {".git", "__pycache__", "*/.cache/pip"}
    assert "node_modules" not in excludes
    assert not any("huggingface" in pattern for pattern in excludes)


def test_a_leading_tilde_in_an_override_means_this_home() -> None:
    roots = roots_by_store(
        Platform("linux", HOME, {"OLLAMA_MODELS": "~/big/ollama", "HF_HOME": "~"})
    )
    assert roots[OLLAMA][0] == HOME / "big" / "ollama"
    assert roots[HUGGINGFACE] == [HOME / "hub"]
