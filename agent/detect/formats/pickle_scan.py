"""Walk pickle opcodes (protocols 0-5) without executing anything: what a pickle imports, what
it would call, and the plain values (strings, numbers, tuples) that reach those calls.

The walk reads through ReadAt in bounded chunks, steps over large strings without reading
them, and stops after MAX_OPCODES; a stopped walk is reported as incomplete, never trusted.
"""

from __future__ import annotations

import re

from agent.detect.formats import ReadAt
from agent.detect.formats.pickle_cursor import MAX_LINE, Budget, Cursor
from agent.detect.formats.pickle_machine import (
    JOBLIB_WRAPPER,
    MAX_IMPORTS,
    MAX_KEPT,
    MAX_LONG,
    MAX_NAME,
    MAX_PROTOCOL,
    MAX_RECORDS,
    Machine,
    Records,
)
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
    if not head or (head[0] != 0x80 and head[0] not in b"(c}]S"):
        return False
    if head[0] == ord("c") and not _GLOBAL_LINE.match(head):
        return False
    if head[0] == ord("S") and not _STRING_LINE.match(head):
        return False
    whole = size is not None and len(head) >= size
    cursor = Cursor(lambda o, n: head[o : o + n], 0, len(head), FORMAT, capped=not whole)
    records = Records(frozenset(), max_opcodes)
    try:
        Machine(cursor, records, joblib=True).run()
    except Budget:
        return True
    except FormatError:
        return False
    return records.opcodes >= 3


_GLOBAL_LINE = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
# A protocol 0 pickle may open with a quoted STRING line (GHSA-9gvj-pp9x-gcfr builds its
# import from two of them).
_STRING_LINE = re.compile(rb"S(?:'[^'\n]{0,256}'|\"[^\"\n]{0,256}\")\n")
