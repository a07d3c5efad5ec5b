"""Walk pickle opcodes (protocols 0-5) without executing anything: what a pickle imports, what
it would call, and the plain values (strings, numbers, tuples) that reach those calls.

The walk reads through ReadAt in bounded chunks, steps over large strings without reading
them, and stops after MAX_OPCODES; a stopped walk is reported as incomplete, never trusted.
"""

from __future__ import annotations

import re

from agent.detect.formats import ReadAt
from agent.detect.formats.pickle_cursor import MAX_LINE, Budget, Cursor
from agent.detect.formats.pickle_loop import JOBLIB_WRAPPER, MAX_KEPT, MAX_PROTOCOL, MAX_RECORDS
from agent.detect.formats.pickle_machine import MAX_IMPORTS, MAX_LONG, MAX_NAME, Machine, Records
from agent.detect.formats.pickle_values import (
    Call,
    Global,
    Obj,
    Opaque,
    PersistentId,
    PickleDict,
    PickleScan,
    Value,
    array_elements,
    dtype_itemsize,
    dtype_string,
)
from agent.errors import FormatError

__all__ = [
    "FORMAT",
    "JOBLIB_WRAPPER",
    "MAX_IMPORTS",
    "MAX_KEPT",
    "MAX_LINE",
    "MAX_LONG",
    "MAX_NAME",
    "MAX_OPCODES",
    "MAX_PROTOCOL",
    "MAX_RECORDS",
    "Call",
    "Global",
    "Obj",
    "Opaque",
    "PersistentId",
    "PickleDict",
    "PickleScan",
    "Value",
    "array_elements",
    "dtype_itemsize",
    "dtype_string",
    "looks_like_pickle",
    "scan",
    "scan_bytes",
    "walk_head",
]

FORMAT = "pickle"
MAX_OPCODES = 1 << 19


def scan(
    read_at: ReadAt,
    size: int,
    start: int = 0,
    *,
    fmt: str = FORMAT,
    keep: frozenset[str] = frozenset(),
    joblib: bool = False,
    max_opcodes: int = MAX_OPCODES,
    capped: bool = False,
) -> PickleScan:
    """Walk one pickle from `start`; FormatError (with `fmt` and the byte offset) when it is
    malformed or ends before STOP. `keep` names callables whose calls and builds are recorded;
    `joblib` steps over the array bytes joblib writes between opcodes; `capped` says `size` is
    a cap on what is walked (an inflated stream), not where the data ends."""
    cursor = Cursor(read_at, start, size, fmt, capped=capped)
    return Machine(cursor, Records(keep, max_opcodes), joblib=joblib).scan()


def scan_bytes(
    data: bytes,
    *,
    fmt: str = FORMAT,
    keep: frozenset[str] = frozenset(),
    max_opcodes: int = MAX_OPCODES,
) -> PickleScan:
    """scan() over bytes in memory."""
    read_at: ReadAt = lambda o, n: data[o : o + n]  # noqa: E731 -- a one-line reader
    return scan(read_at, len(data), fmt=fmt, keep=keep, max_opcodes=max_opcodes)


def looks_like_pickle(head: bytes, size: int | None = None, max_opcodes: int = 256) -> bool:
    """True when the head walks as a pickle until it ends or the budget runs out; when the
    head is the whole file (`size`), it must walk to its STOP.

    A pickle with no PROTO opcode must start like protocol 0/1 pickles do, so that text
    starting with "(" or "c" is not taken for one.
    """
    return walk_head(head, size, max_opcodes)[0]


def walk_head(
    head: bytes,
    size: int | None = None,
    max_opcodes: int = 256,
    keep: frozenset[str] = frozenset(),
    at: int = 0,
    *,
    walk_on: bool = False,
) -> tuple[bool, PickleScan | None]:
    """looks_like_pickle, and the scan of the head's first pickle when the walk read all of it:
    what scan() from `at` (where the head sits in its file) would give, `keep` as there.

    `walk_on`: the head holds all the bytes there are (the whole file, or a whole inflated
    stream), and a walk that passed the check goes on to STOP (up to MAX_OPCODES), for a
    caller that would walk those opcodes next anyway.
    """
    if not head or (head[0] != 0x80 and head[0] not in b"(c}]S"):
        return False, None
    if head[0] == ord("c") and not _GLOBAL_LINE.match(head):
        return False, None
    if head[0] == ord("S") and not _STRING_LINE.match(head):
        return False, None
    whole = size is not None and len(head) >= size
    read_at: ReadAt = lambda o, n: head[o - at : o - at + n]  # noqa: E731 -- a one-line reader
    cursor = Cursor(read_at, at, at + len(head), FORMAT, capped=not whole, buf=head)
    records = Records(keep, max_opcodes)
    machine = Machine(cursor, records, joblib=True)
    try:
        root = machine.run()
    except Budget:
        if not (walk_on and machine.paused and max_opcodes < MAX_OPCODES):
            return True, None
        return True, _walk_on(machine)
    except FormatError:
        return False, None
    if records.opcodes < 3:
        return False, None
    return True, machine.result(root)


def _walk_on(machine: Machine) -> PickleScan | None:
    """The rest of a whole head's walk, once it looks like a pickle; None when it breaks or
    stops at the budget (scan() then walks it again and says so)."""
    machine.r.max_opcodes = MAX_OPCODES
    try:
        return machine.result(machine.run())
    except (Budget, FormatError):
        return None


_GLOBAL_LINE = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
# A protocol 0 pickle may open with a quoted STRING line (GHSA-9gvj-pp9x-gcfr builds its
# import from two of them).
_STRING_LINE = re.compile(rb"S(?:'[^'\n]{0,256}'|\"[^\"\n]{0,256}\")\n")
