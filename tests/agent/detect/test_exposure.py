"""Who can reach a server: loopback or not, which listener is named, what settings widen it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.exposure import (
    assess,
    exposed,
    is_loopback,
    ollama_host_exposed,
    pick_listener,
    probe_host,
    widening_settings,
)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("fe80::1%eth0", False),
        ("", False),
        ("not an address", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback
    assert exposed(address) is not loopback


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("192.168.1.20", None),
        ("10.0.0.5", None),
        ("garbage", None),
    ],
)
def test_probe_host_stays_on_loopback(address: str, host: str | None) -> None:
    assert probe_host(address) == host


def test_the_most_exposed_listener_is_named() -> None:
    listeners = [("127.0.0.1", 8080), ("0.0.0.0", 9090), ("::1", 80)]

    assert pick_listener(listeners) == ("0.0.0.0", 9090)
    assert pick_listener([("127.0.0.1", 8080), ("::1", 80)]) == ("::1", 80)
    assert pick_listener([]) is None


@pytest.mark.parametrize(
    ("value", "widened"),
    [
        ("", False),
        ("127.0.0.1", False),
        ("127.0.0.1:11434", False),
        ("http://127.0.0.1:11434", False),
        ("[::1]:11434", False),
        ("0.0.0.0", True),
        ("0.0.0.0:11434", True),
        ("http://0.0.0.0:8080", True),
        (":11434", True),
        ("[::]:11434", True),
        ("workstation.lan", True),
    ],
)
def test_ollama_host(value: str, widened: bool) -> None:
    assert ollama_host_exposed(value) is widened


def test_ollama_settings() -> None:
    env = {"OLLAMA_HOST": "0.0.0.0", "OLLAMA_ORIGINS": "*"}
    reasons = widening_settings("ollama", ["ollama", "serve"], env)

    assert reasons == (
        "OLLAMA_HOST=0.0.0.0 binds beyond loopback",
        "OLLAMA_ORIGINS=* lets other web origins call the API",
    )
    local = {"OLLAMA_HOST": "127.0.0.1", "OLLAMA_ORIGINS": "http://localhost:3000"}
    assert widening_settings("ollama", ["ollama", "serve"], local) == ()


def test_vllm_binds_everywhere_unless_told() -> None:
    assert widening_settings("vllm", ["vllm", "serve", "m"], {}) == (
        "vLLM binds all interfaces unless --host is given",
    )
    assert widening_settings("vllm", ["vllm", "serve", "m", "--host", "127.0.0.1"], {}) == ()
    assert widening_settings("vllm", ["vllm", "serve", "--host=0.0.0.0"], {}) != ()


def test_host_options_of_other_servers() -> None:
    assert widening_settings("llama.cpp", ["llama-server", "--host", "0.0.0.0"], {})
    assert widening_settings("llama.cpp", ["llama-server"], {"LLAMA_ARG_HOST": "0.0.0.0"})
    assert widening_settings("llama.cpp", ["llama-server", "--host", "127.0.0.1"], {}) == ()


def test_lmstudio_server_config() -> None:
    config = {"port": 1234, "networkInterface": "0.0.0.0", "cors": True}
    reasons = widening_settings("lmstudio", ["lms"], {}, config)

    assert len(reasons) == 2
    assert widening_settings("lmstudio", ["lms"], {}, {"networkInterface": "127.0.0.1"}) == ()


def test_assess_names_the_listener_and_keeps_reasons() -> None:
    result = assess("ollama", [("0.0.0.0", 11434)], ["ollama", "serve"], {"OLLAMA_HOST": "0.0.0.0"})

    assert (result.address, result.port, result.exposed) == ("0.0.0.0", 11434, True)
    assert result.reasons
    silent = assess("onnxruntime", [], ["python"], {})
    assert silent.exposed is None and silent.address is None


@given(st.text(max_size=40))
def test_any_text_is_judged_without_error(value: str) -> None:
    assert isinstance(exposed(value), bool)
    assert isinstance(ollama_host_exposed(value), bool)
    host = probe_host(value)
    assert host is None or is_loopback(host)
