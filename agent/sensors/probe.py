"""Ask a local inference server what it is: GET only, loopback only, a fixed list of paths.

Never a POST, never a pull or a load; one short deadline for the whole probe and a bounded
read of every answer. The answers are parsed by the pure functions below.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from agent.detect.exposure import is_loopback
from agent.errors import AgentError

MAX_BODY = 256 * 1024
TIMEOUT = 1.0
PATHS = frozenset({"/api/version", "/api/ps", "/props", "/health", "/v1/models", "/version"})
# Which paths to ask, per runtime; anything else is asked only the OpenAI-style list.
_PLAN: dict[str, tuple[str, ...]] = {
    "ollama": ("/api/version", "/api/ps"),
    "llama.cpp": ("/health", "/props", "/v1/models"),
    "llamafile": ("/health", "/props", "/v1/models"),
    "vllm": ("/version", "/v1/models"),
}
_DEFAULT_PLAN = ("/v1/models",)
_MAX_MODELS = 64


@dataclass(frozen=True)
class LoadedModel:
    name: str
    size: int | None = None
    size_vram: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What a server said about itself; every field stays empty for a path that did not answer."""

    host: str
    port: int
    answered: tuple[str, ...] = ()
    version: str | None = None
    healthy: bool | None = None
    models: tuple[str, ...] = ()  # model ids from /v1/models
    model_paths: tuple[str, ...] = ()  # llama.cpp /props model_path
    loaded: tuple[LoadedModel, ...] = ()  # Ollama /api/ps

    @property
    def vram_bytes(self) -> int | None:
        """VRAM held by the loaded models, when the server reports any; never a made-up zero."""
        sizes = [m.size_vram for m in self.loaded if m.size_vram]
        return sum(sizes) if sizes else None


def plan(runtime: str) -> tuple[str, ...]:
    return _PLAN.get(runtime, _DEFAULT_PLAN)


def probe(runtime: str, host: str, port: int, *, timeout: float = TIMEOUT) -> ProbeResult:
    """GET the runtime's paths from host:port within `timeout` seconds in all.

    Raises AgentError for a host that is not loopback: the probe never leaves the machine.
    """
    if not is_loopback(host) or host.strip().lower() == "localhost":
        raise AgentError(f"probe: refusing {host!r}: only loopback addresses are probed")
    result = ProbeResult(host=host, port=port)
    deadline = time.monotonic() + min(timeout, TIMEOUT)
    for path in plan(runtime):
        body = fetch(host, port, path, deadline=deadline)
        if body is not None:
            result = merge(result, path, body)
    return result


def fetch(host: str, port: int, path: str, *, deadline: float) -> bytes | None:
    """One GET of a fixed path; the body when it answered 200 within the deadline and the cap."""
    if path not in PATHS:
        raise AgentError(f"probe: {path!r} is not one of the fixed probe paths")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    conn = http.client.HTTPConnection(host, port, timeout=remaining)
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "Connection": "close"})
        response = conn.getresponse()
        if response.status != 200:
            return None
        return _read_bounded(conn, response, deadline)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _read_bounded(
    conn: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
) -> bytes | None:
    # The socket timeout bounds each read; the deadline bounds a server that drips bytes.
    chunks: list[bytes] = []
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if conn.sock is not None:
            conn.sock.settimeout(remaining)
        chunk = response.read1(min(65536, MAX_BODY + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_BODY:
            return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _text(value: object, limit: int = 256) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def merge(result: ProbeResult, path: str, body: bytes) -> ProbeResult:
    """Fold one answer into the result; an answer of the wrong shape adds nothing."""
    data = _json(body)
    answered = (*result.answered, path)
    if not isinstance(data, Mapping):
        return replace(result, answered=answered, healthy=True if path == "/health" else None)
    if path in ("/api/version", "/version"):
        return replace(result, answered=answered, version=_text(data.get("version"), 64))
    if path == "/api/ps":
        return replace(result, answered=answered, loaded=_loaded(data.get("models")))
    if path == "/props":
        model_path = _text(data.get("model_path"), 4096)
        build = _text(data.get("build_info"), 64)
        return replace(
            result,
            answered=answered,
            model_paths=(model_path,) if model_path else (),
            version=result.version or build,
        )
    if path == "/health":
        return replace(result, answered=answered, healthy=data.get("status") == "ok")
    return replace(result, answered=answered, models=_model_ids(data.get("data")))


def _loaded(models: object) -> tuple[LoadedModel, ...]:
    if not isinstance(models, list):
        return ()
    out = []
    for item in models[:_MAX_MODELS]:
        if isinstance(item, Mapping) and (name := _text(item.get("name") or item.get("model"))):
            out.append(LoadedModel(name, _count(item.get("size")), _count(item.get("size_vram"))))
    return tuple(out)


def _model_ids(data: object) -> tuple[str, ...]:
    if not isinstance(data, list):
        return ()
    ids = (_text(item.get("id")) for item in data[:_MAX_MODELS] if isinstance(item, Mapping))
    return tuple(i for i in ids if i)
