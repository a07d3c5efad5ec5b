"""The values a pickle walk builds in place of real objects, what one walk reports, and readers
of the numpy shapes and dtypes those values describe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Global:
    """A name the pickle imports: module and qualified name joined by a dot."""

    name: str


@dataclass(frozen=True, slots=True)
class Opaque:
    """A value the walk does not model: a long blob, a buffer, a set, an unresolved import."""

    what: str


@dataclass(eq=False, slots=True)
class PickleDict:
    """A dict as its (key, value) pairs, since keys need not be hashable here."""

    items: list[tuple[Value, Value]] = field(default_factory=list)

    def get(self, key: str) -> Value:
        for k, v in self.items:
            if k == key:
                return v
        return None


@dataclass(eq=False, slots=True)
class Obj:
    """What REDUCE, NEWOBJ, INST or OBJ would build: its callable (when a Global), its args and
    the state a BUILD gave it."""

    callee: str | None
    args: Value
    state: Value = None


@dataclass(frozen=True, slots=True)
class PersistentId:
    """A reference the loader resolves outside the pickle (PyTorch uses it for storages)."""

    value: Value


Value: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | tuple["Value", ...]
    | list["Value"]
    | PickleDict
    | Obj
    | Global
    | PersistentId
    | Opaque
    | None
)


@dataclass(slots=True)
class Call:
    """A REDUCE/NEWOBJ of a kept callable (args) or a BUILD on an object of a kept class
    (state), at the opcode's byte offset. Never changed once recorded; not frozen, like
    PickleScan, since numpy pickles record two per array."""

    callee: str
    value: Value
    offset: int


@dataclass(slots=True)
class PickleScan:
    """What one pickle stream holds, from its first opcode to its STOP. Built once at the end
    of a walk and never changed; not frozen, since a frozen class's constructor costs three
    times as much and one is built for every pickle scanned."""

    start: int
    end: int
    protocol: int
    root: Value
    imports: tuple[str, ...]  # in order of first appearance
    unresolved: tuple[str, ...]  # imports the walk cannot name, with where
    calls: tuple[Call, ...]
    builds: tuple[Call, ...]
    persistent_ids: tuple[Value, ...]
    opcodes: int
    complete: bool  # False: the walk stopped at a cap before STOP
    stopped: str | None = None
    qualnames: tuple[str, ...] = ()  # the name part of each import, in the same order


def array_elements(shape: Value) -> int | None:
    """The element count of a shape tuple of natural numbers, else None."""
    if not isinstance(shape, tuple | list):
        return None
    count = 1
    for d in shape:
        if type(d) is not int or d < 0:
            return None
        count *= d
    return count


def dtype_string(dtype: Value) -> str | None:
    """The type string of a pickled numpy dtype (`numpy.dtype('f4', False, True)`), else None."""
    if not isinstance(dtype, Obj) or dtype.callee not in _DTYPE_CALLEES:
        return None
    args = dtype.args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


_DTYPE_CALLEES = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype"})


def dtype_itemsize(dtype: Value) -> int | None:
    """Bytes per element of a pickled numpy dtype; 0 for object dtypes; None if unreadable."""
    text = dtype_string(dtype)
    if text is None or not text[:1].isalpha():
        return None
    kind, digits = text[0], text[1:]
    if kind == "O":
        return 0
    if not digits.isdigit() or len(digits) > 6:
        return None
    return int(digits) * (4 if kind == "U" else 1)
