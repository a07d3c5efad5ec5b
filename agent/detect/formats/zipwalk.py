"""Zip members as streaming loaders find them: walking the local headers one after another,
beside what the central directory lists, so that neither view can hide a member."""

from __future__ import annotations

from agent.detect.formats import ReadAt
from agent.detect.formats.ziparchive import (
    FORMAT,
    LOCAL_HEADER,
    LOCAL_SIG,
    MAX_MEMBERS,
    MAX_NAME,
    Archive,
    Member,
    read_archive,
    zip64_sizes,
)
from agent.errors import FormatError


def local_members(
    read_at: ReadAt, size: int, known: dict[int, Member] | None = None, start: int = 0
) -> list[Member]:
    """Members as the local headers lay them out, one after another from `start`; a member
    whose sizes follow its data (flag 0x8) takes them from the central directory entry at the
    same offset (`known`), and the walk stops where neither says."""
    members: list[Member] = []
    peek = _Window(read_at)
    pos = start
    while len(members) < MAX_MEMBERS and pos + LOCAL_HEADER.size <= size:
        raw = peek(pos, LOCAL_HEADER.size)
        if len(raw) < LOCAL_HEADER.size or raw[:4] != LOCAL_SIG:
            break
        _, _, flags, method, _, _, _, csize, usize, n_name, n_extra = LOCAL_HEADER.unpack(raw)
        name_raw = peek(pos + LOCAL_HEADER.size, min(n_name, MAX_NAME))
        extra = peek(pos + LOCAL_HEADER.size + n_name, n_extra)
        usize, csize, _ = zip64_sizes(extra, usize, csize, 0, pos, FORMAT)
        central = (known or {}).get(pos)
        if flags & 0x8 and central is not None:
            csize, usize = central.compressed_size, central.file_size
        elif flags & 0x8 and csize == 0:
            break
        name = name_raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        data_at = pos + LOCAL_HEADER.size + n_name + n_extra
        if data_at + csize > size:
            break
        members.append(Member(name, method, flags, csize, usize, pos, n_name))
        pos = data_at + csize + (_descriptor(peek, data_at + csize) if flags & 0x8 else 0)
    return members


def _descriptor(read_at: ReadAt, at: int) -> int:
    """Bytes of the data descriptor at `at`: its signature is optional."""
    return 16 if read_at(at, 4) == b"PK\x07\x08" else 12


class _Window:
    """A ReadAt that reads a window ahead: a local header, its name and extra field, and the
    descriptor and header after a member's data are small and close together, and each read
    of the file is a system call."""

    def __init__(self, read_at: ReadAt) -> None:
        self.read_at = read_at
        self.at, self.data = 0, b""

    def __call__(self, at: int, length: int) -> bytes:
        start = at - self.at
        if start < 0 or start + length > len(self.data):
            self.at, self.data, start = at, self.read_at(at, max(length, _WINDOW)), 0
        return self.data[start : start + length]


_WINDOW = 1024


def every_member(read_at: ReadAt, size: int, fmt: str = FORMAT) -> tuple[Archive, list[Member]]:
    """An archive view and every member either its central directory or its local headers
    name (a loader may follow either), once per header offset.

    A central directory that is broken or hostile is left out rather than refused, since a
    streaming loader never reads it; FormatError only when neither view holds a member.
    """
    try:
        archive = read_archive(read_at, size, fmt)
    except FormatError:
        archive = None
    return with_local_members(read_at, size, archive, fmt)


def with_local_members(
    read_at: ReadAt, size: int, archive: Archive | None, fmt: str = FORMAT
) -> tuple[Archive, list[Member]]:
    """every_member for a caller that has read the central directory already (None: it is
    missing or was refused), so that it is not read twice."""
    central = {m.header_offset: m for m in archive.members} if archive is not None else {}
    head = read_at(0, min(size, 4096))
    first = head.find(LOCAL_SIG)
    local = local_members(read_at, size, central, max(first, 0)) if first >= 0 else []
    seen = dict(central)
    for m in local:
        seen.setdefault(m.header_offset, m)
    members = sorted(seen.values(), key=lambda m: m.header_offset)
    if not members:
        raise FormatError(fmt, 0, "no zip member in the central directory or local headers")
    view = Archive(tuple(members), size, size, {m.name: m for m in members})
    return view, members
