"""Which inference runtime a process is: name, version, evidence, libraries and model files.

Pure: a ProcessObservation in, a RuntimeMatch (or None) out. Versions come from package
metadata the sensor reads on our behalf (see VersionHint), never from running a binary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from agent.detect.processes import ProcessObservation


@dataclass(frozen=True)
class VersionHint:
    """Where the version can be read: a site-packages folder (dist-info names) or a package.json."""

    kind: str  # "dist-info" or "package.json"
    path: str
    packages: tuple[str, ...] = ()  # distribution names, for "dist-info"


@dataclass(frozen=True)
class RuntimeMatch:
    name: str
    evidence: tuple[str, ...]
    libraries: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    version: str | None = None
    version_hints: tuple[VersionHint, ...] = field(default=(), compare=False)


# Library path patterns (matched on the lower-cased, forward-slashed path) -> runtime.
_LIBRARIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("lmstudio", r"/\.lmstudio/|/lm studio\.app/|/lm-studio/|/lm studio/"),
        ("jan", r"/jan/data/(llamacpp|mlx)/|/jan\.app/"),
        ("llamafile", r"/\.llamafile/"),
        ("gpt4all", r"(^|/)(lib)?llmodel\.(so|dylib|dll)"),
        ("koboldcpp", r"(^|/)koboldcpp[^/]*\.(so|dylib|dll)$"),
        ("vllm", r"/vllm/[^/]*\.so$|/vllm/vllm_flash_attn/"),
        ("sglang", r"/(sglang|sgl_kernel)/[^/]*\.so$"),
        ("mlx", r"/mlx/core[^/]*\.so$|(^|/)libmlx\.(dylib|so)"),
        ("llama-cpp-python", r"/llama_cpp/lib/lib(llama|ggml)"),
        ("node-llama-cpp", r"/@?node-llama-cpp/.*((^|/)libllama[^/]*|llama-addon\.node)$"),
        ("llama.cpp", r"(^|/)(lib)?llama([.-][^/]*)?\.(so|dylib|dll)(\.[\d.]+)?$"),
        # ggml's front ends ship their own library beside ggml's: libwhisper, libstable-diffusion.
        ("whisper.cpp", r"(^|/)(lib)?whisper([.-][^/]*)?\.(so|dylib|dll)(\.[\w.+-]+)?$"),
        ("stable-diffusion.cpp", r"(^|/)(lib)?stable-diffusion[^/]*\.(so|dylib|dll)(\.[\w.+-]+)?$"),
        ("ggml", r"(^|/)(lib)?ggml([.-][^/]*)?\.(so|dylib|dll)(\.[\w.+-]+)?$"),
        ("onnxruntime", r"onnxruntime_pybind11_state|(^|/)(lib)?onnxruntime(\.|-[\d])"),
        ("onnxruntime", r"onnxruntime_binding\.node$"),
        ("tflite", r"libtensorflowlite|/tflite_runtime/|_pywrap_tensorflow_interpreter_wrapper"),
        ("tflite", r"/ai_edge_litert/|_pywrap_tensorflow_lite"),
        ("pytorch", r"(^|/)(lib)?torch_(cpu|cuda|python)\.(so|dylib|dll)$"),
        ("tokenizers", r"/tokenizers/tokenizers[^/]*\.(so|pyd)$"),
    )
)
# Every pattern above needs one of these words: a cheap test that skips most libraries.
_LIBRARY_WORDS = (
    "llama",
    "onnxruntime",
    "torch",
    "tensorflow",
    "tflite",
    "litert",
    "studio",
    "jan",
    "llmodel",
    "kobold",
    "vllm",
    "sgl",
    "mlx",
    "tokenizers",
    "ggml",
    "whisper",
    "stable-diffusion",
)
# Python distributions whose dist-info carries each runtime's version.
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": (
        "onnxruntime",
        "onnxruntime_gpu",
        "onnxruntime_directml",
        "onnxruntime_openvino",
        "onnxruntime_silicon",
        "onnxruntime_qnn",
    ),
    "pytorch": ("torch",),
    "transformers": ("transformers",),
    "llama-cpp-python": ("llama_cpp_python",),
    "vllm": ("vllm",),
    "sglang": ("sglang",),
    "mlx-lm": ("mlx_lm",),
    "mlx": ("mlx",),
    "tflite": ("tflite_runtime", "ai_edge_litert", "tensorflow", "tensorflow_cpu"),
    "gpt4all": ("gpt4all",),
}
_NPM_PACKAGES = {"node-llama-cpp": "node-llama-cpp", "onnxruntime": "onnxruntime-node"}
_LLAMA_CPP_PROGRAMS = frozenset(
    {
        "llama-server",
        "llama-cli",
        "llama-run",
        "llama-simple",
        "llama-mtmd-cli",
        "llama-embedding",
        "llama-bench",
        "llama-perplexity",
        "llama-speculative",
        "llama-batched",
    }
)
_WHISPER_CPP_PROGRAMS = frozenset(
    {"whisper-cli", "whisper-server", "whisper-stream", "whisper-command", "whisper-bench"}
)
_SD_CPP_PROGRAMS = frozenset({"sd", "sd-cli", "sd-server"})
_OLLAMA_PARENTS = frozenset({"ollama", "ollama.exe", "ollama app.exe", "ollama app"})
_MODEL_EXTENSIONS = re.compile(
    r"\.(gguf|ggml|safetensors|onnx|ort|pt|pth|ckpt|tflite|mlmodel|h5|keras|llamafile|pte)$"
)
_STORE_BLOB = re.compile(r"/blobs/(sha256[-:])?[0-9a-f]{40,64}$|/models/.*\.bin$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
# libonnxruntime.so.1.17.0, libggml-base.so.0.9.4-dirty (a local build's git suffix)
_SONAME_VERSION = re.compile(
    r"\.(?:so|dylib)\.(\d+\.\d+(?:\.\d+)?)(?:-[0-9a-z]+)?$|\.(\d+\.\d+\.\d+)\.dylib$"
)


def is_model_path(path: str) -> bool:
    """Model files by extension, plus Ollama and Hugging Face blobs and `.bin` under models/."""
    lowered = _norm(path)
    return bool(_MODEL_EXTENSIONS.search(lowered) or _STORE_BLOB.search(lowered))


def _norm(path: str) -> str:
    return path.replace("\\", "/").lower()


def _base(path: str) -> str:
    return _norm(path).rsplit("/", 1)[-1].removesuffix(".exe")


@dataclass(frozen=True)
class _Facts:
    """What the rules look at, computed once per observation."""

    obs: ProcessObservation
    programs: frozenset[str]  # basenames of exe, argv[0] and the process name
    args: tuple[str, ...]
    python: bool
    module: str  # `python -m MODULE`
    script: str  # the script a python process runs, lower-cased path
    text: str  # the whole command line, lower-cased
    libs: dict[str, tuple[str, ...]]  # runtime -> matching library paths
    models: tuple[str, ...]
    paths: str  # exe, script, argv[0] and libraries, normalised, one per line

    def program(self, *names: str) -> bool:
        return any(name in self.programs for name in names)

    def paths_contain(self, *needles: str) -> bool:
        return any(needle in self.paths for needle in needles)


_INTERPRETER = re.compile(r"python[\d.]*w?|node|bun|deno")
_PYTHON = re.compile(r"python[\d.]*w?")


def _launch(argv: Sequence[str]) -> tuple[str, str, tuple[str, ...]]:
    """(module, script, arguments) of an interpreter's command line: `python -m vllm...` or
    `python /venv/bin/vllm serve` (how a console script shows) or `node cli.js`."""
    rest = list(argv[1:])
    while rest and rest[0].startswith("-") and rest[0] != "-m":
        rest.pop(0)
    if rest[:1] == ["-m"] and len(rest) > 1:
        return rest[1], "", tuple(rest[2:])
    if rest:
        return "", _norm(rest[0]), tuple(rest[1:])
    return "", "", ()


def _runtime_libraries(libraries: Sequence[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for lib in libraries:
        lowered = _norm(lib)
        if not any(word in lowered for word in _LIBRARY_WORDS):
            continue
        for name, pattern in _LIBRARIES:
            if pattern.search(lowered):
                found.setdefault(name, []).append(lib)
    return {name: tuple(paths) for name, paths in found.items()}


def _facts(obs: ProcessObservation) -> _Facts:
    argv = obs.cmdline
    programs = {_base(p) for p in (obs.exe or "", argv[0] if argv else "", obs.name) if p}
    module, script, args = "", "", tuple(argv[1:])
    interpreter = any(_INTERPRETER.fullmatch(p) for p in programs)
    if interpreter and argv:
        module, script, args = _launch(argv)
        programs.add(_base(script))
    models = tuple(sorted({p for p in (*obs.mapped_files, *obs.open_files) if is_model_path(p)}))
    return _Facts(
        obs=obs,
        programs=frozenset(programs - {""}),
        args=args,
        python=any(_PYTHON.fullmatch(p) for p in programs),
        module=module,
        script=script,
        text=" ".join(argv).lower(),
        libs=_runtime_libraries(obs.libraries),
        models=models,
        paths="\n".join(_norm(p) for p in (obs.exe or "", script, *argv[:1], *obs.libraries)),
    )


Rule = Callable[[_Facts], str | None]  # evidence when the rule matches


def _ollama(f: _Facts) -> str | None:
    if f.program("ollama") and f.args[:1] in (("serve",), ("runner",)):
        return f"ollama {f.args[0]}"
    if f.program("ollama_llama_server"):
        return "Ollama's llama server"
    parent = (f.obs.parent_name or "").lower()
    if parent in _OLLAMA_PARENTS and (f.program(*_LLAMA_CPP_PROGRAMS) or "llama.cpp" in f.libs):
        return f"llama.cpp runner started by {f.obs.parent_name}"
    return None


def _lmstudio(f: _Facts) -> str | None:
    if f.program("lm studio", "lm-studio", "lmstudio", "llmster", "lms"):
        return "LM Studio executable"
    if f.paths_contain("/lm studio.app/", "/.lmstudio/", "/lm-studio", "/programs/lm studio/"):
        return "runs from LM Studio's folders"
    return None


def _jan(f: _Facts) -> str | None:
    if f.program("jan") or f.paths_contain("/jan.app/", "/programs/jan/", "/jan/data/llamacpp/"):
        return "Jan executable or backend"
    if (f.obs.parent_name or "").lower() in ("jan", "jan.exe") and f.program(*_LLAMA_CPP_PROGRAMS):
        return "llama.cpp server started by Jan"
    return None


def _gpt4all(f: _Facts) -> str | None:
    if f.program("gpt4all") or (f.program("chat") and f.paths_contain("/gpt4all/")):
        return "GPT4All executable"
    return "GPT4All llmodel library" if "gpt4all" in f.libs else None


def _koboldcpp(f: _Facts) -> str | None:
    named = any(p.startswith("koboldcpp") for p in f.programs) or "koboldcpp" in _base(f.script)
    return "KoboldCpp executable or script" if named or "koboldcpp" in f.libs else None


def _localai(f: _Facts) -> str | None:
    if f.program("local-ai", "localai"):
        return "LocalAI executable"
    if (f.obs.parent_name or "").lower() in ("local-ai", "localai"):
        return "backend started by LocalAI"
    return None


def _llamafile(f: _Facts) -> str | None:
    if any(p == "llamafile" or p.endswith(".llamafile") for p in f.programs):
        return "llamafile executable"
    return "llamafile's extracted GPU module" if "llamafile" in f.libs else None


def _webui(f: _Facts) -> str | None:
    if not f.python or _base(f.script) not in ("server.py", "one_click.py"):
        return None
    if f.paths_contain("text-generation-webui", "/installer_files/env/"):
        return "text-generation-webui server.py in its installer environment"
    return None


def _vllm(f: _Facts) -> str | None:
    if (f.program("vllm") and "serve" in f.args[:1]) or f.module.startswith("vllm."):
        return "vLLM command line"
    if f.obs.name.lower().startswith("vllm::") or "vllm.entrypoints" in f.text:
        return "vLLM engine process"
    return None


def _sglang(f: _Facts) -> str | None:
    return "SGLang command line" if f.module.startswith("sglang.") else None


def _mlx_lm(f: _Facts) -> str | None:
    if f.module.startswith("mlx_lm") or any(p.startswith("mlx_lm") for p in f.programs):
        return "MLX-LM command line"
    return None


def _llama_cpp_python(f: _Facts) -> str | None:
    return "llama_cpp.server module" if f.module.startswith("llama_cpp") else None


def _node_llama_cpp(f: _Facts) -> str | None:
    return "node-llama-cpp CLI" if "node-llama-cpp/dist/cli" in f.text else None


def _llama_cpp(f: _Facts) -> str | None:
    if f.program(*_LLAMA_CPP_PROGRAMS):
        return "llama.cpp executable"
    if any(_norm(m).endswith(".gguf") for m in f.obs.mapped_files):
        return "maps a GGUF model"
    return None


def _whisper_cpp(f: _Facts) -> str | None:
    if f.program(*_WHISPER_CPP_PROGRAMS):
        return "whisper.cpp executable"
    if "ggml" in f.libs and f.paths_contain("/whisper.cpp/"):
        return "ggml loaded from a whisper.cpp build"
    return None


def _stable_diffusion_cpp(f: _Facts) -> str | None:
    # "sd" alone is too common a name: it counts only beside ggml or in sd.cpp's own folder.
    beside_ggml = "ggml" in f.libs or f.paths_contain("/stable-diffusion.cpp/")
    if f.program(*_SD_CPP_PROGRAMS) and beside_ggml:
        return "stable-diffusion.cpp executable"
    return None


def _transformers(f: _Facts) -> str | None:
    if f.module.startswith("transformers") or f.program("transformers-cli", "transformers"):
        return "transformers command line"
    native = any(name in f.libs for name in ("pytorch", "onnxruntime", "tflite"))
    if native and "tokenizers" in f.libs:
        return "Hugging Face tokenizers loaded beside a tensor runtime"
    return None


def _tflite(f: _Facts) -> str | None:
    opened = any(_norm(p).endswith(".tflite") for p in f.obs.open_files)
    return "has a .tflite model open" if opened else None


def _default_port(f: _Facts) -> str | None:
    if any(port == 11434 for _, port in f.obs.listeners):
        return "listens on Ollama's default port 11434"
    return None


# First match names the runtime: applications before the bindings and libraries they carry.
_RULES: tuple[tuple[str, Rule | None], ...] = (
    ("ollama", _ollama),
    ("lmstudio", _lmstudio),
    ("jan", _jan),
    ("gpt4all", _gpt4all),
    ("koboldcpp", _koboldcpp),
    ("localai", _localai),
    ("llamafile", _llamafile),
    ("text-generation-webui", _webui),
    ("vllm", _vllm),
    ("sglang", _sglang),
    ("mlx-lm", _mlx_lm),
    ("mlx", None),
    ("llama-cpp-python", _llama_cpp_python),
    ("node-llama-cpp", _node_llama_cpp),
    # ggml's other front ends before llama.cpp: stable-diffusion.cpp maps GGUF files too.
    ("whisper.cpp", _whisper_cpp),
    ("stable-diffusion.cpp", _stable_diffusion_cpp),
    ("llama.cpp", _llama_cpp),
    ("transformers", _transformers),
    ("ggml", None),  # ggml alone (a VAD in a Python process, another front end): the engine
    ("onnxruntime", None),
    ("tflite", _tflite),
    ("pytorch", None),
    ("ollama", _default_port),
)


def _evidence(f: _Facts, name: str, rule: Rule | None) -> str | None:
    found = rule(f) if rule is not None else None
    if found is None and f.libs.get(name):
        found = f"loads {_base(f.libs[name][0])}"
    return found


def identify(obs: ProcessObservation) -> RuntimeMatch | None:
    """The runtime this process is, or None for a process that shows no inference runtime."""
    f = _facts(obs)
    for name, rule in _RULES:
        found = _evidence(f, name, rule)
        if found is None:
            continue
        evidence = [found, *(f"loads {_base(paths[0])}" for paths in f.libs.values())]
        evidence += [f"maps or opens {m}" for m in f.models[:4]]
        libraries = tuple(sorted({lib for paths in f.libs.values() for lib in paths}))
        return RuntimeMatch(
            name=name,
            evidence=tuple(dict.fromkeys(evidence)),
            libraries=libraries,
            models=f.models,
            version=soname_version(f.libs.get(name, ())),
            version_hints=version_hints(name, libraries),
        )
    return None


def soname_version(libraries: Sequence[str]) -> str | None:
    """A version spelled in a native library's file name (libonnxruntime.so.1.17.0)."""
    for lib in libraries:
        found = _SONAME_VERSION.search(_norm(lib))
        if found:
            return found.group(1) or found.group(2)
    return None


def version_hints(name: str, libraries: Sequence[str]) -> tuple[VersionHint, ...]:
    """Where the sensor may read this runtime's version, most specific first."""
    hints: list[VersionHint] = []
    for lib in libraries:
        path = lib.replace("\\", "/")
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path and name in _DISTRIBUTIONS:
                folder = path.split(marker, 1)[0] + marker.rstrip("/")
                hints.append(VersionHint("dist-info", folder, _DISTRIBUTIONS[name]))
        if "/node_modules/" in path and name in _NPM_PACKAGES:
            root, _, inside = path.rpartition("/node_modules/")
            parts = inside.split("/")
            own = "/".join(parts[:2] if parts[0].startswith("@") else parts[:1])
            for package in (_NPM_PACKAGES[name], own):
                hints.append(
                    VersionHint("package.json", f"{root}/node_modules/{package}/package.json")
                )
    return tuple(dict.fromkeys(hints))


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def version_from_dist_info(names: Iterable[str], packages: Sequence[str]) -> str | None:
    """The version in a `{name}-{version}.dist-info` folder name for the first package present."""
    found: dict[str, str] = {}
    for entry in names:
        if not entry.endswith(".dist-info") or "-" not in entry:
            continue
        dist, _, version = entry.removesuffix(".dist-info").rpartition("-")
        if _VERSION.match(version):
            found.setdefault(_dist_key(dist), version)
    for package in packages:
        if _dist_key(package) in found:
            return found[_dist_key(package)]
    return None


def version_from_package_json(data: bytes) -> str | None:
    """The `version` of an npm package.json; None when the bytes are not one."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return None
    version = parsed.get("version") if isinstance(parsed, dict) else None
    return version if isinstance(version, str) and _VERSION.match(version) else None


def with_version(match: RuntimeMatch, version: str | None) -> RuntimeMatch:
    """The match with a version filled in, unless it already had one."""
    if match.version is not None or version is None or not _VERSION.match(version):
        return match
    return replace(match, version=version)
