"""Classifier features of one process: the weak signals of local inference as a fixed vector.

Pure and shared: the agent scores these, training fits on these, so both see the same numbers.
Every optional input has its own "present" feature; a missing reading is never a zero that lies.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.detect.processes import GpuUse, ProcessObservation
from agent.detect.runtimes import RuntimeMatch, is_model_path

FEATURE_VERSION = 1

# Library families by the stem of a library's file name (lower-cased, without a leading "lib",
# up to the first "." or "-"): a family matches a stem that starts with one of its prefixes.
_LIBRARY_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ggml", ("ggml",)),
    ("llama", ("llama", "llmodel")),
    ("torch", ("torch", "c10")),
    ("onnxruntime", ("onnxruntime",)),
    ("tensorflow", ("tensorflow_framework", "tensorflow_cc", "_pywrap_tensorflow_internal")),
    ("tflite", ("tensorflowlite", "tflite", "_pywrap_tensorflow_lite", "litert")),
    (
        "cuda",
        (
            "cuda",
            "cudart",
            "cublas",
            "cudnn",
            "nvrtc",
            "cufft",
            "curand",
            "cusparse",
            "nccl",
            "nvcuda",
        ),
    ),
    ("rocm", ("amdhip", "rocblas", "hipblas", "miopen", "hsa", "rccl", "rocm")),
    ("metal", ("metal", "mps")),
    ("directml", ("directml",)),
    ("openvino", ("openvino",)),
    ("mlx", ("mlx",)),
    ("coreml", ("coreml", "espresso")),
    ("onednn_mkl", ("dnnl", "mkldnn", "mkl", "iomp5")),
    ("blas", ("openblas", "blas", "cblas", "lapack", "scipy_openblas", "accelerate")),
    ("openmp", ("gomp", "omp", "iomp5", "vcomp")),
    ("vulkan", ("vulkan", "vk_")),
    ("opencl", ("opencl",)),
    ("tokenizers", ("tokenizers", "_sentencepiece", "sentencepiece", "_tiktoken")),
    ("safetensors", ("_safetensors_rust",)),
    ("numpy", ("_multiarray_umath",)),
    ("python", ("python3",)),
    ("node_addon", ()),
)
_FAMILY_NAMES = tuple(name for name, _ in _LIBRARY_FAMILIES)
_BY_HEAD: dict[str, list[tuple[str, str]]] = {}  # first 3 letters -> (prefix, family)
for _family, _prefixes in _LIBRARY_FAMILIES:
    for _prefix in _prefixes:
        _BY_HEAD.setdefault(_prefix[:3], []).append((_prefix, _family))
_STEM_END = re.compile(r"[.\-]")

# Indicative command-line words: one feature each, present or not.
CMDLINE_TOKENS: tuple[str, ...] = (
    "serve",
    "server",
    "model",
    "models",
    "gguf",
    "onnx",
    "safetensors",
    "llama",
    "ollama",
    "vllm",
    "infer",
    "inference",
    "generate",
    "chat",
    "completion",
    "embedding",
    "predict",
    "transformers",
    "torch",
    "checkpoint",
    "weights",
    "tokenizer",
    "lora",
    "quant",
    "hf",
    "--model",
    "-m",
    "--ctx-size",
    "-c",
    "-ngl",
    "--n-gpu-layers",
    "--host",
    "--port",
    "--threads",
    "-t",
    "--device",
    "cuda",
    "mps",
)
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")

# Ports inference servers listen on by default.
INFERENCE_PORTS = frozenset(
    {11434, 8080, 8000, 1234, 1337, 5001, 4891, 7860, 8188, 30000, 39281, 5000, 9000, 8001}
)
_LOOPBACK = ("127.", "::1", "localhost", "::ffff:127.")

_PARENTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("shell", frozenset({"bash", "sh", "zsh", "fish", "dash", "pwsh", "powershell", "cmd"})),
    ("service_manager", frozenset({"systemd", "init", "launchd", "services", "svchost"})),
    ("terminal", frozenset({"tmux", "screen", "sshd", "code", "explorer", "terminal", "iterm2"})),
    ("container", frozenset({"containerd-shim", "containerd-shim-runc-v2", "conmon", "docker"})),
    ("ai_app", frozenset({"ollama", "ollama app", "lm studio", "lm-studio", "jan", "gpt4all"})),
    ("interpreter", frozenset({"python", "python3", "node", "bun", "deno", "uv"})),
)
_INTERPRETERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("python", re.compile(r"python[\d.]*w?")),
    ("node", re.compile(r"node|bun|deno")),
    ("jvm", re.compile(r"java|beam\.smp|dotnet")),
)
# Where model files live, whatever their extension.
_MODEL_LOCATION = re.compile(
    r"/blobs/sha256[-:]|/models--[^/]+--|/\.ollama/|/huggingface/|/\.lmstudio/|/lm studio/"
    r"|/models?/|/weights?/|/checkpoints?/|/snapshots/[0-9a-f]{40}/"
)


def _section(prefix: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}:{name}" for name in names)


FEATURE_NAMES: tuple[str, ...] = (
    "maps.present",
    *_section("lib", _FAMILY_NAMES),
    "lib.count_log2",
    "model.mapped_by_extension",
    "model.open_by_extension",
    "model.by_location",
    "model.gguf_mapped",
    "model.safetensors_mapped",
    "model.bytes.present",
    "model.bytes_log2",
    "file.largest_mapped_log2",
    "gpu.present",
    "gpu.memory.present",
    "gpu.memory_log2",
    "gpu.utilization.present",
    "gpu.utilization",
    "rss.present",
    "rss_log2",
    "threads.present",
    "threads_log2",
    "cpu.present",
    "cpu_cores",
    "listen.count_log2",
    "listen.exposed",
    "listen.inference_port",
    "cmdline.present",
    "cmdline.length_log2",
    *_section("cmd", CMDLINE_TOKENS),
    *_section("interpreter", tuple(name for name, _ in _INTERPRETERS)),
    "parent.present",
    *_section("parent", (*(name for name, _ in _PARENTS), "same_program")),
    "runtime.matched",
    "runtime.has_models",
    "runtime.has_libraries",
)


@dataclass(frozen=True)
class FeatureVector:
    """Values in FEATURE_NAMES order, for the FEATURE_VERSION they were computed under."""

    values: tuple[float, ...]
    version: int = FEATURE_VERSION

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.values, strict=True))


def _log2(value: float) -> float:
    return math.log2(1.0 + max(0.0, value))


def _norm(path: str) -> str:
    return path.replace("\\", "/").lower()


def _base(path: str) -> str:
    return _norm(path).rsplit("/", 1)[-1].removesuffix(".exe")


def _families_of(path: str) -> set[str]:
    base = _norm(path).rsplit("/", 1)[-1]
    stem = _STEM_END.split(base.removeprefix("lib"), maxsplit=1)[0]
    found = {family for prefix, family in _BY_HEAD.get(stem[:3], ()) if stem.startswith(prefix)}
    if base.endswith(".node"):
        found.add("node_addon")
    if ".cpython-" in base or base.endswith(".pyd"):
        found.add("python")
    if "ggml-metal" in base:
        found.add("metal")
    if stem == "core" and "/mlx/" in _norm(path):  # mlx/core.cpython-*.so
        found.add("mlx")
    return found


def library_families(libraries: tuple[str, ...]) -> dict[str, float]:
    """lib:FAMILY -> 1.0 when a loaded library belongs to that family, else 0.0."""
    return dict(zip(_LIB_NAMES, _families(libraries), strict=True))


_LIB_NAMES = _section("lib", _FAMILY_NAMES)


def clear_cache() -> None:
    """Forget memoised library families (for benchmarks of a first look)."""
    _families.cache_clear()


@functools.lru_cache(maxsize=4096)
def _families(libraries: tuple[str, ...]) -> tuple[float, ...]:
    # Memoised: a process keeps its libraries from scan to scan, and many processes share a set.
    found: set[str] = set()
    for lib in libraries:
        found |= _families_of(lib)
    return tuple(float(name in found) for name in _FAMILY_NAMES)


def located(path: str) -> bool:
    """Whether a file sits where model files live (a store's blobs, models/, weights/, ...)."""
    return bool(_MODEL_LOCATION.search(_norm(path)))


def _model_files(obs: ProcessObservation, sizes: Mapping[str, int] | None) -> dict[str, float]:
    mapped = [p for p in obs.mapped_files if is_model_path(p)]
    opened = [p for p in obs.open_files if is_model_path(p)]
    everything = sorted({*obs.mapped_files, *obs.open_files})
    by_location = [p for p in everything if located(p) and not is_model_path(p)]
    models = sorted({*mapped, *opened, *by_location})
    known = sizes is not None and all(p in sizes for p in models)
    model_bytes = sum(sizes.get(p, 0) for p in models) if sizes is not None else 0
    largest = max((sizes.get(p, 0) for p in obs.mapped_files), default=0) if sizes else 0
    return {
        "model.mapped_by_extension": _log2(len(mapped)),
        "model.open_by_extension": _log2(len(opened)),
        "model.by_location": _log2(len(by_location)),
        "model.gguf_mapped": float(any(_norm(p).endswith(".gguf") for p in obs.mapped_files)),
        "model.safetensors_mapped": float(
            any(_norm(p).endswith(".safetensors") for p in obs.mapped_files)
        ),
        "model.bytes.present": float(known),
        "model.bytes_log2": _log2(model_bytes) if known else 0.0,
        "file.largest_mapped_log2": _log2(largest) if sizes is not None else 0.0,
    }


def _gpu(obs: ProcessObservation, gpu: GpuUse | None) -> dict[str, float]:
    # gpu is None: no GPU source on this host. A source that lists no sample for this process
    # says it uses no GPU, a true zero.
    sample = gpu.get(obs.pid, (0, 0.0)) if gpu is not None else None
    memory, busy = sample if sample is not None else (None, None)
    return {
        "gpu.present": float(gpu is not None),
        "gpu.memory.present": float(memory is not None),
        "gpu.memory_log2": _log2(memory) if memory is not None else 0.0,
        "gpu.utilization.present": float(busy is not None),
        "gpu.utilization": min(1.0, max(0.0, busy)) if busy is not None else 0.0,
    }


def _usage(obs: ProcessObservation) -> dict[str, float]:
    return {
        "rss.present": float(obs.rss is not None),
        "rss_log2": _log2(obs.rss) if obs.rss is not None else 0.0,
        "threads.present": float(obs.num_threads is not None),
        "threads_log2": _log2(obs.num_threads) if obs.num_threads is not None else 0.0,
        "cpu.present": float(obs.cpu_percent is not None),
        "cpu_cores": obs.cpu_percent / 100.0 if obs.cpu_percent is not None else 0.0,
    }


def _exposed(address: str) -> bool:
    return not address.lower().startswith(_LOOPBACK)


def _listeners(obs: ProcessObservation) -> dict[str, float]:
    return {
        "listen.count_log2": _log2(len(obs.listeners)),
        "listen.exposed": float(any(_exposed(address) for address, _ in obs.listeners)),
        "listen.inference_port": float(any(port in INFERENCE_PORTS for _, port in obs.listeners)),
    }


def command_tokens(cmdline: tuple[str, ...]) -> frozenset[str]:
    """Whole lower-cased arguments, their `--flag` part before `=`, and their word pieces."""
    tokens: set[str] = set()
    for arg in cmdline:
        lowered = arg.lower()
        tokens.add(lowered)
        if lowered.startswith("-"):
            tokens.add(lowered.partition("=")[0])
        tokens.update(piece for piece in _TOKEN_SPLIT.split(lowered) if piece)
    return frozenset(tokens)


def _cmdline(obs: ProcessObservation) -> dict[str, float]:
    tokens = command_tokens(obs.cmdline)
    found = {f"cmd:{token}": float(token in tokens) for token in CMDLINE_TOKENS}
    return {
        "cmdline.present": float(bool(obs.cmdline)),
        "cmdline.length_log2": _log2(sum(len(arg) + 1 for arg in obs.cmdline)),
        **found,
    }


def _programs(obs: ProcessObservation) -> set[str]:
    first = obs.cmdline[0] if obs.cmdline else ""
    return {_base(p) for p in (obs.exe or "", first, obs.name) if p}


def _interpreter(obs: ProcessObservation) -> dict[str, float]:
    programs = _programs(obs)
    return {
        f"interpreter:{name}": float(any(pattern.fullmatch(p) for p in programs))
        for name, pattern in _INTERPRETERS
    }


def _parent(obs: ProcessObservation) -> dict[str, float]:
    parent = _base(obs.parent_name or "")
    found = {f"parent:{name}": float(parent in names) for name, names in _PARENTS}
    if parent.startswith("python"):
        found["parent:interpreter"] = 1.0
    found["parent:same_program"] = float(bool(parent) and parent in _programs(obs))
    return {"parent.present": float(bool(parent)), **found}


def _runtime(match: RuntimeMatch | None) -> dict[str, float]:
    return {
        "runtime.matched": float(match is not None),
        "runtime.has_models": float(match is not None and bool(match.models)),
        "runtime.has_libraries": float(match is not None and bool(match.libraries)),
    }


def features(
    obs: ProcessObservation,
    match: RuntimeMatch | None,
    gpu: GpuUse | None = None,
    *,
    sizes: Mapping[str, int] | None = None,
) -> FeatureVector:
    """The feature vector of one process.

    `gpu` is the host's GPU reading (pid -> memory bytes, utilization), None where the host
    has no GPU source; `sizes` gives the byte size of mapped and open files, None where they
    were not measured. Libraries, mapped and open files count as unreadable when the process
    shows neither a library nor a mapped file (every dynamically linked program maps both).
    """
    visible = bool(obs.libraries or obs.mapped_files)
    found: dict[str, float] = {
        "maps.present": float(visible),
        **library_families(obs.libraries),
        "lib.count_log2": _log2(len(obs.libraries)),
        **_model_files(obs, sizes),
        **_gpu(obs, gpu),
        **_usage(obs),
        **_listeners(obs),
        **_cmdline(obs),
        **_interpreter(obs),
        **_parent(obs),
        **_runtime(match),
    }
    return FeatureVector(tuple(found[name] for name in FEATURE_NAMES))
