"""Count the weights of a Keras HDF5 model: the elements of every dataset under the root's
`model_weights` group, reached through old-style groups (symbol tables: a v1 B-tree of symbol
nodes and a local heap of names) or new-style compact groups (link messages).

Groups in dense link storage (a fractal heap, past eight links in new-style files) are not
read; such a model reports no count rather than a wrong one.
"""

from __future__ import annotations

import math

from agent.detect.formats.hdf5_objects import (
    FORMAT,
    MAX_TEXT,
    UNDEFINED,
    File,
    Header,
    object_header,
)
from agent.errors import FormatError

WEIGHTS_GROUP = "model_weights"
MAX_OBJECTS = 1 << 14  # object headers read while counting
MAX_DEPTH = 16


def weight_count(f: File, root: Header) -> int | None:
    """Elements of all datasets under model_weights; None when the group is absent or held
    where this reader does not look."""
    group = _children(f, root).get(WEIGHTS_GROUP)
    if group is None:
        return None
    budget = [MAX_OBJECTS]
    return _count(f, group, 0, budget)


def _count(f: File, at: int, depth: int, budget: list[int]) -> int | None:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise FormatError(FORMAT, at, f"weights nest deeper than {MAX_DEPTH} or exceed the cap")
    header = Header()
    object_header(f, at, header)
    if header.dims is not None:
        return math.prod(header.dims)
    if header.symbol_table is None and not header.links:
        return None  # a group in dense storage, or an object of another kind
    total = 0
    for child in _children(f, header).values():
        found = _count(f, child, depth + 1, budget)
        if found is None:
            return None
        total += found
    return total


def _children(f: File, header: Header) -> dict[str, int]:
    if header.links:
        return header.links
    if header.symbol_table is None:
        return {}
    btree, heap = header.symbol_table
    names_at = _local_heap(f, heap)
    found: dict[str, int] = {}
    _btree(f, btree, names_at, found, [MAX_OBJECTS], None)
    return found


def _local_heap(f: File, at: int) -> int:
    """Where a local heap's data segment (the group's member names) starts."""
    if f.read(at, 4, "local heap") != b"HEAP":
        raise FormatError(FORMAT, at, "local heap without HEAP signature")
    return f.address(at + 8 + 2 * f.lengths, "local heap data")


def _btree(
    f: File, at: int, names_at: int, found: dict[str, int], budget: list[int], level: int | None
) -> None:
    """A v1 group B-tree node: inner nodes point to nodes one level down, leaves to symbol
    nodes; a node at the wrong level is a loop."""
    budget[0] -= 1
    if budget[0] < 0 or at == UNDEFINED:
        raise FormatError(FORMAT, max(at, 0), "group B-tree loops or is too large")
    raw = f.read(at, 8, "group B-tree node")
    if raw[:4] != b"TREE" or raw[4] != 0:
        raise FormatError(FORMAT, at, "group B-tree node without TREE signature")
    if (level is not None and raw[5] != level) or raw[5] > MAX_DEPTH:
        raise FormatError(FORMAT, at, f"group B-tree node at level {raw[5]}")
    level, entries = raw[5], int.from_bytes(raw[6:8], "little")
    pos = at + 8 + 2 * f.offsets + f.lengths  # siblings, then the first key
    for _ in range(entries):
        child = f.address(pos, "B-tree child")
        if level > 0:
            _btree(f, child, names_at, found, budget, level - 1)
        else:
            _symbol_node(f, child, names_at, found)
        pos += f.offsets + f.lengths


def _symbol_node(f: File, at: int, names_at: int, found: dict[str, int]) -> None:
    raw = f.read(at, 8, "symbol node")
    if raw[:4] != b"SNOD":
        raise FormatError(FORMAT, at, "symbol node without SNOD signature")
    entry = 2 * f.offsets + 24
    for i in range(int.from_bytes(raw[6:8], "little")):
        pos = at + 8 + i * entry
        name_at = names_at + f.uint(pos, f.offsets, "symbol name offset")
        name = f.read(name_at, min(MAX_TEXT, f.size - name_at), "symbol name").split(b"\0")[0]
        found[name.decode("utf-8", "replace")] = f.address(pos + f.offsets, "symbol object")
