"""The walk's inline opcodes against the reference handlers: on real pickles of every protocol,
damaged ones and opcode soup, both walks read the same imports, calls, values and offsets, or
fail at the same byte for the same reason; a claim's walk that reads a whole pickle is the scan
parse would make, and what one file's claim keeps never changes another file's answer."""

from __future__ import annotations

import collections
import io
import os
import pickle
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import pickle_format, pickle_memo
from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.pickle_cursor import Budget, Cursor
from agent.detect.formats.pickle_machine import Machine, Records
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEEP = frozenset(
    {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
    | {"joblib.numpy_pickle.NumpyArrayWrapper", "collections.OrderedDict", "posix.system"}
)


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def _joblib(value: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


SAMPLE = {
    "numbers": [1, -2, 2**70, 2.5, True, None, 70000, -70000],
    "text": ["x", b"y", "z" * 5000, b"q" * 5000, "é\n\\u"],
    "nested": (1, (2, 3), (4, 5, 6), ()),
    "sets": [{1}, frozenset([2]), bytearray(b"ab")],
    "ordered": collections.OrderedDict(a=1),
    "arrays": [np.arange(6).reshape(2, 3), np.array([1, "a", None], dtype=object)],
    "payload": Shell(),
}
REAL = [pickle.dumps(SAMPLE, protocol) for protocol in range(6)] + [_joblib(SAMPLE)]
# Opcodes with their arguments, to be strung together in any order: those that push a value,
# and those that consume, mark, memoize or frame.
PUSH = [
    b")", b"N", b"]", b"}", b"\x88", b"\x89", b"K\x05", b"K\x07", b"M\x05\x01",
    b"J\xff\xff\xff\xff", b"G" + bytes(8), b"h\x00", b"j\x01\x00\x00\x00", b"\x8c\x02os",
    b"\x8c\x06system", b"U\x01a", b"C\x02ab", b"X\x03\x00\x00\x00abc", b"B\x01\x00\x00\x00z",
    b"I7\n", b"I01\n", b"I" + b"9" * 30 + b"\n", b"g0\n", b"g9\n", b"Vx\n", b"V\\u0041\n",
    b"cos\nsystem\n", b"2",
    # module and name pairs as evasions push them, for STACK_GLOBAL to meet
    b"\x8c\x02os\x8c\x06system", b"\x8c\x02osK\x05", b"N\x8c\x06system", b"\x8c\x02osh\x00",
]  # fmt: skip
CONSUME = [
    b"(", b"0", b"1", b".", b"t", b"l", b"d", b"a", b"e", b"s", b"u", b"b", b"R", b"o", b"\x81",
    b"\x85", b"\x86", b"\x87", b"\x93", b"\x94", b"Q", b"q\x00", b"r\x01\x00\x00\x00", b"p0\n",
    b"p-1\n", b"\x80\x02", b"\x80\x09", b"\x95" + bytes(8), b"\xff",
]  # fmt: skip
PIECES = PUSH + CONSUME


def reference(data: bytes, keep: frozenset[str], budget: int) -> object:
    """The walk made only by Machine.step, opcode by opcode, as scan() reports it."""
    cursor = Cursor(lambda o, n: data[o : o + n], 0, len(data), "pickle", capped=False)
    records = Records(keep, budget)
    machine = Machine(cursor, records, joblib=True)
    try:
        while True:
            if records.opcodes >= budget:
                raise Budget(f"stopped after {records.opcodes} opcodes")
            if machine.step():
                return summary(machine.result(machine.root))
    except Budget as e:
        return summary(machine.result(ps.Opaque("unfinished"), str(e)))
    except FormatError as e:
        return (e.offset, e.reason)


def inline(data: bytes, keep: frozenset[str], budget: int) -> object:
    read_at = lambda o, n: data[o : o + n]  # noqa: E731 -- a one-line reader
    try:
        return summary(ps.scan(read_at, len(data), keep=keep, joblib=True, max_opcodes=budget))
    except FormatError as e:
        return (e.offset, e.reason)


def summary(scan: ps.PickleScan) -> tuple[object, ...]:
    return (
        scan.start, scan.end, scan.protocol, plain(scan.root), scan.imports, scan.qualnames,
        scan.unresolved, [(c.callee, plain(c.value), c.offset) for c in scan.calls],
        [(c.callee, plain(c.value), c.offset) for c in scan.builds],
        [plain(p) for p in scan.persistent_ids], scan.opcodes, scan.complete, scan.stopped,
    )  # fmt: skip


def plain(value: object, depth: int = 0) -> object:
    """A comparable form of a walk value (Obj and PickleDict compare by identity)."""
    if depth > 40:
        return "..."
    if isinstance(value, ps.Obj):
        return ("Obj", value.callee, plain(value.args, depth + 1), plain(value.state, depth + 1))
    if isinstance(value, ps.PickleDict):
        return ("dict", [(plain(k, depth + 1), plain(v, depth + 1)) for k, v in value.items])
    if isinstance(value, tuple | list):
        return (type(value).__name__, [plain(v, depth + 1) for v in value])
    if isinstance(value, ps.PersistentId):
        return ("pid", plain(value.value, depth + 1))
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def agree(data: bytes, keep: frozenset[str] = KEEP, budget: int = ps.MAX_OPCODES) -> None:
    assert inline(data, keep, budget) == reference(data, keep, budget)


def test_real_pickles_of_every_protocol_walk_alike() -> None:
    for data in REAL:
        agree(data)
        agree(data, frozenset())
        agree(data, budget=40)


@FUZZ
@given(st.sampled_from(REAL), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255))))
def test_damaged_pickles_walk_alike(data: bytes, changes: list[tuple[int, int]]) -> None:
    damaged = bytearray(data)
    for at, byte in changes:
        damaged[at % len(damaged)] = byte
    agree(bytes(damaged))


@FUZZ
@given(st.sampled_from(REAL), st.integers(0, 1 << 20))
def test_cut_pickles_walk_alike(data: bytes, cut: int) -> None:
    agree(data[: cut % len(data)])


# Any opcode byte the walk knows, with argument bytes of any value.
ANY_ARGUMENT = st.builds(
    lambda op, argument: bytes([op]) + argument,
    st.sampled_from(sorted({piece[0] for piece in PIECES})),
    st.binary(max_size=9),
)


# Programs: a few values pushed, then an opcode that takes them (or anything else).
STEP = st.builds(
    lambda pushes, then: b"".join(pushes) + then,
    st.lists(st.sampled_from(PUSH), max_size=3),
    st.sampled_from(CONSUME) | ANY_ARGUMENT,
)
SOUP = st.lists(STEP, max_size=12)


@settings(FUZZ, max_examples=1000)
@given(SOUP, st.integers(1, 30))
def test_opcode_programs_walk_alike(steps: list[bytes], budget: int) -> None:
    data = b"".join(steps) + b"."  # a STOP, so that most programs end and report all they read
    agree(data)
    agree(data, budget=budget)


@settings(FUZZ, max_examples=1000)
@given(st.sampled_from(PUSH), st.sampled_from(PUSH), st.sampled_from(CONSUME))
def test_any_two_values_meet_any_opcode_alike(first: bytes, second: bytes, then: bytes) -> None:
    agree(b"\x80\x04" + first + second + then + b".")
    agree(b"(" + first + second + then + b".")


@FUZZ
@given(st.sampled_from(REAL[:5]) | st.binary(max_size=64), st.integers(1, 300))
def test_a_claim_walk_that_reads_a_whole_pickle_is_the_scan(data: bytes, budget: int) -> None:
    looks, scan = ps.walk_head(data, len(data), budget, KEEP, walk_on=True)

    assert looks == ps.looks_like_pickle(data, len(data), budget)
    if scan is not None:
        assert summary(scan) == inline(data, KEEP, ps.MAX_OPCODES)


def answer(data: bytes) -> object:
    try:
        info = pickle_format.parse(lambda o, n: data[o : o + n], len(data))
    except FormatError as e:
        return (e.offset, e.reason)
    return None if info is None else (info.risk, info.unsafe_reasons, info.tensor_count)


@FUZZ
@given(
    st.sampled_from(REAL) | st.binary(max_size=64),
    st.sampled_from(REAL) | st.binary(max_size=64),
)
def test_what_one_files_claim_keeps_changes_no_other_answer(first: bytes, other: bytes) -> None:
    for data in (other, other + b"\x00", other[:-1]):
        pickle_memo.forget()
        fresh = answer(data)
        pickle_format.claims(first[:4096], len(first))
        after_another = answer(data)
        pickle_format.claims(data[:4096], len(data))
        after_its_own = answer(data)

        assert after_another == after_its_own == fresh
