"""The static pickle walk: imports named in every protocol, nothing executed, hostile input
bounded. Malicious pickles are written with pickle itself and never loaded."""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ReadAt
from agent.detect.formats import pickle_scan as ps
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYSTEM = f"{os.system.__module__}.system"  # posix.system here, nt.system on Windows


class Shell:
    """Pickles as a call of os.system: what a malicious model file does."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def sample(protocol: int) -> bytes:
    data = {
        "numbers": [1, -2, 2**70, 2.5, True, None],
        "text": ["x", b"y", "z" * 5000],
        "shapes": (1, (2, 3)),
        "sets": [{1}, frozenset([2])],
        "ordered": collections.OrderedDict(a=1),
        "payload": Shell(),
    }
    return pickle.dumps(data, protocol=protocol)


def counting_reader(data: bytes) -> tuple[ReadAt, list[int]]:
    requested: list[int] = []

    def read_at(offset: int, length: int) -> bytes:
        requested.append(length)
        return data[offset : offset + length]

    return read_at, requested


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_names_the_call_to_os_system(protocol: int) -> None:
    data = sample(protocol)

    result = ps.scan_bytes(data)

    assert SYSTEM in result.imports
    assert "collections.OrderedDict" in result.imports
    assert result.complete and result.end == len(data)
    assert isinstance(result.root, ps.PickleDict)


def test_python2_module_names_are_read_as_python3_ones() -> None:
    data = b"c__builtin__\neval\n(S'1+1'\ntR."

    assert ps.scan_bytes(data).imports == ("builtins.eval",)


def test_stack_global_names_come_from_the_memo() -> None:
    # 'os' and 'system' are memoized, then fetched back for a second STACK_GLOBAL.
    data = (
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93"
        b"\x8c\x02hi\x85R0h\x00h\x01\x93\x8c\x02yo\x85R."
    )

    result = ps.scan_bytes(data, keep=frozenset({"os.system"}))

    assert result.imports == ("os.system",)
    assert [c.value for c in result.calls] == [("hi",), ("yo",)]


def test_stack_global_of_a_computed_name_is_unresolved() -> None:
    data = b"\x80\x04K\x01\x8c\x06system\x93)R."

    result = ps.scan_bytes(data)

    assert result.imports == ()
    assert result.unresolved == ("import of a computed name at byte 12",)


def test_inst_and_obj_opcodes_record_their_imports() -> None:
    inst = b"(S'id'\nios\nsystem\n."
    obj = b"(csubprocess\ncall\nS'id'\no."

    assert ps.scan_bytes(inst).imports == ("os.system",)
    assert ps.scan_bytes(obj).imports == ("subprocess.call",)


def test_extension_registry_codes_are_unresolved() -> None:
    result = ps.scan_bytes(b"\x80\x02\x82\x07)R.")

    assert result.unresolved == ("extension registry code 7 at byte 2",)


def test_persistent_ids_are_kept_with_their_values() -> None:
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return ("storage", "key-1", 12) if obj == "tensor" else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"w": "tensor"})

    result = ps.scan_bytes(buf.getvalue())

    assert result.persistent_ids == (("storage", "key-1", 12),)


def test_builds_of_kept_classes_carry_their_state() -> None:
    data = pickle.dumps(collections.OrderedDict(a=(1, 2)), protocol=2)

    result = ps.scan_bytes(data, keep=frozenset({"collections.OrderedDict"}))

    assert [c.callee for c in result.calls] == ["collections.OrderedDict"]


def test_long_strings_are_stepped_over_without_reading_them() -> None:
    # A BINBYTES8 claiming 1 TiB in a file that size: only the opcodes around it are read.
    size = 1 << 40
    head = b"\x80\x04\x8e" + size.to_bytes(8, "little")
    tail = b"0N."
    total = len(head) + size + len(tail)

    def read_at(offset: int, length: int) -> bytes:
        requested.append(length)
        if offset >= len(head) + size:
            return tail[offset - len(head) - size :][:length]
        return (head + bytes(64))[offset : offset + length][: max(0, total - offset)]

    requested: list[int] = []
    result = ps.scan(read_at, total)

    assert result.complete and result.root is None
    assert sum(requested) < 1 << 20


def test_ten_million_opcodes_stop_at_the_cap_and_say_so() -> None:
    data = b"\x80\x04" + b"N0" * 5_000_000 + b"N."

    result = ps.scan_bytes(data)

    assert not result.complete
    assert result.opcodes == ps.MAX_OPCODES
    assert result.stopped == f"stopped after {ps.MAX_OPCODES} opcodes"


def test_memory_grows_with_opcodes_only_up_to_the_cap() -> None:
    data = b"\x80\x04" + b"}\x94" * 200_000

    tracemalloc.start()
    try:
        result = ps.scan_bytes(data, max_opcodes=50_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert not result.complete
    assert peak < 32 << 20


def test_distinct_imports_are_capped_and_the_cap_is_said_once() -> None:
    body = b"".join(b"cm%d\nC\n0" % i for i in range(ps.MAX_IMPORTS + 100))

    result = ps.scan_bytes(b"(" + body + b"N.")

    assert len(result.imports) == ps.MAX_IMPORTS
    assert result.unresolved == (f"more than {ps.MAX_IMPORTS} distinct imports",)


def test_deep_nesting_is_walked_without_recursion() -> None:
    nested = b"\x80\x02" + b")" + b"\x85" * 200_000 + b"."
    marks = b"(" * 200_000 + b"N."

    assert ps.scan_bytes(nested).complete
    assert ps.scan_bytes(marks).complete


def test_every_prefix_of_a_pickle_is_refused() -> None:
    data = sample(4)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            ps.scan_bytes(data[:cut])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x09.", "unsupported protocol 9"),
        (b"\x80\x02R.", "stack underflow"),
        (b"\x80\x02h\x05.", "memo key 5 was never stored"),
        (b"\x80\x02\xff", "unknown opcode 0xff"),
        (b"\x80\x02t.", "no MARK to pop to"),
        (b"I12x\n.", "integer b'12x' is unreadable"),
        (b"S'abc\n.", "STRING is not quoted"),
    ],
)
def test_malformed_pickles_say_where_and_why(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError) as e:
        ps.scan_bytes(data)
    assert e.value.reason == reason and e.value.format == "pickle"


def test_lines_longer_than_the_cap_are_refused() -> None:
    data = b"c" + b"a" * (ps.MAX_LINE + 10) + b"\nb\n."

    with pytest.raises(FormatError, match="longer than"):
        ps.scan_bytes(data)


@pytest.mark.parametrize("protocol", range(6))
def test_real_pickle_heads_look_like_pickles(protocol: int) -> None:
    assert ps.looks_like_pickle(sample(protocol)[:64])


@pytest.mark.parametrize(
    "head",
    [b"", b"(hello world)\n", b"\x89PNG\r\n\x1a\n" + bytes(56), b"\x80\x02\xff", b"cat\n"],
)
def test_other_heads_do_not_look_like_pickles(head: bytes) -> None:
    assert not ps.looks_like_pickle(head, len(head))


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_scan_or_raise_format_error(data: bytes) -> None:
    read_at, requested = counting_reader(data)
    try:
        result = ps.scan(read_at, len(data))
    except FormatError:
        return
    assert result.end <= len(data)
    assert max(requested, default=0) <= max(len(data), 1 << 16)


@FUZZ
@given(st.data())
def test_mutated_pickles_scan_or_raise_format_error(data: st.DataObject) -> None:
    original = bytearray(sample(data.draw(st.integers(0, 5))))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        ps.scan_bytes(bytes(original))
    ps.looks_like_pickle(bytes(original[:64]))
