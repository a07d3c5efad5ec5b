"""Put the calling thread at the lowest CPU and IO priority, so hashing and scanning yield to
whatever the developer is doing. The OS calls are injected; `for_os` picks the real ones."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LOWEST_NICE = 19
# Darwin's setpriority(2) extensions (sys/resource.h); Python 3.11's os module lacks the names.
_PRIO_DARWIN_THREAD = 3
_PRIO_DARWIN_BG = 0x1000
# Windows SetThreadPriority: background mode lowers CPU, IO and memory priority together.
_THREAD_MODE_BACKGROUND_BEGIN = 0x00010000

Step = Callable[[int], None]  # takes the native thread id; raises OSError when refused


@dataclass(frozen=True)
class PriorityCalls:
    """The named steps that lower one thread, and how to find the calling thread's id."""

    steps: Sequence[tuple[str, Step]]
    thread_id: Callable[[], int] = threading.get_native_id


@dataclass
class Lowered:
    """Which steps took effect on the thread, and why the others did not."""

    thread_id: int
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def lower_current_thread(calls: PriorityCalls) -> Lowered:
    """Apply every step to the calling thread; a refused step is reported, never raised,
    since running at normal priority is better than not running."""
    result = Lowered(calls.thread_id())
    for name, step in calls.steps:
        try:
            step(result.thread_id)
        except Exception as exc:  # psutil's errors are not OSErrors; any refusal is a note
            result.failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            result.done.append(name)
    if result.failed:
        log.info("thread %d keeps some of its priority: %s", result.thread_id, result.failed)
    return result


def _linux_nice(tid: int) -> None:
    # On Linux a thread is a task with its own nice value; PRIO_PROCESS with a tid sets just it.
    os.setpriority(os.PRIO_PROCESS, tid, LOWEST_NICE)


def _linux_io_idle(tid: int) -> None:
    import psutil  # the agent extra; absent, the step fails and is reported

    # ioprio_set(IOPRIO_WHO_PROCESS, tid) also applies to the single task, as psutil passes it.
    psutil.Process(tid).ionice(psutil.IOPRIO_CLASS_IDLE)


def _darwin_background(tid: int) -> None:
    # Not exercised here (no macOS machine): PRIO_DARWIN_THREAD with who=0 means the calling
    # thread, and the background band throttles both its CPU and its disk IO.
    os.setpriority(_PRIO_DARWIN_THREAD, 0, _PRIO_DARWIN_BG)


def _windows_background(tid: int) -> None:
    # Not exercised here (no Windows machine): background mode for the calling thread.
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    if not kernel32.SetThreadPriority(kernel32.GetCurrentThread(), _THREAD_MODE_BACKGROUND_BEGIN):
        raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]


_STEPS: dict[str, Sequence[tuple[str, Step]]] = {
    "linux": (("cpu", _linux_nice), ("io", _linux_io_idle)),
    "macos": (("cpu+io", _darwin_background),),
    "windows": (("cpu+io", _windows_background),),
}


def for_os(os_type: str) -> PriorityCalls:
    """The real calls for an ECS host.os.type (linux, macos, windows); none for others."""
    return PriorityCalls(steps=_STEPS.get(os_type, ()))
