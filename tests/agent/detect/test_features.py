"""Classifier features: fixed order, explicit missing inputs, and the signals each input gives."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    FeatureVector,
    command_tokens,
    features,
)
from agent.detect.processes import ProcessObservation
from agent.detect.runtimes import RuntimeMatch, identify

NODE_LLAMA = "/home/dev/app/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"


def obs(**fields: object) -> ProcessObservation:
    base: dict[str, object] = {"pid": 10, "create_time": 1.0, "name": "worker"}
    return ProcessObservation(**{**base, **fields})  # type: ignore[arg-type]  # test values


def values(vector: FeatureVector) -> dict[str, float]:
    return vector.as_dict()


def test_names_are_unique_and_the_vector_follows_them() -> None:
    vector = features(obs(), None)

    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert len(vector.values) == len(FEATURE_NAMES)
    assert vector.version == FEATURE_VERSION


def test_missing_readings_are_marked_absent_not_zero() -> None:
    found = values(features(obs(), None))

    for name in ("maps", "rss", "threads", "cpu", "gpu", "gpu.memory", "gpu.utilization"):
        assert found[f"{name}.present"] == 0.0, name
    assert found["model.bytes.present"] == 0.0
    assert found["cmdline.present"] == 0.0 and found["parent.present"] == 0.0


def test_measured_zeros_are_present_zeros() -> None:
    seen = obs(rss=0, num_threads=1, cpu_percent=0.0, libraries=("/lib/libc.so.6",))
    found = values(features(seen, None, {}, sizes={}))

    assert found["rss.present"] == 1.0 and found["rss_log2"] == 0.0
    assert found["cpu.present"] == 1.0 and found["cpu_cores"] == 0.0
    # A GPU source that lists no sample for this process: it uses no GPU memory.
    assert found["gpu.present"] == found["gpu.memory.present"] == 1.0
    assert found["gpu.memory_log2"] == 0.0
    assert found["maps.present"] == 1.0 and found["model.bytes.present"] == 1.0


def test_gpu_sample_with_unknown_utilisation() -> None:
    found = values(features(obs(), None, {10: (8 << 30, None)}))

    assert found["gpu.memory_log2"] == math.log2(1 + (8 << 30))
    assert found["gpu.utilization.present"] == 0.0


def test_library_families_of_a_llama_cpp_addon_and_a_cuda_torch() -> None:
    llama = features(
        obs(libraries=(f"{NODE_LLAMA}/libggml-base.so", f"{NODE_LLAMA}/libllama.so")), None
    )
    torch = features(
        obs(
            libraries=(
                "/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so",
                "/venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12",
                "/venv/lib/python3.11/site-packages/torch/lib/libgomp-a34b3233.so.1",
            )
        ),
        None,
    )

    assert values(llama)["lib:ggml"] == values(llama)["lib:llama"] == 1.0
    assert values(llama)["lib:torch"] == 0.0
    assert {k for k, v in values(torch).items() if k.startswith("lib:") and v} == {
        "lib:torch",
        "lib:cuda",
        "lib:openmp",
    }


def test_macos_and_windows_families() -> None:
    mac = "/System/Library/Frameworks/Metal.framework/Versions/A/Metal"
    capi = "C:\\venv\\Lib\\site-packages\\onnxruntime\\capi"
    windows = (f"{capi}\\DirectML.dll", f"{capi}\\onnxruntime_pybind11_state.pyd")
    found = values(features(obs(libraries=(mac, *windows)), None))

    assert found["lib:metal"] == found["lib:directml"] == found["lib:onnxruntime"] == 1.0
    assert found["lib:python"] == 1.0  # a .pyd is a Python extension


def test_model_files_by_extension_location_and_size() -> None:
    gguf = "/home/dev/models/qwen.gguf"
    blob = "/home/dev/.ollama/models/blobs/sha256-" + "a" * 64
    renamed = "/srv/weights/part-0.dat"
    seen = obs(mapped_files=(gguf, renamed, "/usr/bin/worker"), open_files=(blob,))
    sizes = {gguf: 4 << 30, renamed: 1 << 30, blob: 2 << 30, "/usr/bin/worker": 1 << 20}
    found = values(features(seen, None, sizes=sizes))

    assert found["model.gguf_mapped"] == 1.0
    assert found["model.mapped_by_extension"] == 1.0  # log2(1 + 1)
    assert found["model.open_by_extension"] == 1.0  # an Ollama blob counts as a model path
    assert found["model.by_location"] == 1.0  # the .dat under weights/
    assert found["model.bytes_log2"] == math.log2(1 + (7 << 30))
    assert found["file.largest_mapped_log2"] == math.log2(1 + (4 << 30))


def test_model_bytes_absent_when_a_model_file_was_not_measured() -> None:
    seen = obs(mapped_files=("/m/a.gguf", "/m/b.gguf"))
    found = values(features(seen, None, sizes={"/m/a.gguf": 10}))

    assert found["model.bytes.present"] == 0.0 and found["model.bytes_log2"] == 0.0


def test_listeners_exposed_and_on_an_inference_port() -> None:
    loopback = values(features(obs(listeners=(("127.0.0.1", 23456),)), None))
    exposed = values(
        features(
            obs(
                listeners=(("0.0.0.0", 11434), ("::1", 9)),
            ),
            None,
        )
    )

    assert loopback["listen.exposed"] == 0.0 and loopback["listen.inference_port"] == 0.0
    assert exposed["listen.exposed"] == 1.0 and exposed["listen.inference_port"] == 1.0
    assert exposed["listen.count_log2"] == math.log2(3)


def test_command_line_tokens_match_flags_and_words() -> None:
    argv = ("./svc", "--ctx-size=4096", "-ngl", "99", "-m", "/data/Qwen2.5-7B.Q4_K_M.gguf")
    found = values(features(obs(cmdline=argv), None))

    assert {"--ctx-size", "-ngl", "-m", "gguf", "qwen2", "4096"} <= command_tokens(argv)
    for token in ("--ctx-size", "-ngl", "-m", "gguf"):
        assert found[f"cmd:{token}"] == 1.0, token
    assert found["cmd:serve"] == 0.0


def test_interpreter_and_parent_family() -> None:
    seen = obs(name="python3.11", exe="/usr/bin/python3.11", cmdline=("python3", "x.py"))
    found = values(features(seen, None))
    child = values(features(obs(name="node", parent_name="node"), None))
    started = values(features(obs(parent_name="ollama"), None))

    assert found["interpreter:python"] == 1.0 and found["interpreter:node"] == 0.0
    assert child["parent:interpreter"] == child["parent:same_program"] == 1.0
    assert started["parent:ai_app"] == 1.0 and started["parent:same_program"] == 0.0


def test_known_runtime_match() -> None:
    seen = obs(name="llama-server", mapped_files=("/m/a.gguf",))
    match = identify(seen)
    found = values(features(seen, match))

    assert isinstance(match, RuntimeMatch)
    assert found["runtime.matched"] == found["runtime.has_models"] == 1.0
    assert found["runtime.has_libraries"] == 0.0


paths = st.text(st.sampled_from("/abcgufl.-_9\\ "), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=20),
    cmdline=st.lists(st.text(max_size=30), max_size=8),
    libraries=st.lists(paths, max_size=8),
    mapped=st.lists(paths, max_size=8),
    listeners=st.lists(st.tuples(st.text(max_size=15), st.integers(0, 65535)), max_size=4),
    rss=st.none() | st.integers(0, 1 << 50),
    cpu=st.none() | st.floats(0, 6400),
    gpu=st.none() | st.tuples(st.none() | st.integers(0, 1 << 42), st.none() | st.floats(0, 1)),
)
def test_any_observation_gives_finite_values_in_the_fixed_order(
    name: str,
    cmdline: list[str],
    libraries: list[str],
    mapped: list[str],
    listeners: list[tuple[str, int]],
    rss: int | None,
    cpu: float | None,
    gpu: tuple[int | None, float | None] | None,
) -> None:
    seen = obs(
        name=name,
        cmdline=tuple(cmdline),
        libraries=tuple(libraries),
        mapped_files=tuple(mapped),
        listeners=tuple(listeners),
        rss=rss,
        cpu_percent=cpu,
    )
    vector = features(seen, identify(seen), {10: gpu} if gpu else None, sizes={})

    assert len(vector.values) == len(FEATURE_NAMES)
    assert all(math.isfinite(value) for value in vector.values)
