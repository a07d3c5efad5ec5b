"""Real inference workloads and real ordinary programs, seen by the process sensor.

ONNX Runtime runs a model in a Python child; node-llama-cpp's prebuilt llama.cpp loads a GGUF
written here and serves on loopback and on all interfaces. A missing runtime skips these
tests on a workstation and fails them under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import psutil
import pytest

from agent.sensors.probe import probe
from agent.sensors.processes import LinuxSource, ProcessReport, ProcessSensor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

NODE_LLAMA_CPP = "3.22.1"
NPM_PACKAGES = [f"node-llama-cpp@{NODE_LLAMA_CPP}", f"@node-llama-cpp/linux-x64@{NODE_LLAMA_CPP}"]
PREBUILT = Path("node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
STARTUP_SECONDS = 60


def missing(reason: str) -> None:
    """Under CI a missing runtime is a broken build; elsewhere it only skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must install it: see tests/agent/sensors/test_real_runtimes.py)")
    pytest.skip(reason)


def node_cache() -> Path:
    base = os.environ.get("SHADOWAI_TEST_CACHE") or Path.home() / ".cache" / "shadowai-tests"
    return Path(base) / f"node-llama-cpp-{NODE_LLAMA_CPP}"


def install_node_llama_cpp(folder: Path) -> None:
    """npm packages only: the prebuilt linux-x64 binaries, no post-install download or build."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "shadowai-test-runtimes", "private": true}\n')
    env = {**os.environ, "NODE_LLAMA_CPP_SKIP_DOWNLOAD": "true"}
    command = ["npm", "install", "--no-audit", "--no-fund", "--omit=optional", *NPM_PACKAGES]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        missing(f"npm install {' '.join(NPM_PACKAGES)} failed: {done.stderr[-2000:]}")


@pytest.fixture(scope="session")
def node_llama_cpp() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("node and npm are not installed")
    folder = node_cache()
    if not (folder / PREBUILT / "llama-addon.node").exists():
        install_node_llama_cpp(folder)
    if not (folder / PREBUILT / "llama-addon.node").exists():
        missing(f"the prebuilt llama.cpp binary is missing under {folder / PREBUILT}")
    (folder / "shadowai-serve.mjs").write_text(SERVE_SCRIPT)
    return folder


SERVE_SCRIPT = textwrap.dedent(
    """\
    // Load a GGUF with node-llama-cpp's prebuilt llama.cpp, evaluate a few tokens, then serve
    // an OpenAI-style model list. Never builds or downloads (build: "never").
    import http from "node:http";
    import {getLlama} from "node-llama-cpp";
    const [model, host] = process.argv.slice(2);
    const llama = await getLlama({build: "never", gpu: false, usePrebuiltBinaries: true,
                                  progressLogs: false, logLevel: "error"});
    const loaded = await llama.loadModel({modelPath: model});
    const context = await loaded.createContext({contextSize: 64});
    let generated = 0;
    for await (const token of context.getSequence().evaluate(loaded.tokenize("a b a"))) {
      if (++generated >= 4) break;
    }
    const body = JSON.stringify({object: "list", data: [{id: "tiny-test-llama", object: "model"}]});
    const server = http.createServer((request, response) => {
      const models = request.method === "GET" && request.url === "/v1/models";
      response.writeHead(models ? 200 : 404, {"content-type": "application/json"});
      response.end(models ? body : "{}");
    });
    server.listen(0, host, () => console.log(JSON.stringify(
      {port: server.address().port, generated, build: llama.buildType})));
    """
)


def write_tiny_llama(path: Path) -> Path:
    """A llama model llama.cpp really loads: one block, 64-wide, SentencePiece-style vocab."""
    writer = gguf.GGUFWriter(path, "llama")
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), "▁", "a", "b", "▁a"]
    embed, heads, ff = 64, 4, 128
    writer.add_name("tiny-test-llama")
    writer.add_context_length(256)
    writer.add_embedding_length(embed)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(embed // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3, *([6] * 256), 1, 1, 1, 1])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    rng = np.random.default_rng(0)

    def weights(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    weights("token_embd.weight", len(tokens), embed)
    weights("output.weight", len(tokens), embed)
    writer.add_tensor("output_norm.weight", np.ones(embed, dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(embed, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(embed, dtype=np.float32))
    for part in ("q", "k", "v", "output"):
        weights(f"blk.0.attn_{part}.weight", embed, embed)
    weights("blk.0.ffn_gate.weight", ff, embed)
    weights("blk.0.ffn_up.weight", ff, embed)
    weights("blk.0.ffn_down.weight", embed, ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny-llama-f32.gguf")


def ready_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"{proc.args!r} exited {proc.returncode}: {err[-2000:]}")
    return line


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.communicate(timeout=30)


def start(
    children: list[subprocess.Popen[str]], command: list[str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    children.append(proc)
    return proc


def scan_for(pid: int, sensor: ProcessSensor) -> ProcessReport | None:
    return next((r for r in sensor.scan().values() if r.observation.pid == pid), None)


def serve_llama(
    children: list[subprocess.Popen[str]], folder: Path, model: Path, host: str
) -> tuple[int, dict[str, object]]:
    proc = start(
        children, ["node", str(folder / "shadowai-serve.mjs"), str(model), host], cwd=folder
    )
    return proc.pid, json.loads(ready_line(proc))


def test_node_llama_cpp_server_on_loopback_is_reported_with_its_model(
    node_llama_cpp: Path, tiny_llama: Path, children: list[subprocess.Popen[str]]
) -> None:
    pid, ready = serve_llama(children, node_llama_cpp, tiny_llama, "127.0.0.1")
    assert ready["build"] == "prebuilt" and ready["generated"] == 4
    report = scan_for(pid, ProcessSensor(source=LinuxSource(), prober=probe))

    assert report is not None
    fields = report.fields()
    assert fields["ai.runtime.name"] == "node-llama-cpp"
    assert fields["ai.runtime.version"] == NODE_LLAMA_CPP
    assert fields["ai.runtime.models"] == [str(tiny_llama)]
    assert any(str(PREBUILT) in lib for lib in report.match.libraries)
    assert (fields["ai.listen.address"], fields["ai.listen.port"]) == ("127.0.0.1", ready["port"])
    assert fields["ai.listen.exposed"] is False
    assert report.probe is not None and report.probe.models == ("tiny-test-llama",)


def test_node_llama_cpp_server_on_all_interfaces_is_exposed(
    node_llama_cpp: Path, tiny_llama: Path, children: list[subprocess.Popen[str]]
) -> None:
    pid, ready = serve_llama(children, node_llama_cpp, tiny_llama, "0.0.0.0")
    report = scan_for(pid, ProcessSensor(source=LinuxSource(), prober=probe))

    assert report is not None
    fields = report.fields()
    assert fields["ai.listen.address"] == "0.0.0.0"
    assert fields["ai.listen.port"] == ready["port"]
    assert fields["ai.listen.exposed"] is True
    # A wildcard bind answers on loopback, which is where the probe asked.
    assert report.probe is not None and report.probe.host == "127.0.0.1"


def test_stopping_the_server_emits_stopped(
    node_llama_cpp: Path, tiny_llama: Path, children: list[subprocess.Popen[str]]
) -> None:
    pid, _ = serve_llama(children, node_llama_cpp, tiny_llama, "127.0.0.1")
    sensor = ProcessSensor(source=LinuxSource())
    started = [f for action, f in sensor.poll() if action == "started" and f["process.pid"] == pid]
    children[0].kill()
    children[0].wait(timeout=30)
    stopped = [f for action, f in sensor.poll() if action == "stopped" and f["process.pid"] == pid]

    assert len(started) == 1 and started[0]["ai.runtime.name"] == "node-llama-cpp"
    assert len(stopped) == 1


ONNX_SCRIPT = textwrap.dedent(
    """\
    import sys, time
    import numpy as np
    import onnxruntime
    session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})[0]
    print(float(out.sum()), flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        missing("the onnx package is not installed")
    weight = numpy_helper.from_array(np.full((4, 2), 0.5, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_onnx_runtime_running_a_model_is_reported(
    onnx_model: Path, children: list[subprocess.Popen[str]]
) -> None:
    try:
        import onnxruntime  # type: ignore[import-untyped]  # the wheel ships no stubs
    except ImportError:
        missing("onnxruntime is not installed in this environment")
    proc = start(children, [sys.executable, "-c", ONNX_SCRIPT, str(onnx_model)])
    assert float(ready_line(proc)) == 4.0
    report = scan_for(proc.pid, ProcessSensor(source=LinuxSource()))

    assert report is not None
    fields = report.fields()
    assert fields["ai.runtime.name"] == "onnxruntime"
    assert fields["ai.runtime.version"] == onnxruntime.__version__
    assert "onnxruntime_pybind11_state" in str(fields["ai.runtime.libraries"])
    # ONNX Runtime reads the model and closes it: only libraries and the command line show.
    assert "ai.runtime.models" not in fields
    assert "ai.listen.address" not in fields and "ai.gpu.memory_bytes" not in fields


def postgres_pids() -> list[int]:
    return [
        p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")
    ]


def test_ordinary_programs_are_not_inference_processes(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    web = start(
        children, [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "0"], cwd=tmp_path
    )
    sleeper = start(children, ["sleep", "600"])
    compiler = None
    if shutil.which("gcc"):
        # cc1 waits on stdin, so the compiler is alive while the scan runs.
        compiler = subprocess.Popen(
            ["gcc", "-x", "c", "-c", "-", "-o", str(tmp_path / "a.o")],
            stdin=subprocess.PIPE,
            text=True,
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    while not any(
        c.status == psutil.CONN_LISTEN for c in psutil.Process(web.pid).net_connections()
    ):
        assert time.monotonic() < deadline, "http.server did not start listening"
        time.sleep(0.05)
    sensor = ProcessSensor(source=LinuxSource(), prober=probe)
    reports = sensor.scan()
    seen = {entry.pid for entry in (r.observation for r in reports.values())}
    ordinary = {web.pid, sleeper.pid, *postgres_pids()}
    if compiler is not None:
        ordinary |= {compiler.pid, *(c.pid for c in psutil.Process(compiler.pid).children())}
        compiler.communicate("int add(int a, int b) { return a + b; }\n", timeout=60)
        assert compiler.returncode == 0

    assert sensor.stats.processes > 0
    assert not (ordinary & seen), [
        r.fields() for r in reports.values() if r.observation.pid in ordinary
    ]
    if os.environ.get("CI") == "true":
        assert postgres_pids(), "PostgreSQL should be running under CI"
