"""The pickle walk's hot loop: the opcodes real pickles are made of, handled inline over the
cursor's buffer; any other opcode, and any opcode whose bytes cross the buffer's end, goes
through the machine's reference handlers one at a time, which read, refill and fail
exactly as the walk always has."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from agent.detect.formats.pickle_cursor import MAX_LINE, Budget
from agent.detect.formats.pickle_values import (
    Call,
    Global,
    Obj,
    Opaque,
    PersistentId,
    PickleDict,
    Value,
    array_elements,
    dtype_itemsize,
)

if TYPE_CHECKING:
    from agent.detect.formats.pickle_machine import Machine

MAX_KEPT = 4096  # longer strings and bytes are stepped over, not kept
MAX_RECORDS = 1 << 17
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
MAX_PROTOCOL = 5

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_F64 = struct.Struct(">d").unpack_from
_UNSTORED: Value = Opaque("unstored")  # what memo.get answers for a key never stored (by identity)
_UNICODE, _BYTES = Opaque("BINUNICODE"), Opaque("BINBYTES")


def run(m: Machine) -> Value:
    """Walk from the cursor's position to STOP and return the root value.

    One function on purpose: this loop runs once per opcode of every pickle scanned, and
    each call or attribute load it saves is a measurable share of a scan. Opcodes are
    tested in four ranges (a chain of 40 tests costs more than most opcodes' work), the
    commonest first in each. A fast branch either completes its opcode or changes nothing
    and falls through to the reference handler, so both paths see the same state.
    """
    c, r, memo, marks = m.c, m.r, m.memo, m.marks
    keep, calls, builds, pids = r.keep, r.calls, r.builds, r.persistent_ids
    stack, buf, base = m.stack, c.buf, c.buf_at
    pos, n, count, limit = c.pos - base, len(buf), r.opcodes, r.max_opcodes
    try:
        while True:
            if count >= limit:
                # Everything is handed back, so that a caller may raise the budget and resume.
                c.pos, r.opcodes, m.stack, m.paused = base + pos, count, stack, True
                raise Budget(f"stopped after {count} opcodes")
            op = buf[pos] if pos < n else -1
            if op >= 0x80:
                if op == 0x94:  # MEMOIZE
                    memo[len(memo)] = stack[-1]
                    pos += 1
                    count += 1
                    continue
                if op == 0x8C and pos + 2 <= n:  # SHORT_BINUNICODE
                    end = pos + 2 + buf[pos + 1]
                    if end <= n:
                        stack.append(buf[pos + 2 : end].decode("utf-8", "replace"))
                        pos = end
                        count += 1
                        continue
                elif op == 0x85:  # TUPLE1
                    stack[-1] = (stack[-1],)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x81 and len(stack) >= 2:  # NEWOBJ
                    args = stack.pop()
                    f = stack.pop()
                    callee = f.name if type(f) is Global else None
                    if callee is not None and callee in keep and len(calls) < MAX_RECORDS:
                        calls.append(Call(callee, args, base + pos))
                    stack.append(Obj(callee, args))
                    pos += 1
                    count += 1
                    continue
                elif op == 0x89 or op == 0x88:  # NEWFALSE, NEWTRUE
                    stack.append(op == 0x88)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x86 and len(stack) >= 2:  # TUPLE2
                    last = stack.pop()
                    stack[-1] = (stack[-1], last)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x87 and len(stack) >= 3:  # TUPLE3
                    last = stack.pop()
                    mid = stack.pop()
                    stack[-1] = (stack[-1], mid, last)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x93 and len(stack) >= 2:  # STACK_GLOBAL
                    name, module = stack[-1], stack[-2]
                    if type(module) is str and type(name) is str:
                        del stack[-2:]
                        stack.append(Global(r.import_name(module, name)))
                        pos += 1
                        count += 1
                        continue
                elif op == 0x95 and base + pos + 9 <= c.end:  # FRAME: its length is not needed
                    pos += 9
                    count += 1
                    continue
                elif op == 0x80 and pos + 2 <= n and buf[pos + 1] <= MAX_PROTOCOL:  # PROTO
                    m.protocol = buf[pos + 1]
                    pos += 2
                    count += 1
                    continue
            elif op >= 0x60:
                if op == 0x68 and pos + 2 <= n:  # BINGET
                    value = memo.get(buf[pos + 1], _UNSTORED)
                    if value is not _UNSTORED:
                        stack.append(value)
                        pos += 2
                        count += 1
                        continue
                elif op == 0x71 and pos + 2 <= n:  # BINPUT
                    memo[buf[pos + 1]] = stack[-1]
                    pos += 2
                    count += 1
                    continue
                elif op == 0x62 and len(stack) >= 2:  # BUILD
                    state = stack.pop()
                    target = stack[-1]
                    pos += 1
                    count += 1
                    if type(target) is not Obj:
                        continue
                    target.state = state
                    callee = target.callee
                    if callee is not None and callee in keep and len(builds) < MAX_RECORDS:
                        builds.append(Call(callee, state, base + pos - 1))
                    if callee == JOBLIB_WRAPPER and m.joblib and type(state) is PickleDict:
                        data = _raw_array_bytes(state, buf, pos, n)
                        if data is not None and base + pos + data <= c.end:
                            pos += data  # the array's bytes, as joblib writes them after BUILD
                            continue
                        # A nested pickle (an object array) or a bad wrapper: the machine's
                        # handler steps over it; hand it the walk's state and take it back.
                        c.pos, m.at, m.stack, r.opcodes = base + pos, base + pos - 1, stack, count
                        m.skip_joblib_array(state)
                        stack, buf, base = m.stack, c.buf, c.buf_at
                        pos, n, count = c.pos - base, len(buf), r.opcodes
                    continue
                elif op == 0x74 and marks:  # TUPLE
                    value = tuple(stack)
                    stack = marks.pop()
                    stack.append(value)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x7D:  # EMPTY_DICT
                    stack.append(PickleDict([]))
                    pos += 1
                    count += 1
                    continue
                elif op == 0x75 and marks and marks[-1]:  # SETITEMS
                    items = stack
                    stack = marks.pop()
                    target = stack[-1]
                    if type(target) is PickleDict:
                        target.items.extend(zip(items[::2], items[1::2], strict=False))
                    pos += 1
                    count += 1
                    continue
                elif op == 0x73 and len(stack) >= 3:  # SETITEM
                    value = stack.pop()
                    key = stack.pop()
                    target = stack[-1]
                    if type(target) is PickleDict:
                        target.items.append((key, value))
                    pos += 1
                    count += 1
                    continue
                elif op == 0x65 and marks and marks[-1]:  # APPENDS
                    items = stack
                    stack = marks.pop()
                    target = stack[-1]
                    if type(target) is list:
                        target.extend(items)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x61 and len(stack) >= 2:  # APPEND
                    value = stack.pop()
                    target = stack[-1]
                    if type(target) is list:
                        target.append(value)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x63:  # GLOBAL: two lines, as protocols 0-2 write imports
                    eol = buf.find(b"\n", pos + 1, pos + 2 + MAX_LINE)
                    end = buf.find(b"\n", eol + 1, eol + 2 + MAX_LINE) if eol >= 0 else -1
                    if end >= 0:
                        module = buf[pos + 1 : eol].decode("utf-8", "replace")
                        name = buf[eol + 1 : end].decode("utf-8", "replace")
                        stack.append(Global(r.import_name(module, name)))
                        pos = end + 1
                        count += 1
                        continue
                elif op == 0x70 or op == 0x67:  # PUT, GET: a decimal key on its line
                    eol = buf.find(b"\n", pos + 1, pos + 2 + MAX_LINE)
                    raw = buf[pos + 1 : eol] if eol >= 0 else b""
                    if raw.isdigit() and len(raw) < 19:  # else the reference handler reads it
                        key = int(raw)
                        if op == 0x70 and stack:
                            memo[key] = stack[-1]
                            pos = eol + 1
                            count += 1
                            continue
                        value = memo.get(key, _UNSTORED)
                        if op == 0x67 and value is not _UNSTORED:
                            stack.append(value)
                            pos = eol + 1
                            count += 1
                            continue
                elif (op == 0x64 or op == 0x6C) and marks:  # DICT, LIST
                    items = stack
                    stack = marks.pop()
                    pairs = zip(items[::2], items[1::2], strict=False)
                    stack.append(PickleDict(list(pairs)) if op == 0x64 else items)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x72 and pos + 5 <= n:  # LONG_BINPUT
                    memo[_U32(buf, pos + 1)[0]] = stack[-1]
                    pos += 5
                    count += 1
                    continue
                elif op == 0x6A and pos + 5 <= n:  # LONG_BINGET
                    value = memo.get(_U32(buf, pos + 1)[0], _UNSTORED)
                    if value is not _UNSTORED:
                        stack.append(value)
                        pos += 5
                        count += 1
                        continue
            elif op >= 0x48:
                if op == 0x4B and pos + 2 <= n:  # BININT1
                    stack.append(buf[pos + 1])
                    pos += 2
                    count += 1
                    continue
                elif op == 0x52 and len(stack) >= 2:  # REDUCE
                    args = stack.pop()
                    f = stack.pop()
                    callee = f.name if type(f) is Global else None
                    if callee is not None and callee in keep and len(calls) < MAX_RECORDS:
                        calls.append(Call(callee, args, base + pos))
                    stack.append(Obj(callee, args))
                    pos += 1
                    count += 1
                    continue
                elif op == 0x4E:  # NONE
                    stack.append(None)
                    pos += 1
                    count += 1
                    continue
                elif op == 0x58 and pos + 5 <= n:  # BINUNICODE
                    size = _U32(buf, pos + 1)[0]
                    end = pos + 5 + size
                    if size > MAX_KEPT and base + end <= c.end:
                        stack.append(_UNICODE)
                        pos = end  # past the buffer, maybe: the next opcode refills
                        count += 1
                        continue
                    if size <= MAX_KEPT and end <= n:
                        stack.append(buf[pos + 5 : end].decode("utf-8", "replace"))
                        pos = end
                        count += 1
                        continue
                elif op == 0x51 and stack:  # BINPERSID
                    value = stack.pop()
                    if len(pids) < MAX_RECORDS:
                        pids.append(value)
                    stack.append(PersistentId(value))
                    pos += 1
                    count += 1
                    continue
                elif op == 0x4D and pos + 3 <= n:  # BININT2
                    stack.append(_U16(buf, pos + 1)[0])
                    pos += 3
                    count += 1
                    continue
                elif op == 0x4A and pos + 5 <= n:  # BININT
                    stack.append(_I32(buf, pos + 1)[0])
                    pos += 5
                    count += 1
                    continue
                elif op == 0x55 and pos + 2 <= n:  # SHORT_BINSTRING
                    end = pos + 2 + buf[pos + 1]
                    if end <= n:
                        stack.append(buf[pos + 2 : end].decode("utf-8", "replace"))
                        pos = end
                        count += 1
                        continue
                elif op == 0x49 or op == 0x56:  # INT, UNICODE: a line each
                    eol = buf.find(b"\n", pos + 1, pos + 2 + MAX_LINE)
                    raw = buf[pos + 1 : eol] if eol >= 0 else b"-"
                    if op == 0x49 and raw.isdigit() and len(raw) < 19:  # others: the handler's
                        stack.append(raw == b"01" if raw in (b"00", b"01") else int(raw))
                        pos = eol + 1
                        count += 1
                        continue
                    if op == 0x56 and eol >= 0 and b"\\" not in raw:  # no escape to fail on
                        stack.append(raw.decode("raw-unicode-escape"))
                        pos = eol + 1
                        count += 1
                        continue
                elif op == 0x5D:  # EMPTY_LIST
                    stack.append([])
                    pos += 1
                    count += 1
                    continue
            elif op >= 0:
                if op == 0x28:  # MARK
                    marks.append(stack)
                    stack = []
                    pos += 1
                    count += 1
                    continue
                if op == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                    pos += 1
                    count += 1
                    continue
                if op == 0x2E:  # STOP
                    root = stack.pop()
                    c.pos, m.stack, r.opcodes = base + pos + 1, stack, count + 1
                    return root
                if op == 0x43 and pos + 2 <= n:  # SHORT_BINBYTES
                    end = pos + 2 + buf[pos + 1]
                    if end <= n:
                        stack.append(buf[pos + 2 : end])
                        pos = end
                        count += 1
                        continue
                elif op == 0x42 and pos + 5 <= n:  # BINBYTES
                    size = _U32(buf, pos + 1)[0]
                    end = pos + 5 + size
                    if size > MAX_KEPT and base + end <= c.end:
                        stack.append(_BYTES)
                        pos = end
                        count += 1
                        continue
                    if size <= MAX_KEPT and end <= n:
                        stack.append(buf[pos + 5 : end])
                        pos = end
                        count += 1
                        continue
                elif op == 0x47 and pos + 9 <= n:  # BINFLOAT
                    stack.append(_F64(buf, pos + 1)[0])
                    pos += 9
                    count += 1
                    continue
                elif op == 0x30 and stack:  # POP
                    stack.pop()
                    pos += 1
                    count += 1
                    continue
            elif c.refill(base + pos):  # the buffer is used up: the next chunk
                buf, base, pos = c.buf, c.buf_at, 0
                n = len(buf)
                continue
            # Any other opcode, or one whose bytes are not all in the buffer: the reference
            # handler reads it through the cursor, which refills or fails as it should.
            c.pos, m.stack, r.opcodes = base + pos, stack, count
            if m.step():
                return m.root
            stack, buf, base = m.stack, c.buf, c.buf_at
            pos, n, count = c.pos - base, len(buf), r.opcodes
    except IndexError:
        # Only the inline stack reads above raise it: the stack (since the last MARK) is empty.
        raise c.error(base + pos, "stack underflow") from None


def _raw_array_bytes(state: PickleDict, buf: bytes, pos: int, n: int) -> int | None:
    """Bytes of array data (with their padding) after a joblib wrapper's BUILD at `pos`; None
    when Machine.skip_joblib_array must step instead: an object array's nested pickle, a
    wrapper it refuses, a padding length not in the buffer."""
    elements = array_elements(state.get("shape"))
    itemsize = dtype_itemsize(state.get("dtype"))
    if elements is None or not itemsize:
        return None
    if not isinstance(state.get("numpy_array_alignment_bytes"), int):
        return elements * itemsize
    return 1 + buf[pos] + elements * itemsize if pos < n else None
