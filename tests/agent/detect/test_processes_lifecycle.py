"""Inference process events: the flat fields, the lifecycle diff, and the /proc parsers."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.processes import (
    DATASET,
    ProcessObservation,
    cpu_percent,
    inference_process_fields,
    lifecycle,
    parse_inet_diag,
    parse_maps,
    parse_stat,
    relook_due,
)
from agent.detect.redact import REDACTED
from agent.detect.runtimes import RuntimeMatch
from wire.events import event_from_flat, flatten_event

SERVER = ProcessObservation(
    pid=77,
    create_time=1700000000.5,
    name="llama-server",
    exe="/usr/local/bin/llama-server",
    cmdline=("llama-server", "-m", "/m/q.gguf", "--host", "0.0.0.0", "--api-key", "s3cret"),
    parent_name="bash",
    username="dev",
    listeners=(("127.0.0.1", 8081), ("0.0.0.0", 8080)),
)
MATCH = RuntimeMatch(
    name="llama.cpp",
    evidence=("llama.cpp executable",),
    libraries=("/usr/local/lib/libllama.so",),
    models=("/m/q.gguf",),
    version="b5560",
)


def test_fields_use_the_wire_names_and_redact_the_command_line() -> None:
    fields = inference_process_fields(SERVER, MATCH)

    assert fields == {
        "event.dataset": DATASET,
        "process.pid": 77,
        "process.name": "llama-server",
        "process.executable": "/usr/local/bin/llama-server",
        "process.command_line": f"llama-server -m /m/q.gguf --host 0.0.0.0 --api-key {REDACTED}",
        "process.parent.name": "bash",
        "user.name": "dev",
        "ai.runtime.name": "llama.cpp",
        "ai.runtime.version": "b5560",
        "ai.runtime.libraries": ["/usr/local/lib/libllama.so"],
        "ai.runtime.models": ["/m/q.gguf"],
        "ai.listen.address": "0.0.0.0",
        "ai.listen.port": 8080,
        "ai.listen.exposed": True,
        "ai.listen.exposure_reasons": ["--host 0.0.0.0 binds beyond loopback"],
        "ai.runtime.evidence": ["llama.cpp executable"],
    }
    # Every name is one the wire carries: the event builds and flattens back the same.
    wire = flatten_event(event_from_flat({**fields, "event.action": "started"}, timestamp_ms=1))
    assert {k: v for k, v in wire.items() if k in fields} == fields


def test_gpu_fields_are_absent_without_a_sample_never_zero() -> None:
    bare = ProcessObservation(pid=5, create_time=1.0, name="python3")
    match = RuntimeMatch(name="onnxruntime", evidence=("x",))

    assert not any(
        k.startswith(("ai.gpu", "ai.listen")) for k in inference_process_fields(bare, match)
    )
    assert not any(
        k.startswith("ai.gpu") for k in inference_process_fields(bare, match, gpu={6: (1, 0.1)})
    )
    sampled = inference_process_fields(bare, match, gpu={5: (2048, None)})
    assert sampled["ai.gpu.memory_bytes"] == 2048 and "ai.gpu.utilization" not in sampled


def fields(pid: int, **extra: object) -> dict[str, object]:
    return {"event.dataset": DATASET, "process.pid": pid, "ai.runtime.name": "ollama", **extra}


def test_lifecycle_actions() -> None:
    previous = {(1, 1.0): fields(1), (2, 2.0): fields(2), (3, 3.0): fields(3)}
    current = {
        (2, 2.0): fields(2, **{"ai.listen.port": 11434}),
        (3, 3.0): fields(3),
        (4, 4.0): fields(4),
    }
    events = lifecycle(previous, current)

    assert [(action, f["process.pid"]) for action, f in events] == [
        ("stopped", 1),
        ("changed", 2),
        ("started", 4),
    ]
    snap = lifecycle(previous, current, snapshot=True)
    assert ("snapshot", fields(3)) in snap


def test_volatile_figures_alone_are_not_a_change() -> None:
    before = {(1, 1.0): fields(1, **{"ai.gpu.memory_bytes": 10, "ai.gpu.utilization": 0.1})}
    after = {(1, 1.0): fields(1, **{"ai.gpu.memory_bytes": 99, "ai.gpu.utilization": 0.9})}

    assert lifecycle(before, after) == []
    assert lifecycle(before, after, snapshot=True) == [("snapshot", after[(1, 1.0)])]


def test_a_reused_pid_stops_then_starts() -> None:
    events = lifecycle({(9, 1.0): fields(9)}, {(9, 2.0): fields(9)})
    assert [action for action, _ in events] == ["stopped", "started"]


STAT = (
    b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 5 0 123456"
    b" 10485760 300 18446744073709551615"
)


def test_parse_stat_takes_the_name_up_to_the_last_paren() -> None:
    stat = parse_stat(STAT)

    assert stat is not None
    assert (stat.pid, stat.name, stat.ppid) == (4242, "my (odd) name", 1)
    assert (stat.cpu_ticks, stat.num_threads, stat.start_ticks) == (10, 5, 123456)
    assert (stat.vsize, stat.rss_pages, stat.kernel_thread) == (10485760, 300, False)
    assert parse_stat(STAT[:40]) is None
    assert parse_stat(b"") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_parse_real_proc_files() -> None:
    stat = parse_stat(Path(f"/proc/{os.getpid()}/stat").read_bytes())
    libraries, files = parse_maps(Path(f"/proc/{os.getpid()}/maps").read_bytes())

    assert stat is not None and stat.pid == os.getpid()
    assert any(".cpython-" in lib or "libc.so" in lib for lib in libraries)
    assert not any(path.startswith("[") for path in (*libraries, *files))


MAPS = b"""\
55d0c0a00000-55d0c0a28000 r--p 00000000 08:01 1311 /usr/bin/python3.11
7f1c2c000000-7f1c3c000000 r--s 00000000 08:01 99 /home/dev/models/q4 (1).gguf
7f1c3c000000-7f1c3c021000 rw-p 00000000 00:00 0
7f1c40000000-7f1c40100000 r-xp 00000000 08:01 42 /venv/site-packages/llama_cpp/lib/libllama.so
7f1c40100000-7f1c40200000 r--p 00100000 08:01 42 /venv/site-packages/llama_cpp/lib/libllama.so
7f1c50000000-7f1c50001000 rw-s 00000000 00:01 7 /dev/zero (deleted)
7f1c60000000-7f1c60001000 r--p 00000000 08:01 43 /old/model.safetensors (deleted)
7ffd1e3c0000-7ffd1e3e1000 rw-p 00000000 00:00 0                          [stack]
"""


def test_parse_maps_splits_libraries_from_files() -> None:
    libraries, files = parse_maps(MAPS)

    assert libraries == ("/venv/site-packages/llama_cpp/lib/libllama.so",)
    assert files == (
        "/home/dev/models/q4 (1).gguf",
        "/old/model.safetensors",
        "/usr/bin/python3.11",
    )


def diag_message(inode: int) -> bytes:
    body = bytes(68) + struct.pack("=I", inode)
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


def test_parse_inet_diag() -> None:
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + bytes(4)
    inodes, finished = parse_inet_diag(diag_message(656) + diag_message(3708))
    assert (inodes, finished) == (frozenset({656, 3708}), False)
    assert parse_inet_diag(diag_message(7) + done) == (frozenset({7}), True)
    with pytest.raises(ValueError, match="claims"):
        parse_inet_diag(struct.pack("=IHHII", 9999, 20, 2, 1, 0))


def test_relook_and_cpu_figures() -> None:
    common = {"age": 4000.0, "since_look": 30.0, "longest": 60.0}
    assert not relook_due(vsize_changed=False, runtime=True, **common)
    assert relook_due(vsize_changed=True, runtime=True, **common)
    assert not relook_due(vsize_changed=True, runtime=False, **common)
    assert relook_due(vsize_changed=True, runtime=False, age=20.0, since_look=5.0, longest=60.0)
    assert cpu_percent(1.0, 1.5, 5.0) == 10.0
    assert cpu_percent(None, 1.0, 5.0) is None


@given(st.binary(max_size=400))
def test_parse_stat_of_any_bytes(data: bytes) -> None:
    stat = parse_stat(data)
    assert stat is None or isinstance(stat.name, str)


@given(st.binary(max_size=2000))
def test_parse_maps_of_any_bytes(data: bytes) -> None:
    libraries, files = parse_maps(data)
    assert all(p.startswith("/") for p in (*libraries, *files))


@given(st.binary(max_size=600))
def test_parse_inet_diag_of_any_bytes(data: bytes) -> None:
    try:
        inodes, _ = parse_inet_diag(data)
    except ValueError:
        return
    assert all(0 <= inode < 1 << 32 for inode in inodes)
