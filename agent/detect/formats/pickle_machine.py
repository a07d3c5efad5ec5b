"""The pickle virtual machine with every effect replaced by a record of it: one handler per
opcode over a stack, marks and a memo of walk values, and what the walk keeps across pickles."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from agent.detect.formats import pickle_loop
from agent.detect.formats.pickle_cursor import STRUCTS, Budget, Cursor
from agent.detect.formats.pickle_loop import JOBLIB_WRAPPER, MAX_KEPT, MAX_PROTOCOL, MAX_RECORDS
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
)

MAX_LONG = 64  # bytes of a LONG1/LONG4 integer that are decoded
MAX_IMPORTS = 4096
MAX_NAME = 512
COMPUTED = "import of a computed name"

# The renames pickle's fix_imports applies to protocol 0-2 pickles written by Python 2.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "exceptions": "builtins"}


class Records:
    """What the walk keeps across nested pickles (joblib embeds one per object array). A
    plain class: one is built for every walk, and a dataclass's field factories cost more
    than the walk of a small pickle's opcodes."""

    __slots__ = (
        "builds", "calls", "imports", "keep", "max_opcodes", "opcodes", "persistent_ids",
        "too_many_imports", "unresolved",
    )  # fmt: skip

    def __init__(self, keep: frozenset[str], max_opcodes: int) -> None:
        self.keep, self.max_opcodes, self.opcodes = keep, max_opcodes, 0
        self.imports: dict[str, str] = {}  # module.name -> name (its qualname)
        self.unresolved: list[str] = []
        self.calls: list[Call] = []
        self.builds: list[Call] = []
        self.persistent_ids: list[Value] = []
        self.too_many_imports = False

    def import_name(self, module: str, name: str) -> str:
        module = _PY2_MODULES.get(module, module)
        full = f"{module}.{name}"[:MAX_NAME]
        if full not in self.imports:
            if len(self.imports) < MAX_IMPORTS:
                self.imports[full] = name[:MAX_NAME]
            elif not self.too_many_imports:
                self.too_many_imports = True
                self.unresolved.append(f"more than {MAX_IMPORTS} distinct imports")
        return full

    def note(self, kept: list[Call], call: Call) -> None:
        if call.callee in self.keep and len(kept) < MAX_RECORDS:
            kept.append(call)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class Machine:
    """The pickle virtual machine with every effect replaced by a record of it."""

    def __init__(self, cursor: Cursor, records: Records, *, joblib: bool) -> None:
        self.c, self.r, self.joblib = cursor, records, joblib
        self.start = cursor.pos
        self.at = cursor.pos
        self.protocol = 0
        self.stack: list[Value] = []
        self.marks: list[list[Value]] = []
        self.memo: dict[int, Value] = {}
        self.root: Value = None
        self.paused = False  # True: this walk (not a nested one) stopped at the opcode budget

    def scan(self) -> PickleScan:
        try:
            return self.result(self.run())
        except Budget as e:
            return self.result(Opaque("unfinished"), str(e))

    def result(self, root: Value, stopped: str | None = None) -> PickleScan:
        """What the walk read; `stopped` says why it ended before STOP."""
        r = self.r
        return PickleScan(
            start=self.start,
            end=self.c.pos,
            protocol=self.protocol,
            root=root,
            imports=tuple(r.imports),
            qualnames=tuple(r.imports.values()),
            unresolved=tuple(r.unresolved),
            calls=tuple(r.calls),
            builds=tuple(r.builds),
            persistent_ids=tuple(r.persistent_ids),
            opcodes=r.opcodes,
            complete=stopped is None,
            stopped=stopped,
        )

    def run(self) -> Value:
        """Walk from the cursor's position to STOP and return the root value. After a Budget
        with `paused` set, raising records.max_opcodes and calling run again walks on."""
        self.paused = False
        return pickle_loop.run(self)

    def step(self) -> bool:
        """One opcode through its reference handler; True at STOP, with the value in root."""
        c = self.c
        self.at = c.pos
        op = c.byte("opcode")
        self.r.opcodes += 1
        if op == 0x2E:  # STOP
            self.root = self.pop()
            return True
        entry = _HANDLERS.get(op)
        if entry is None:
            raise c.error(self.at, f"unknown opcode 0x{op:02x}")
        entry[0](self, *entry[1])
        return False

    # -- stack ------------------------------------------------------------------------------

    def push(self, value: Value) -> None:
        self.stack.append(value)

    def pop(self) -> Value:
        if not self.stack:
            raise self.c.error(self.at, "stack underflow")
        return self.stack.pop()

    def top(self) -> Value:
        if not self.stack:
            raise self.c.error(self.at, "stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Value]:
        if not self.marks:
            raise self.c.error(self.at, "no MARK to pop to")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def mark(self) -> None:
        self.marks.append(self.stack)
        self.stack = []

    def pop_one(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def dup(self) -> None:
        self.push(self.top())

    def pop_n(self, n: int) -> list[Value]:
        if len(self.stack) < n:
            raise self.c.error(self.at, "stack underflow")
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    # -- framing ----------------------------------------------------------------------------

    def proto(self) -> None:
        version = self.c.byte("protocol")
        if version > MAX_PROTOCOL:
            raise self.c.error(self.at, f"unsupported protocol {version}")
        self.protocol = version

    def frame(self) -> None:
        # Frames only group opcodes for buffered reading; the walk reads linearly anyway.
        self.c.skip(8, "frame length")

    # -- scalars, strings and bytes -------------------------------------------------------

    def const(self, value: bool | tuple[()] | None) -> None:
        self.push(value)

    def scalar(self, code: str) -> None:
        layout = STRUCTS[code]
        self.push(layout.unpack(self.c.take(layout.size, "number"))[0])

    def int_line(self) -> None:
        raw = self.c.line("INT")
        if raw in (b"00", b"01"):
            self.push(raw == b"01")
        else:
            self.push(self._int(raw))

    def long_line(self) -> None:
        self.push(self._int(self.c.line("LONG").rstrip(b"L")))

    def _int(self, raw: bytes) -> int:
        try:
            return int(raw)
        except ValueError:
            raise self.c.error(self.at, f"integer {raw[:32]!r} is unreadable") from None

    def float_line(self) -> None:
        raw = self.c.line("FLOAT")
        try:
            self.push(float(raw))
        except ValueError:
            raise self.c.error(self.at, f"float {raw[:32]!r} is unreadable") from None

    def long(self, code: str) -> None:
        n = self._length(code, "LONG length")
        if n > MAX_LONG:
            self.c.skip(n, "LONG")
            self.push(Opaque("long"))
        else:
            self.push(int.from_bytes(self.c.take(n, "LONG"), "little", signed=True))

    def _length(self, code: str, what: str) -> int:
        n = self.c.unpack(code, what)
        if n < 0:
            raise self.c.error(self.at, f"{what} is negative")
        return n

    def blob(self, code: str, text: bool, what: str) -> None:
        n = self._length(code, f"{what} length")
        if n > MAX_KEPT:
            self.c.skip(n, what)
            self.push(Opaque(what))
            return
        raw = self.c.take(n, what)
        self.push(_text(raw) if text else raw)

    def string_line(self) -> None:
        raw = self.c.line("STRING")
        if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
            raise self.c.error(self.at, "STRING is not quoted")
        try:
            self.push(codecs.escape_decode(raw[1:-1])[0].decode("latin-1"))
        except ValueError:
            raise self.c.error(self.at, "STRING has a broken escape") from None

    def unicode_line(self) -> None:
        raw = self.c.line("UNICODE")
        try:
            self.push(raw.decode("raw-unicode-escape"))
        except UnicodeDecodeError:
            raise self.c.error(self.at, "UNICODE has a broken escape") from None

    def next_buffer(self) -> None:
        self.push(Opaque("buffer"))

    def readonly_buffer(self) -> None:
        self.top()

    # -- containers -------------------------------------------------------------------------

    def tuple_mark(self) -> None:
        self.push(tuple(self.pop_mark()))

    def tuple_n(self, n: int) -> None:
        self.push(tuple(self.pop_n(n)))

    def empty_list(self) -> None:
        self.push([])

    def list_mark(self) -> None:
        self.push(self.pop_mark())

    def append(self) -> None:
        value = self.pop()
        target = self.top()
        if isinstance(target, list):
            target.append(value)

    def appends(self) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, list):
            target.extend(items)

    def empty_dict(self) -> None:
        self.push(PickleDict())

    def dict_mark(self) -> None:
        items = self.pop_mark()
        self.push(PickleDict(list(zip(items[::2], items[1::2], strict=False))))

    def setitem(self) -> None:
        value = self.pop()
        key = self.pop()
        target = self.top()
        if isinstance(target, PickleDict):
            target.items.append((key, value))

    def setitems(self) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, PickleDict):
            target.items.extend(zip(items[::2], items[1::2], strict=False))

    def empty_set(self) -> None:
        self.push(Opaque("set"))

    def additems(self) -> None:
        self.pop_mark()
        self.top()

    def frozenset_mark(self) -> None:
        self.pop_mark()
        self.push(Opaque("frozenset"))

    # -- memo -------------------------------------------------------------------------------

    def _put(self, key: int) -> None:
        if key < 0:
            raise self.c.error(self.at, "negative memo key")
        self.memo[key] = self.top()

    def _get(self, key: int) -> None:
        if key not in self.memo:
            raise self.c.error(self.at, f"memo key {key} was never stored")
        self.push(self.memo[key])

    def put(self) -> None:
        self._put(self._int(self.c.line("PUT")))

    def binput(self, code: str) -> None:
        self._put(self.c.unpack(code, "memo key"))

    def memoize(self) -> None:
        self._put(len(self.memo))

    def get(self) -> None:
        self._get(self._int(self.c.line("GET")))

    def binget(self, code: str) -> None:
        self._get(self.c.unpack(code, "memo key"))

    # -- imports, calls and objects ---------------------------------------------------------

    def global_line(self) -> None:
        module = _text(self.c.line("GLOBAL module"))
        name = _text(self.c.line("GLOBAL name"))
        self.push(Global(self.r.import_name(module, name)))

    def stack_global(self) -> None:
        name = self.pop()
        module = self.pop()
        if isinstance(module, str) and isinstance(name, str):
            self.push(Global(self.r.import_name(module, name)))
            return
        if len(self.r.unresolved) < MAX_IMPORTS:
            self.r.unresolved.append(f"{COMPUTED} at byte {self.at}")
        self.push(Opaque("global"))

    def inst(self) -> None:
        module = _text(self.c.line("INST module"))
        name = _text(self.c.line("INST name"))
        callee = self.r.import_name(module, name)
        self._call(callee, tuple(self.pop_mark()))

    def obj(self) -> None:
        items = self.pop_mark()
        if not items:
            raise self.c.error(self.at, "OBJ without a class")
        self._call(_callee(items[0]), tuple(items[1:]))

    def newobj(self) -> None:
        args = self.pop()
        self._call(_callee(self.pop()), args)

    def newobj_ex(self) -> None:
        kwargs = self.pop()
        args = self.pop()
        self._call(_callee(self.pop()), (args, kwargs))

    def reduce(self) -> None:
        args = self.pop()
        self._call(_callee(self.pop()), args)

    def _call(self, callee: str | None, args: Value) -> None:
        if callee is not None:
            self.r.note(self.r.calls, Call(callee, args, self.at))
        self.push(Obj(callee, args))

    def build(self) -> None:
        state = self.pop()
        target = self.top()
        if not isinstance(target, Obj):
            return
        target.state = state
        if target.callee is not None:
            self.r.note(self.r.builds, Call(target.callee, state, self.at))
        if self.joblib and target.callee == JOBLIB_WRAPPER and isinstance(state, PickleDict):
            self.skip_joblib_array(state)

    def ext(self, code: str) -> None:
        number = self.c.unpack(code, "extension code")
        if len(self.r.unresolved) < MAX_IMPORTS:
            self.r.unresolved.append(f"extension registry code {number} at byte {self.at}")
        self.push(Opaque("extension"))

    def persid(self) -> None:
        self._persistent(_text(self.c.line("PERSID")))

    def binpersid(self) -> None:
        self._persistent(self.pop())

    def _persistent(self, value: Value) -> None:
        if len(self.r.persistent_ids) < MAX_RECORDS:
            self.r.persistent_ids.append(value)
        self.push(PersistentId(value))

    # -- joblib -----------------------------------------------------------------------------

    def skip_joblib_array(self, state: PickleDict) -> None:
        """joblib writes an array's bytes raw right after its wrapper's BUILD, or a nested
        pickle for object arrays; step over them as joblib's reader would read them."""
        elements = array_elements(state.get("shape"))
        itemsize = dtype_itemsize(state.get("dtype"))
        if elements is None or itemsize is None:
            raise self.c.error(self.at, "joblib array wrapper has no readable shape or dtype")
        if itemsize == 0:
            nested = Machine(self.c, self.r, joblib=False)
            nested.run()
            return
        if isinstance(state.get("numpy_array_alignment_bytes"), int):
            self.c.skip(self.c.byte("joblib padding length"), "joblib padding")
        self.c.skip(elements * itemsize, "joblib array data")


def _callee(value: Value) -> str | None:
    return value.name if isinstance(value, Global) else None


# opcode -> (handler, its arguments): struct codes for lengths, flags for text.
_OPS: dict[str, tuple[object, ...]] = {
    "(": ("mark",), "0": ("pop_one",), "1": ("pop_mark",), "2": ("dup",),
    "\x80": ("proto",), "\x95": ("frame",),
    "N": ("const", None), "\x88": ("const", True), "\x89": ("const", False),
    ")": ("const", ()), "I": ("int_line",), "L": ("long_line",), "F": ("float_line",),
    "J": ("scalar", "<i"), "K": ("scalar", "B"), "M": ("scalar", "<H"),
    "G": ("scalar", ">d"), "\x8a": ("long", "B"), "\x8b": ("long", "<i"),
    "S": ("string_line",), "V": ("unicode_line",),
    "T": ("blob", "<i", True, "BINSTRING"), "U": ("blob", "B", True, "SHORT_BINSTRING"),
    "X": ("blob", "<I", True, "BINUNICODE"), "\x8c": ("blob", "B", True, "SHORT_BINUNICODE"),
    "\x8d": ("blob", "<Q", True, "BINUNICODE8"), "B": ("blob", "<I", False, "BINBYTES"),
    "C": ("blob", "B", False, "SHORT_BINBYTES"), "\x8e": ("blob", "<Q", False, "BINBYTES8"),
    "\x96": ("blob", "<Q", False, "BYTEARRAY8"),
    "\x97": ("next_buffer",), "\x98": ("readonly_buffer",),
    "t": ("tuple_mark",), "\x85": ("tuple_n", 1), "\x86": ("tuple_n", 2),
    "\x87": ("tuple_n", 3), "]": ("empty_list",), "l": ("list_mark",), "a": ("append",),
    "e": ("appends",), "}": ("empty_dict",), "d": ("dict_mark",), "s": ("setitem",),
    "u": ("setitems",), "\x8f": ("empty_set",), "\x90": ("additems",),
    "\x91": ("frozenset_mark",), "p": ("put",), "q": ("binput", "B"),
    "r": ("binput", "<I"), "\x94": ("memoize",), "g": ("get",), "h": ("binget", "B"),
    "j": ("binget", "<I"), "c": ("global_line",), "\x93": ("stack_global",),
    "i": ("inst",), "o": ("obj",), "\x81": ("newobj",), "\x92": ("newobj_ex",),
    "R": ("reduce",), "b": ("build",), "\x82": ("ext", "B"), "\x83": ("ext", "<H"),
    "\x84": ("ext", "<i"), "P": ("persid",), "Q": ("binpersid",),
}  # fmt: skip

# opcode -> (Machine method, its arguments)
_HANDLERS: dict[int, tuple[Callable[..., object], tuple[object, ...]]] = {
    ord(op): (getattr(Machine, str(spec[0])), spec[1:]) for op, spec in _OPS.items()
}
