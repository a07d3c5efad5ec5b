"""What `scan` prints for people: the table, the progress line, and text made safe to show."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TextIO

from agent.sensors.files import ScanStats

# C0 and C1 controls, line and paragraph separators, and the bidirectional overrides that
# can make a file name read as another.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text safe for a terminal: no control characters (a hostile file name must not move
    the cursor or recolour the screen), no undecodable bytes from a file name."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes of a file name
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return _CONTROL.sub("?", raw.decode("utf-8", "replace"))


def _clip_left(text: str, width: int) -> str:
    return text if len(text) <= width else "\u2026" + text[len(text) - width + 1 :]


def _clip_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


class ScanProgress:
    """One self-overwriting status line on a terminal: counts so far and the current path."""

    def __init__(
        self,
        stream: TextIO,
        *,
        columns: int = 80,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
    ) -> None:
        self._stream = stream
        self._columns = max(columns, 20)
        self._clock = clock
        self._interval = interval
        self._last: float | None = None

    def update(self, stats: ScanStats, bytes_hashed: int, path: str) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return  # redrawing on every file would cost more than the scan
        self._last = now
        counts = (
            f"{stats.files_seen} files, {stats.models_found} models, "
            f"{human_bytes(bytes_hashed)} hashed  "
        )
        room = max(self._columns - 1 - len(counts), 10)
        line = _clip_right(counts + _clip_left(printable(path), room), self._columns - 1)
        self._stream.write(f"\r\x1b[K{line}")
        self._stream.flush()

    def done(self) -> None:
        if self._last is not None:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def human_bytes(n: object) -> str:
    """A size as `ls -h` prints it: 1024-based, one decimal below 10."""
    if not isinstance(n, int) or isinstance(n, bool):
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            break
        value /= 1024
    if unit == "B":
        return f"{n}B"
    return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def human_count(n: object) -> str:
    """A parameter count as people say it: 7.2B, 135M, 8.0K."""
    if not isinstance(n, int) or isinstance(n, bool):
        return "-"
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return str(n)


_CAPS = (1, 13, 7, 10, 6, 24)  # marker, format, params, quant, size, model
_RIGHT = {2, 4}  # numbers align right
_PATH_WANTS = 32  # the model name column gives way until the path has this much room
_MIN_MODEL = 8


def _cells(fields: dict[str, object]) -> list[str]:
    name = fields.get("ai.model.name")
    cells = [
        "!" if fields.get("ai.model.unsafe") is True else " ",
        str(fields.get("ai.model.format", "?")),
        human_count(fields.get("ai.model.parameters")),
        str(fields.get("ai.model.quantization", "-")),
        human_bytes(fields.get("file.size")),
        str(name) if name else "-",
        str(fields.get("file.path", "")),
    ]
    return [printable(cell) for cell in cells]


def _fit(widths: list[int], width: int | None) -> int | None:
    """Room left for the path on a line of `width`; narrows the model column if need be."""
    if width is None:
        return None
    room = width - sum(widths) - 2 * len(widths)
    if room < _PATH_WANTS:
        widths[-1] = max(_MIN_MODEL, widths[-1] - (_PATH_WANTS - room))
        room = width - sum(widths) - 2 * len(widths)
    return max(room, 16)


def render_table(rows: Sequence[dict[str, object]], *, width: int | None) -> str:
    """One line per model (`!` marks unsafe serialization), then a summary line.

    With a width, paths are cut from the left so that each line fits; without one (output
    to a file or a pipe) they are whole.
    """
    table = [["", "FORMAT", "PARAMS", "QUANT", "SIZE", "MODEL", "PATH"]]
    table += [_cells(fields) for fields in rows]
    widths = [min(max(len(line[i]) for line in table), cap) for i, cap in enumerate(_CAPS)]
    room = _fit(widths, width)
    lines = []
    for line in table:
        cells = [_clip_right(cell, w) for cell, w in zip(line, widths, strict=False)]
        cells = [
            c.rjust(w) if i in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        path = line[-1] if room is None else _clip_left(line[-1], room)
        lines.append("  ".join([*cells, path]).rstrip())
    lines.append(_summary(rows))
    return "\n".join(lines) + "\n"


def _summary(rows: Sequence[dict[str, object]]) -> str:
    formats = Counter(printable(str(f.get("ai.model.format", "?"))) for f in rows)
    unsafe = sum(1 for f in rows if f.get("ai.model.unsafe") is True)
    total = sum(size for f in rows if isinstance(size := f.get("file.size"), int))
    per_format = ", ".join(f"{name} {count}" for name, count in sorted(formats.items()))
    noun = "model file" if len(rows) == 1 else "model files"
    summary = f"{len(rows)} {noun}"
    if rows:
        summary += f" ({per_format}), {human_bytes(total)}"
    return summary + f"; {unsafe} unsafe"


def render_processes(rows: Sequence[dict[str, object]], *, width: int | None) -> str:
    """Inference processes: pid, runtime, listener (with a ! when reachable from others), models."""
    lines = [("PID", "RUNTIME", "LISTEN", "PROCESS", "MODELS")]
    for f in sorted(rows, key=lambda r: int(str(r.get("process.pid", 0)))):
        listen = ""
        if f.get("ai.listen.port") is not None:
            mark = "!" if f.get("ai.listen.exposed") else ""
            listen = f"{mark}{f.get('ai.listen.address', '')}:{f['ai.listen.port']}"
        models = f.get("ai.runtime.models")
        lines.append(
            (
                str(f.get("process.pid", "")),
                printable(str(f.get("ai.runtime.name", "?"))),
                printable(listen),
                printable(str(f.get("process.name", ""))),
                printable(", ".join(map(str, models))) if isinstance(models, list) else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = []
    for line in lines:
        text = "  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[4]])
        out.append(_clip_right(text.rstrip(), width) if width else text.rstrip())
    exposed = sum(1 for f in rows if f.get("ai.listen.exposed"))
    out.append(f"{len(rows)} inference processes; {exposed} reachable from other machines")
    return "\n".join(out) + "\n"
