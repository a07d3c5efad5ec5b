"""Runtime identification from what a process shows: executable, command line, libraries,
mapped and open files, listeners. Paths are those the real installations use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.processes import ProcessObservation
from agent.detect.runtimes import (
    VersionHint,
    identify,
    is_model_path,
    version_from_dist_info,
    version_from_package_json,
    with_version,
)

SP = "/home/dev/.venv/lib/python3.11/site-packages"
PY = "/home/dev/.venv/bin/python3.11"
OLLAMA_BLOB = (
    "/usr/share/ollama/.ollama/models/blobs/sha256-"
    + "7462734796d67c40ecec2ca98eddf970e171dbb6b370e43fd633ee75b69abe1b"
)
NLC = "/home/dev/app/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
LMS_BACKEND = "/home/dev/.lmstudio/extensions/backends/llama.cpp-linux-x86_64-avx2-1.50.2"


def obs(
    name: str,
    cmdline: tuple[str, ...] = (),
    *,
    exe: str | None = None,
    parent: str | None = None,
    libraries: tuple[str, ...] = (),
    mapped: tuple[str, ...] = (),
    opened: tuple[str, ...] = (),
    listeners: tuple[tuple[str, int], ...] = (),
) -> ProcessObservation:
    return ProcessObservation(
        pid=4242,
        create_time=1.0,
        name=name,
        exe=exe,
        cmdline=cmdline or (name,),
        parent_name=parent,
        libraries=libraries,
        mapped_files=mapped,
        open_files=opened,
        listeners=listeners,
    )


CASES = [
    (
        "ollama serve",
        obs("ollama", ("/usr/local/bin/ollama", "serve"), exe="/usr/local/bin/ollama"),
        "ollama",
    ),
    (
        "ollama runner",
        obs(
            "ollama",
            ("/usr/local/bin/ollama", "runner", "--model", OLLAMA_BLOB, "--port", "39617"),
            mapped=(OLLAMA_BLOB,),
        ),
        "ollama",
    ),
    (
        "llama-server under ollama",
        obs("llama-server", ("/usr/lib/ollama/llama-server",), parent="ollama"),
        "ollama",
    ),
    (
        "old ollama runner",
        obs("ollama_llama_se", ("/tmp/ollama1/runners/cpu_avx2/ollama_llama_server",)),
        "ollama",
    ),
    (
        "llama-server",
        obs("llama-server", ("llama-server", "-m", "/m/q.gguf"), exe="/usr/local/bin/llama-server"),
        "llama.cpp",
    ),
    ("llama-cli", obs("llama-cli", ("./llama-cli", "-m", "q.gguf")), "llama.cpp"),
    ("a process mapping a GGUF", obs("myapp", mapped=("/srv/models/q4.gguf",)), "llama.cpp"),
    (
        "llama-cpp-python",
        obs(
            "python3",
            (PY, "app.py"),
            libraries=(f"{SP}/llama_cpp/lib/libllama.so", f"{SP}/llama_cpp/lib/libggml-base.so"),
        ),
        "llama-cpp-python",
    ),
    (
        "llama_cpp.server",
        obs("python3", (PY, "-m", "llama_cpp.server", "--model", "m.gguf")),
        "llama-cpp-python",
    ),
    (
        "node-llama-cpp",
        obs(
            "node",
            ("node", "chat.js"),
            libraries=(f"{NLC}/libllama.v0.5.0.so", f"{NLC}/llama-addon.node"),
        ),
        "node-llama-cpp",
    ),
    (
        "node-llama-cpp CLI",
        obs("node", ("node", "/usr/lib/node_modules/node-llama-cpp/dist/cli/cli.js", "chat")),
        "node-llama-cpp",
    ),
    (
        "LM Studio app",
        obs("lm-studio", ("/tmp/.mount_LM-StuX1/lm-studio",), exe="/tmp/.mount_LM-StuX1/lm-studio"),
        "lmstudio",
    ),
    ("lms", obs("lms", ("/home/dev/.lmstudio/bin/lms", "server", "start")), "lmstudio"),
    ("llmster", obs("llmster", ("/home/dev/.lmstudio/llmster/0.0.3/llmster",)), "lmstudio"),
    (
        "LM Studio worker",
        obs("node", ("node",), libraries=(f"{LMS_BACKEND}/libllama.so",)),
        "lmstudio",
    ),
    (
        "vllm serve",
        obs("vllm", (PY, "/home/dev/.venv/bin/vllm", "serve", "Qwen/Qwen3-0.6B")),
        "vllm",
    ),
    ("vllm module", obs("python3", (PY, "-m", "vllm.entrypoints.openai.api_server")), "vllm"),
    ("vllm engine", obs("VLLM::EngineCor", ("VLLM::EngineCore",)), "vllm"),
    ("sglang", obs("python3", (PY, "-m", "sglang.launch_server", "--model-path", "m")), "sglang"),
    (
        "text-generation-webui",
        obs(
            "python",
            (
                "/home/dev/text-generation-webui/installer_files/env/bin/python",
                "server.py",
                "--listen",
            ),
        ),
        "text-generation-webui",
    ),
    ("koboldcpp binary", obs("koboldcpp-linu", ("./koboldcpp-linux-x64",)), "koboldcpp"),
    (
        "koboldcpp script",
        obs("python3", (PY, "koboldcpp.py"), libraries=("/opt/kcpp/koboldcpp_default.so",)),
        "koboldcpp",
    ),
    ("LocalAI", obs("local-ai", ("local-ai", "run")), "localai"),
    (
        "LocalAI backend",
        obs("llama-cpp-avx2", ("/tmp/localai/backend_data/llama-cpp-avx2",), parent="local-ai"),
        "localai",
    ),
    (
        "GPT4All app",
        obs("chat", ("/home/dev/gpt4all/bin/chat",), exe="/home/dev/gpt4all/bin/chat"),
        "gpt4all",
    ),
    (
        "GPT4All bindings",
        obs(
            "python3",
            (PY, "g.py"),
            libraries=(f"{SP}/gpt4all/llmodel_DO_NOT_MODIFY/build/libllmodel.so",),
        ),
        "gpt4all",
    ),
    ("Jan", obs("jan", ("/usr/bin/jan",)), "jan"),
    (
        "Jan's llama-server",
        obs(
            "llama-server",
            (
                "/home/dev/.local/share/Jan/data/llamacpp/backends/b1/linux-avx2/build/bin/llama-server",
            ),
        ),
        "jan",
    ),
    (
        "llamafile",
        obs("ape", ("./mistral-7b.llamafile", "--server"), exe="/usr/bin/ape"),
        "llamafile",
    ),
    (
        "mlx_lm.server",
        obs(
            "mlx_lm.server",
            ("/opt/homebrew/bin/python3.12", "/opt/homebrew/bin/mlx_lm.server", "--model", "m"),
        ),
        "mlx-lm",
    ),
    (
        "ONNX Runtime in Python",
        obs(
            "python3",
            (PY, "x.py"),
            libraries=(
                f"{SP}/onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so",
                f"{SP}/onnxruntime/capi/libonnxruntime_providers_shared.so",
            ),
        ),
        "onnxruntime",
    ),
    (
        "native ONNX Runtime",
        obs("detector", libraries=("/usr/lib/libonnxruntime.so.1.17.0",)),
        "onnxruntime",
    ),
    (
        "ONNX Runtime in node",
        obs(
            "node",
            ("node", "i.js"),
            libraries=(
                "/a/node_modules/onnxruntime-node/bin/napi-v3/linux/x64/onnxruntime_binding.node",
            ),
        ),
        "onnxruntime",
    ),
    (
        "PyTorch",
        obs(
            "python3",
            (PY, "t.py"),
            libraries=(f"{SP}/torch/lib/libtorch_cpu.so", f"{SP}/torch/lib/libc10.so"),
        ),
        "pytorch",
    ),
    (
        "transformers",
        obs(
            "python3",
            (PY, "gen.py"),
            libraries=(f"{SP}/torch/lib/libtorch_cpu.so", f"{SP}/tokenizers/tokenizers.abi3.so"),
            mapped=("/hf/models--x/snapshots/1/model.safetensors",),
        ),
        "transformers",
    ),
    (
        "transformers CLI",
        obs("transformers", (PY, "/home/dev/.venv/bin/transformers", "serve")),
        "transformers",
    ),
    (
        "TFLite",
        obs(
            "python3",
            (PY, "l.py"),
            libraries=(f"{SP}/tflite_runtime/_pywrap_tensorflow_interpreter_wrapper.so",),
        ),
        "tflite",
    ),
    ("a .tflite open", obs("camera-app", opened=("/opt/app/detect.tflite",)), "tflite"),
    ("something on Ollama's port", obs("docker-proxy", listeners=(("0.0.0.0", 11434),)), "ollama"),
]


@pytest.mark.parametrize(("label", "observation", "runtime"), CASES, ids=[c[0] for c in CASES])
def test_runtimes_are_named(label: str, observation: ProcessObservation, runtime: str) -> None:
    match = identify(observation)

    assert match is not None, label
    assert match.name == runtime
    assert match.evidence


ORDINARY = [
    obs(
        "postgres",
        ("/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"),
        libraries=("/usr/lib/x86_64-linux-gnu/libssl.so.3",),
    ),
    obs("cc1", ("/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "-quiet", "a.c")),
    obs("sleep", ("sleep", "600")),
    obs("python3", (PY, "-m", "http.server", "--bind", "0.0.0.0"), listeners=(("0.0.0.0", 8000),)),
    obs(
        "python3",
        (PY, "server.py"),
        libraries=(f"{SP}/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",),
    ),
    obs(
        "chrome",
        ("/opt/google/chrome/chrome",),
        mapped=(
            "/opt/google/chrome/v8_context_snapshot.bin",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        ),
    ),
    obs("ollama", ("ollama", "run", "llama3")),  # the client, not the server
    obs("bash", ("bash", "-c", "echo llama")),
]


@pytest.mark.parametrize("observation", ORDINARY, ids=[o.cmdline[0] for o in ORDINARY])
def test_ordinary_programs_are_not_runtimes(observation: ProcessObservation) -> None:
    assert identify(observation) is None


def test_libraries_models_and_evidence_are_recorded() -> None:
    lib = f"{SP}/llama_cpp/lib/libllama.so"
    match = identify(
        obs(
            "python3",
            (PY, "a.py"),
            libraries=(lib, "/lib/libc.so.6"),
            mapped=("/m/q.gguf", "/usr/lib/locale/locale-archive"),
        )
    )

    assert match is not None
    assert match.libraries == (lib,)
    assert match.models == ("/m/q.gguf",)
    assert "loads libllama.so" in match.evidence


def test_version_hints_point_at_package_metadata() -> None:
    python = identify(obs("python3", (PY, "t.py"), libraries=(f"{SP}/torch/lib/libtorch_cpu.so",)))
    node = identify(obs("node", ("node", "c.js"), libraries=(f"{NLC}/llama-addon.node",)))

    assert python is not None and node is not None
    assert python.version_hints == (VersionHint("dist-info", SP, ("torch",)),)
    assert node.version_hints == (
        VersionHint("package.json", "/home/dev/app/node_modules/node-llama-cpp/package.json"),
        VersionHint(
            "package.json", "/home/dev/app/node_modules/@node-llama-cpp/linux-x64/package.json"
        ),
    )


def test_a_version_in_the_library_name_is_used() -> None:
    match = identify(obs("detector", libraries=("/usr/lib/libonnxruntime.so.1.17.0",)))
    assert match is not None and match.version == "1.17.0"


def test_version_from_dist_info_names() -> None:
    names = [
        "torch",
        "torch-2.13.0+cpu.dist-info",
        "onnxruntime_gpu-1.20.1.dist-info",
        "numpy-2.4.6.dist-info",
    ]

    assert version_from_dist_info(names, ("torch",)) == "2.13.0+cpu"
    assert version_from_dist_info(names, ("onnxruntime", "onnxruntime_gpu")) == "1.20.1"
    assert version_from_dist_info(names, ("vllm",)) is None


def test_version_from_package_json() -> None:
    assert version_from_package_json(b'{"name": "node-llama-cpp", "version": "3.22.1"}') == "3.22.1"
    assert version_from_package_json(b'{"version": 3}') is None
    assert version_from_package_json(b"[1, 2]") is None


def test_with_version_keeps_the_first_found() -> None:
    match = identify(obs("llama-server"))
    assert match is not None
    first = with_version(match, "b5560")
    assert with_version(first, "0.1").version == "b5560"
    assert with_version(match, "not a version!").version is None


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/m/a.gguf", True),
        ("/m/A.SAFETENSORS", True),
        (OLLAMA_BLOB, True),
        ("/hf/models--org--name/blobs/" + "a" * 40, True),
        ("/home/u/models/pytorch_model.bin", True),
        ("/opt/google/chrome/v8_context_snapshot.bin", False),
        ("/usr/lib/locale/locale-archive", False),
        ("C:\\Users\\dev\\models\\m.onnx", True),
    ],
)
def test_model_paths(path: str, model: bool) -> None:
    assert is_model_path(path) is model


paths = st.lists(st.text(alphabet="/abcdefgl._-0123456789ABC", max_size=60), max_size=6).map(tuple)


@given(
    st.text(max_size=20),
    st.lists(st.text(max_size=30), max_size=6).map(tuple),
    paths,
    paths,
    st.lists(st.tuples(st.text(max_size=15), st.integers(0, 65535)), max_size=3).map(tuple),
)
def test_identify_any_observation_without_error(
    name: str,
    cmdline: tuple[str, ...],
    libraries: tuple[str, ...],
    mapped: tuple[str, ...],
    listeners: tuple[tuple[str, int], ...],
) -> None:
    match = identify(obs(name, cmdline, libraries=libraries, mapped=mapped, listeners=listeners))
    assert match is None or match.name


@given(st.binary(max_size=300))
def test_package_json_parse_of_any_bytes(data: bytes) -> None:
    version = version_from_package_json(data)
    assert version is None or isinstance(version, str)


@given(st.lists(st.text(max_size=40), max_size=10), st.lists(st.text(max_size=10), max_size=3))
def test_dist_info_parse_of_any_names(names: list[str], packages: list[str]) -> None:
    version = version_from_dist_info(names, packages)
    assert version is None or isinstance(version, str)
