"""Profiles of macOS and Windows processes derived from what their programs load.

No macOS or Windows machine takes part in capture, so these rows are written from each
program's documented layout (release archives, wheels, app bundles), marked derived=true with
their source. `python -m agent.training.derived` rewrites dataset/derived.jsonl.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

from agent.detect.processes import ProcessObservation
from agent.training.dataset import DATASET_DIR, Provenance, Row, write_rows

DATE = "2026-11-22"
GIB = 1 << 30
MAC_FW = "/System/Library/Frameworks"
MAC_HOME = "/Users/dev"
WIN_HOME = "C:\\Users\\dev"
WIN_SYS = "C:\\Windows\\System32"
SHA = "sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa"
HF_SNAPSHOT = "snapshots/0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Profile:
    program: str
    label: str
    family: str
    os: str  # "macos" or "windows"
    exe: str
    argv: tuple[str, ...]
    parent: str
    libraries: tuple[str, ...]
    source: str
    models: tuple[tuple[str, int], ...] = ()  # mapped model files and their sizes
    opened: tuple[str, ...] = ()
    listeners: tuple[tuple[str, int], ...] = ()
    rss: int = 200 << 20
    threads: int = 12
    cpu_busy: float = 100.0
    gpu_memory: int | None = None  # bytes of GPU (or unified) memory while loaded


def _mac_frameworks(*names: str) -> tuple[str, ...]:
    return tuple(f"{MAC_FW}/{name}.framework/Versions/A/{name}" for name in names)


def _mac_base() -> tuple[str, ...]:
    return (
        "/usr/lib/dyld",
        "/usr/lib/libSystem.B.dylib",
        "/usr/lib/libc++.1.dylib",
        "/usr/lib/libobjc.A.dylib",
        *_mac_frameworks("Foundation", "CoreFoundation"),
    )


def _in(folder: str, *names: str, sep: str = "/") -> tuple[str, ...]:
    return tuple(f"{folder}{sep}{name}" for name in names)


def _win_base() -> tuple[str, ...]:
    return _in(
        WIN_SYS,
        "ntdll.dll",
        "KERNEL32.DLL",
        "KERNELBASE.dll",
        "ucrtbase.dll",
        "msvcp140.dll",
        "vcruntime140.dll",
        "ADVAPI32.dll",
        "ws2_32.dll",
        sep="\\",
    )


_GGML_MAC = (
    "libggml.dylib",
    "libggml-base.dylib",
    "libggml-cpu.dylib",
    "libggml-metal.dylib",
    "libggml-blas.dylib",
    "libllama.dylib",
)
_METAL = ("Metal", "MetalKit", "MetalPerformanceShaders", "Accelerate")
_CUDA_WIN = ("cudart64_12.dll", "cublas64_12.dll", "cublasLt64_12.dll")
_GGML_WIN = ("ggml.dll", "ggml-base.dll", "ggml-cpu.dll", "ggml-cuda.dll", "llama.dll")
_GGUF_MAC = f"{MAC_HOME}/.ollama/models/blobs/{SHA}"
_GGUF_WIN = f"{WIN_HOME}\\.ollama\\models\\blobs\\{SHA}"
_SITE_MAC = f"{MAC_HOME}/.venv/lib/python3.12/site-packages"
_SITE_WIN = f"{WIN_HOME}\\.venv\\Lib\\site-packages"


# The tables keep one profile per block, laid out by hand.
# fmt: off
def _mac_profiles() -> tuple[Profile, ...]:
    llama = f"{MAC_HOME}/llama.cpp/build/bin"
    lms = f"{MAC_HOME}/.lmstudio/extensions/backends/llama.cpp-mac-arm64-apple-metal-advsimd-1.50.0"
    python = ("/opt/homebrew/opt/python@3.12/Frameworks/Python.framework/Versions/3.12/Python",)
    return (
        Profile("ollama-runner-macos", "inference", "llama.cpp", "macos",
                "/Applications/Ollama.app/Contents/Resources/ollama",
                ("/Applications/Ollama.app/Contents/Resources/ollama", "runner", "--model",
                 _GGUF_MAC, "--port", "53124"), "ollama",
                (*_mac_base(), *_mac_frameworks(*_METAL)),
                "Ollama.app layout: one ollama binary, Metal and Accelerate linked; runner "
                "subprocess per model (ollama ps, docs/faq.md)",
                models=((_GGUF_MAC, 4 * GIB),), listeners=(("127.0.0.1", 53124),),
                rss=5 * GIB, threads=18, cpu_busy=60.0, gpu_memory=5 * GIB),
        Profile("llama-server-macos", "inference", "llama.cpp", "macos", f"{llama}/llama-server",
                (f"{llama}/llama-server", "-m", f"{MAC_HOME}/models/qwen2.5-7b-q4_k_m.gguf",
                 "--port", "8080", "-ngl", "99"), "zsh",
                (*_mac_base(), *_in(llama, *_GGML_MAC), *_mac_frameworks(*_METAL)),
                "llama.cpp macOS release archive (llama-bNNNN-bin-macos-arm64.zip): "
                "libllama.dylib, libggml-*.dylib beside llama-server",
                models=((f"{MAC_HOME}/models/qwen2.5-7b-q4_k_m.gguf", int(4.7 * GIB)),),
                listeners=(("127.0.0.1", 8080),), rss=5 * GIB, threads=16, gpu_memory=5 * GIB),
        Profile("lmstudio-macos", "inference", "lmstudio", "macos",
                "/Applications/LM Studio.app/Contents/MacOS/LM Studio",
                ("/Applications/LM Studio.app/Contents/MacOS/LM Studio",), "launchd",
                (*_mac_base(), *_in(lms, *_GGML_MAC), *_mac_frameworks(*_METAL)),
                "LM Studio bundle and ~/.lmstudio/extensions/backends/llama.cpp-mac-arm64-*",
                models=((f"{MAC_HOME}/.lmstudio/models/lmstudio-community/gemma-3-4b.gguf",
                         3 * GIB),), listeners=(("127.0.0.1", 1234),), rss=4 * GIB,
                threads=40, cpu_busy=80.0, gpu_memory=3 * GIB),
        Profile("mlx-lm-server-macos", "inference", "mlx", "macos",
                "/opt/homebrew/bin/python3.12",
                ("python3.12", "-m", "mlx_lm.server", "--model",
                 "mlx-community/Llama-3.2-3B-Instruct-4bit", "--port", "8081"), "zsh",
                (*_mac_base(), *python, *_in(f"{_SITE_MAC}/mlx/lib", "libmlx.dylib"),
                 f"{_SITE_MAC}/mlx/core.cpython-312-darwin.so",
                 f"{_SITE_MAC}/numpy/_core/_multiarray_umath.cpython-312-darwin.so",
                 f"{_SITE_MAC}/tokenizers/tokenizers.abi3.so", *_mac_frameworks(*_METAL)),
                "mlx wheel (mlx/lib/libmlx.dylib, mlx/core.*.so); mlx-lm server docs",
                models=((f"{MAC_HOME}/.cache/huggingface/hub/models--mlx-community--Llama-3.2"
                         f"-3B-Instruct-4bit/{HF_SNAPSHOT}/model.safetensors", int(1.8 * GIB)),),
                listeners=(("127.0.0.1", 8081),), rss=2 * GIB, threads=8, gpu_memory=2 * GIB),
        Profile("torch-mps-macos", "inference", "pytorch", "macos",
                "/opt/homebrew/bin/python3.12", ("python3.12", "caption.py", "--device", "mps"),
                "zsh",
                (*_mac_base(), *python,
                 *_in(f"{_SITE_MAC}/torch/lib", "libtorch_cpu.dylib", "libtorch_python.dylib",
                      "libc10.dylib", "libomp.dylib", "libtorch.dylib"),
                 f"{_SITE_MAC}/torch/_C.cpython-312-darwin.so",
                 *_mac_frameworks(*_METAL, "MetalPerformanceShadersGraph")),
                "torch macOS arm64 wheel (torch/lib/*.dylib) with the MPS backend frameworks",
                models=((f"{MAC_HOME}/.cache/huggingface/hub/models--Salesforce--blip-image-"
                         f"captioning-base/{HF_SNAPSHOT}/model.safetensors", 990 << 20),),
                rss=3 * GIB, threads=24, gpu_memory=2 * GIB),
        Profile("onnxruntime-coreml-macos", "inference", "onnxruntime", "macos",
                "/opt/homebrew/bin/python3.12", ("python3.12", "detect.py", "yolov8n.onnx"),
                "zsh",
                (*_mac_base(), *python,
                 f"{_SITE_MAC}/onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-darwin.so",
                 *_mac_frameworks("CoreML", "Metal", "Accelerate")),
                "onnxruntime macOS wheel (capi/onnxruntime_pybind11_state.*.so), CoreML EP",
                rss=600 << 20, threads=10, gpu_memory=300 << 20),
        Profile("chrome-gpu-helper-macos", "ordinary", "browser", "macos",
                "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework."
                "framework/Versions/131.0.6778.86/Helpers/Google Chrome Helper (GPU).app/"
                "Contents/MacOS/Google Chrome Helper (GPU)",
                ("Google Chrome Helper (GPU)", "--type=gpu-process"), "Google Chrome",
                (*_mac_base(), *_mac_frameworks("Metal", "IOSurface", "QuartzCore", "AppKit"),
                 "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework."
                 "framework/Versions/131.0.6778.86/Libraries/libGLESv2.dylib"),
                "Chrome app bundle layout; GPU process links Metal for ANGLE",
                rss=400 << 20, threads=20, cpu_busy=30.0, gpu_memory=600 << 20),
        Profile("xcode-clang-macos", "ordinary", "compiler", "macos",
                "/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/"
                "usr/bin/clang", ("clang", "-O2", "-c", "Sources/App/View.m", "-o", "View.o"),
                "make", (*_mac_base(), "/Applications/Xcode.app/Contents/Developer/Toolchains/"
                         "XcodeDefault.xctoolchain/usr/lib/libLTO.dylib"),
                "Xcode toolchain layout", rss=300 << 20, threads=1),
        Profile("postgres-macos", "ordinary", "database", "macos",
                "/opt/homebrew/opt/postgresql@16/bin/postgres",
                ("/opt/homebrew/opt/postgresql@16/bin/postgres", "-D",
                 "/opt/homebrew/var/postgresql@16"), "launchd",
                (*_mac_base(), "/opt/homebrew/opt/icu4c/lib/libicuuc.74.dylib",
                 "/opt/homebrew/opt/openssl@3/lib/libssl.3.dylib"),
                "Homebrew postgresql@16 formula", listeners=(("127.0.0.1", 5432),),
                rss=80 << 20, threads=1, cpu_busy=40.0),
        Profile("final-cut-export-macos", "ordinary", "media", "macos",
                "/Applications/Final Cut Pro.app/Contents/MacOS/Final Cut Pro",
                ("/Applications/Final Cut Pro.app/Contents/MacOS/Final Cut Pro",), "launchd",
                (*_mac_base(), *_mac_frameworks("Metal", "MetalKit", "Accelerate",
                                                "VideoToolbox", "AVFoundation")),
                "app bundle linking Metal and Accelerate for rendering, no model",
                rss=3 * GIB, threads=60, cpu_busy=150.0, gpu_memory=2 * GIB),
    )


def _win_profiles() -> tuple[Profile, ...]:
    ollama = f"{WIN_HOME}\\AppData\\Local\\Programs\\Ollama"
    llama = f"{WIN_HOME}\\llama.cpp"
    torch_lib = f"{_SITE_WIN}\\torch\\lib"
    ort = f"{_SITE_WIN}\\onnxruntime\\capi"
    ov = f"{_SITE_WIN}\\openvino\\libs"
    return (
        Profile("ollama-runner-windows", "inference", "llama.cpp", "windows",
                f"{ollama}\\ollama.exe",
                (f"{ollama}\\ollama.exe", "runner", "--model", _GGUF_WIN, "--port", "61234"),
                "ollama.exe",
                (*_win_base(), *_in(f"{ollama}\\lib\\ollama", "ggml-base.dll",
                                    "ggml-cpu-alderlake.dll", sep="\\"),
                 *_in(f"{ollama}\\lib\\ollama\\cuda_v12", "ggml-cuda.dll", *_CUDA_WIN, sep="\\"),
                 f"{WIN_SYS}\\nvcuda.dll"),
                "Ollama Windows install layout (lib/ollama/ggml-*.dll, cuda_v12/)",
                models=((_GGUF_WIN, 4 * GIB),), listeners=(("127.0.0.1", 61234),),
                rss=900 << 20, threads=30, cpu_busy=25.0, gpu_memory=5 * GIB),
        Profile("llama-server-windows", "inference", "llama.cpp", "windows",
                f"{llama}\\llama-server.exe",
                (f"{llama}\\llama-server.exe", "-m", f"{WIN_HOME}\\models\\phi-4-q4_k_m.gguf",
                 "--host", "0.0.0.0", "--port", "8080", "-ngl", "99"), "cmd.exe",
                (*_win_base(), *_in(llama, *_GGML_WIN, *_CUDA_WIN, sep="\\"),
                 f"{WIN_SYS}\\nvcuda.dll"),
                "llama.cpp Windows CUDA release archive (llama-bNNNN-bin-win-cuda-12.4-x64.zip)",
                models=((f"{WIN_HOME}\\models\\phi-4-q4_k_m.gguf", int(8.4 * GIB)),),
                listeners=(("0.0.0.0", 8080),), rss=1 * GIB, threads=20, gpu_memory=9 * GIB),
        Profile("torch-cuda-windows", "inference", "pytorch", "windows",
                f"{WIN_HOME}\\.venv\\Scripts\\python.exe", ("python.exe", "sdxl_turbo.py"),
                "powershell.exe",
                (*_win_base(), f"{WIN_HOME}\\.venv\\Scripts\\python312.dll",
                 *_in(torch_lib, "c10.dll", "c10_cuda.dll", "torch_cpu.dll", "torch_cuda.dll",
                      "torch_python.dll", "cudnn64_9.dll", "libiomp5md.dll", "uv.dll",
                      *_CUDA_WIN, sep="\\"), f"{WIN_SYS}\\nvcuda.dll"),
                "torch Windows CUDA wheel (torch/lib/*.dll)",
                models=((f"{WIN_HOME}\\.cache\\huggingface\\hub\\models--stabilityai--sdxl-"
                         f"turbo\\{HF_SNAPSHOT}\\unet\\diffusion_pytorch_model.fp16.safetensors",
                         5 * GIB),), rss=6 * GIB, threads=40, gpu_memory=8 * GIB),
        Profile("onnxruntime-directml-windows", "inference", "onnxruntime", "windows",
                f"{WIN_HOME}\\.venv\\Scripts\\python.exe", ("python.exe", "-m", "app.upscale"),
                "Code.exe",
                (*_win_base(), *_in(ort, "onnxruntime_pybind11_state.pyd",
                                    "onnxruntime_providers_shared.dll", "DirectML.dll", sep="\\"),
                 *_in(WIN_SYS, "d3d12.dll", "dxgi.dll", "D3D12Core.dll", sep="\\")),
                "onnxruntime-directml wheel (capi/*.pyd, DirectML.dll)",
                rss=700 << 20, threads=16, gpu_memory=1 * GIB),
        Profile("openvino-genai-windows", "inference", "openvino", "windows",
                f"{WIN_HOME}\\.venv\\Scripts\\python.exe",
                ("python.exe", "chat.py", "TinyLlama-1.1B-int4-ov"), "powershell.exe",
                (*_win_base(), *_in(ov, "openvino.dll", "openvino_genai.dll",
                                    "openvino_intel_cpu_plugin.dll",
                                    "openvino_intel_gpu_plugin.dll", "openvino_tokenizers.dll",
                                    "tbb12.dll", sep="\\")),
                "openvino and openvino-genai Windows wheels (openvino/libs/*.dll)",
                models=((f"{WIN_HOME}\\TinyLlama-1.1B-int4-ov\\openvino_model.bin", 700 << 20),),
                rss=1 * GIB, threads=12),
        Profile("lmstudio-windows", "inference", "lmstudio", "windows",
                f"{WIN_HOME}\\AppData\\Local\\Programs\\LM Studio\\LM Studio.exe",
                ("LM Studio.exe",), "explorer.exe",
                (*_win_base(), *_in(f"{WIN_HOME}\\.lmstudio\\extensions\\backends\\llama.cpp-"
                                    "win-x86_64-vulkan-avx2-1.50.0", "llama.dll", "ggml.dll",
                                    "ggml-base.dll", "ggml-vulkan.dll", sep="\\"),
                 f"{WIN_SYS}\\vulkan-1.dll"),
                "LM Studio Windows install and ~/.lmstudio/extensions/backends/*vulkan*",
                models=((f"{WIN_HOME}\\.lmstudio\\models\\lmstudio-community\\Qwen3-8B-Q4_K_M."
                         "gguf", 5 * GIB),), listeners=(("127.0.0.1", 1234),),
                rss=6 * GIB, threads=50, gpu_memory=5 * GIB),
        Profile("chrome-gpu-windows", "ordinary", "browser", "windows",
                "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
                ("chrome.exe", "--type=gpu-process"), "chrome.exe",
                (*_win_base(), *_in(WIN_SYS, "d3d11.dll", "dxgi.dll", "d3d12.dll", sep="\\"),
                 "C:\\Program Files\\Google\\Chrome\\Application\\131.0.6778.86\\libGLESv2.dll",
                 "C:\\Program Files\\Google\\Chrome\\Application\\131.0.6778.86\\"
                 "vk_swiftshader.dll"),
                "Chrome Windows install layout", rss=350 << 20, threads=18, cpu_busy=20.0,
                gpu_memory=500 << 20),
        Profile("sqlservr-windows", "ordinary", "database", "windows",
                "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.SQLEXPRESS\\MSSQL\\Binn\\"
                "sqlservr.exe", ("sqlservr.exe", "-sSQLEXPRESS"), "services.exe",
                (*_win_base(), "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.SQLEXPRESS\\"
                 "MSSQL\\Binn\\sqllang.dll", "C:\\Program Files\\Microsoft SQL Server\\"
                 "MSSQL16.SQLEXPRESS\\MSSQL\\Binn\\sqlmin.dll"),
                "SQL Server Express install layout", listeners=(("0.0.0.0", 1433),),
                rss=2 * GIB, threads=60, cpu_busy=50.0),
        Profile("msvc-cl-windows", "ordinary", "compiler", "windows",
                "C:\\Program Files\\Microsoft Visual Studio\\2022\\Community\\VC\\Tools\\MSVC\\"
                "14.42.34433\\bin\\Hostx64\\x64\\cl.exe", ("cl.exe", "/O2", "/c", "main.cpp"),
                "MSBuild.exe",
                (*_win_base(), "C:\\Program Files\\Microsoft Visual Studio\\2022\\Community\\VC"
                 "\\Tools\\MSVC\\14.42.34433\\bin\\Hostx64\\x64\\c1xx.dll"),
                "MSVC toolchain layout", rss=400 << 20, threads=1),
        Profile("defender-scan-windows", "ordinary", "security", "windows",
                "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0\\"
                "MsMpEng.exe", ("MsMpEng.exe",), "services.exe",
                (*_win_base(), "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\"
                 "4.18.24090.11-0\\mpengine.dll"),
                "Windows Defender platform layout", rss=300 << 20, threads=40, cpu_busy=90.0),
        Profile("vscode-windows", "ordinary", "editor", "windows",
                f"{WIN_HOME}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
                ("Code.exe",), "explorer.exe",
                (*_win_base(), f"{WIN_HOME}\\AppData\\Local\\Programs\\Microsoft VS Code\\"
                 "ffmpeg.dll", f"{WIN_HOME}\\AppData\\Local\\Programs\\Microsoft VS Code\\"
                 "libGLESv2.dll", *_in(WIN_SYS, "d3d11.dll", "dxgi.dll", sep="\\")),
                "VS Code (Electron) install layout", rss=500 << 20, threads=35, cpu_busy=15.0),
    )


# fmt: on


def _observation(p: Profile, *, busy: bool, libraries_visible: bool) -> ProcessObservation:
    models = tuple(path for path, _ in p.models)
    return ProcessObservation(
        pid=4242,
        create_time=1795300000.0,
        name=p.exe.replace("\\", "/").rsplit("/", 1)[-1],
        exe=p.exe,
        cmdline=p.argv,
        parent_name=p.parent,
        username="dev",
        libraries=tuple(sorted(p.libraries)) if libraries_visible else (),
        mapped_files=tuple(sorted({p.exe, *models})) if libraries_visible else (),
        open_files=tuple(sorted(p.opened)),
        listeners=p.listeners,
        rss=p.rss,
        num_threads=p.threads,
        cpu_percent=p.cpu_busy if busy else 0.5,
        gpu=(p.gpu_memory or 0, 0.9 if busy and p.gpu_memory else 0.0),
    )


def rows() -> Iterator[Row]:
    """Each profile idle and busy; macOS also as psutil shows it there, without memory maps."""
    for profile in (*_mac_profiles(), *_win_profiles()):
        views = (True, False) if profile.os == "macos" else (True,)
        for index, (visible, busy) in enumerate((v, b) for v in views for b in (False, True)):
            obs = _observation(profile, busy=busy, libraries_visible=visible)
            how = f"{profile.os}, {'busy' if busy else 'idle'}" + (
                "" if visible else ", libraries not listed (psutil on macOS)"
            )
            provenance = Provenance(f"derived-{profile.os}", DATE, how, True, profile.source, index)
            sizes = {profile.exe: 80 << 20, **dict(profile.models)} if visible else None
            yield Row(profile.label, profile.program, profile.family, obs, provenance, sizes, True)


def main() -> int:
    path = DATASET_DIR / "derived.jsonl"
    count = write_rows(path, rows(), append=False)
    print(f"wrote {count} derived rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
