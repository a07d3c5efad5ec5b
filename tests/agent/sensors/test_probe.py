"""The local API probe against real HTTP servers on loopback that answer as the runtimes do."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.sensors.probe import MAX_BODY, PATHS, ProbeResult, fetch, merge, plan, probe

# Answers recorded from the servers' documented responses, trimmed.
OLLAMA = {
    "/api/version": {"version": "0.9.6"},
    "/api/ps": {
        "models": [
            {
                "name": "llama3.2:1b",
                "model": "llama3.2:1b",
                "size": 2019393189,
                "digest": "baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878",
                "details": {"format": "gguf", "family": "llama", "quantization_level": "Q8_0"},
                "expires_at": "2025-06-01T12:00:00Z",
                "size_vram": 2019393189,
            },
            {"name": "qwen3:0.6b", "size": 523000000, "size_vram": 0},
        ]
    },
}
LLAMA_CPP = {
    "/health": {"status": "ok"},
    "/props": {
        "default_generation_settings": {"n_ctx": 4096},
        "total_slots": 1,
        "model_path": "/home/dev/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        "chat_template": "{% for message in messages %}...{% endfor %}",
        "build_info": "b5560-0d3984424",
    },
    "/v1/models": {
        "object": "list",
        "data": [
            {"id": "qwen2.5-0.5b-instruct-q4_k_m.gguf", "object": "model", "owned_by": "llamacpp"}
        ],
    },
}
VLLM = {"/version": {"version": "0.9.1"}, "/v1/models": {"data": [{"id": "Qwen/Qwen3-0.6B"}]}}


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: dict[str, object]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers = answers
        self.requests: list[tuple[str, str]] = []


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.server.requests.append((self.command, self.path))
        answer = self.server.answers.get(self.path)
        if answer is None or self.command != "GET":
            self.send_error(404 if answer is None else 405)
            return
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer


Serve = Callable[[dict[str, object]], "Recorder"]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[Recorder] = []

    def start(answers: dict[str, object]) -> Recorder:
        server = Recorder(answers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_ollama_version_and_loaded_models_with_vram(serve: Serve) -> None:
    server = serve(OLLAMA)
    result = probe("ollama", "127.0.0.1", server.server_port)

    assert result.version == "0.9.6"
    assert [m.name for m in result.loaded] == ["llama3.2:1b", "qwen3:0.6b"]
    assert result.vram_bytes == 2019393189
    assert result.answered == ("/api/version", "/api/ps")


def test_llama_cpp_health_props_and_models(serve: Serve) -> None:
    server = serve(LLAMA_CPP)
    result = probe("llama.cpp", "127.0.0.1", server.server_port)

    assert result.healthy is True
    assert result.model_paths == ("/home/dev/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",)
    assert result.version == "b5560-0d3984424"
    assert result.models == ("qwen2.5-0.5b-instruct-q4_k_m.gguf",)
    assert result.vram_bytes is None


def test_vllm_version(serve: Serve) -> None:
    server = serve(VLLM)
    result = probe("vllm", "127.0.0.1", server.server_port)

    assert (result.version, result.models) == ("0.9.1", ("Qwen/Qwen3-0.6B",))


def test_only_get_and_only_the_fixed_paths(serve: Serve) -> None:
    server = serve({**OLLAMA, **LLAMA_CPP, **VLLM})
    for runtime in ("ollama", "llama.cpp", "vllm", "lmstudio", "pytorch"):
        probe(runtime, "127.0.0.1", server.server_port)

    assert {method for method, _ in server.requests} == {"GET"}
    assert {path for _, path in server.requests} <= PATHS
    with pytest.raises(AgentError, match="fixed probe paths"):
        fetch("127.0.0.1", server.server_port, "/api/pull", deadline=time.monotonic() + 1)


@pytest.mark.parametrize(
    "host", ["192.168.1.10", "10.0.0.1", "0.0.0.0", "::", "localhost", "example.com"]
)
def test_anything_but_a_loopback_address_is_refused(host: str) -> None:
    with pytest.raises(AgentError, match="only loopback"):
        probe("ollama", host, 11434)


def test_ipv6_loopback_is_probed(serve: Serve) -> None:
    class V6(Recorder):
        address_family = socket.AF_INET6

        def __init__(self, answers: dict[str, object]) -> None:
            ThreadingHTTPServer.__init__(self, ("::1", 0), Handler)
            self.answers, self.requests = answers, []

    try:
        server = V6(VLLM)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert probe("vllm", "::1", server.server_port).version == "0.9.1"
    finally:
        server.shutdown()
        server.server_close()


def test_an_oversized_answer_is_dropped_unread(serve: Serve) -> None:
    huge = json.dumps({"version": "1.0", "pad": "x" * (MAX_BODY + 10)}).encode()
    server = serve({"/version": huge, "/v1/models": b"not json at all"})
    result = probe("vllm", "127.0.0.1", server.server_port)

    assert result.version is None
    assert result.answered == ("/v1/models",)
    assert result.models == ()


def test_a_server_that_never_answers_leaves_an_empty_result() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        result = probe("ollama", "127.0.0.1", silent.getsockname()[1], timeout=0.3)

    assert result == ProbeResult(host="127.0.0.1", port=result.port)


def test_nothing_listening_is_an_empty_result() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    result = probe("llama.cpp", "127.0.0.1", port)

    assert result.answered == () and result.healthy is None


def test_every_runtime_has_a_plan_within_the_fixed_paths() -> None:
    for runtime in ("ollama", "llama.cpp", "llamafile", "vllm", "lmstudio", "unknown"):
        assert plan(runtime) and set(plan(runtime)) <= PATHS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "version": json_values,
        "models": json_values,
        "data": json_values,
        "model_path": json_values,
        "build_info": json_values,
        "status": json_values,
    },
)


@given(st.sampled_from(sorted(PATHS)), st.binary(max_size=512))
def test_any_bytes_merge_without_error(path: str, body: bytes) -> None:
    result = merge(ProbeResult(host="127.0.0.1", port=1), path, body)
    assert path in result.answered


@given(st.sampled_from(sorted(PATHS)), shaped)
def test_any_json_shape_merges_into_typed_fields(path: str, answer: dict[str, object]) -> None:
    result = merge(ProbeResult(host="127.0.0.1", port=1), path, json.dumps(answer).encode())

    assert result.version is None or isinstance(result.version, str)
    assert all(isinstance(model, str) for model in result.models)
    assert all(isinstance(m.size_vram, int | None) for m in result.loaded)
    assert result.vram_bytes is None or result.vram_bytes > 0
