"""A small real inference server for the demo: ONNX Runtime behind a stdlib HTTP server.

    python scripts/demo_server.py MODEL.onnx [--host 0.0.0.0] [--port 0]

GET /v1/models lists the model with its inputs and outputs; POST /v1/infer with
{"inputs": {"x": [[5.1, 3.5, 1.4, 0.2]]}} answers {"outputs": {"y": [[...]]}}. A request
that is not that gets 400 and the reason. Once listening it prints one line,
`serving NAME on http://HOST:PORT`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

MAX_BODY = 64 * 1024
MAX_ROWS = 256


class BadRequest(ValueError):
    """The client sent something the model cannot take; the message says what."""


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int | None, ...]  # None: any size (a named or unknown dimension)


def parse_request(body: bytes, inputs: Sequence[Tensor]) -> dict[str, np.ndarray]:
    """The model's inputs from a JSON body, as float32 arrays of the declared shapes."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"body over {MAX_BODY} bytes")
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    given = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(given, dict):
        raise BadRequest('expected {"inputs": {NAME: [[number, ...], ...]}}')
    wanted = {tensor.name for tensor in inputs}
    if set(given) != wanted:
        raise BadRequest(f"inputs must be exactly {sorted(wanted)}, got {sorted(given)[:8]}")
    return {tensor.name: _array(tensor, given[tensor.name]) for tensor in inputs}


def _array(tensor: Tensor, value: object) -> np.ndarray:
    if not isinstance(value, list):
        raise BadRequest(f"{tensor.name}: expected a list of rows")
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise BadRequest(f"{tensor.name}: not a rectangular array of numbers ({exc})") from None
    if array.ndim != len(tensor.shape) or any(
        want is not None and got != want
        for got, want in zip(array.shape, tensor.shape, strict=True)
    ):
        shown = ["N" if d is None else d for d in tensor.shape]
        raise BadRequest(f"{tensor.name}: shape {list(array.shape)}, expected {shown}")
    if array.shape[0] > MAX_ROWS or array.shape[0] == 0:
        raise BadRequest(f"{tensor.name}: 1 to {MAX_ROWS} rows")
    if not np.isfinite(array).all():
        raise BadRequest(f"{tensor.name}: numbers must be finite")
    return array


class Model:
    def __init__(self, path: Path) -> None:
        self.name = path.stem
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs = [_tensor(i) for i in self.session.get_inputs()]
        self.outputs = [_tensor(o) for o in self.session.get_outputs()]

    def describe(self) -> dict[str, object]:
        def shapes(tensors: list[Tensor]) -> dict[str, list[object]]:
            return {t.name: ["N" if d is None else d for d in t.shape] for t in tensors}

        return {"id": self.name, "inputs": shapes(self.inputs), "outputs": shapes(self.outputs)}

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        results = self.session.run(None, dict(feeds))
        return {t.name: r.tolist() for t, r in zip(self.outputs, results, strict=True)}


def _tensor(arg: Any) -> Tensor:
    return Tensor(arg.name, tuple(d if isinstance(d, int) else None for d in arg.shape))


def handler_for(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self._reply(200, {"models": [model.describe()]})
            else:
                self._reply(404, {"error": "GET /v1/models or POST /v1/infer"})

        def do_POST(self) -> None:
            if self.path != "/v1/infer":
                self._reply(404, {"error": "GET /v1/models or POST /v1/infer"})
                return
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > MAX_BODY:
                self._reply(400, {"error": f"a Content-Length up to {MAX_BODY} is required"})
                return
            try:
                feeds = parse_request(self.rfile.read(int(length)), model.inputs)
            except BadRequest as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, {"model": model.name, "outputs": model.infer(feeds)})

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the demo's terminal is for the demo's own lines

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve an ONNX model over HTTP")
    parser.add_argument("model", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    model = Model(args.model)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(model))
    host, port = server.server_address[:2]
    print(f"serving {model.name} on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
