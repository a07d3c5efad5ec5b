"""Read a zip archive's central directory (or, as streaming loaders do, its local headers) through
ReadAt, and one member at a time with a hard cap on what it inflates to.

Stored and deflated members only; claimed sizes are checked against the file and each other
before anything is read, so zip bombs (high ratios, overlapping members) are refused.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from agent.detect.formats import ReadAt
from agent.detect.frozen import quick_init
from agent.errors import FormatError

FORMAT = "zip"
LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"
MAX_MEMBERS = 1 << 16
MAX_DIRECTORY = 16 << 20
MAX_NAME = 4096
# Deflate cannot pack more than 1032:1, so a higher claimed ratio is a lie or a bomb.
MAX_RATIO = 1032
STORED, DEFLATED = 0, 8
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_MAX_COMMENT = 0xFFFF
_CHUNK = 64 << 10
_EXECUTABLE_MAGICS: tuple[bytes, ...] = (
    b"\x7fELF",
    b"MZ",
    b"#!",
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


@quick_init  # one per member, and torch checkpoints have hundreds: see agent.detect.frozen
@dataclass(frozen=True)
class Member:
    """One central directory entry; header_offset is absolute in the file."""

    name: str
    method: int
    flags: int
    compressed_size: int
    file_size: int
    header_offset: int
    name_bytes: int


@dataclass(frozen=True)
class Archive:
    """A zip's members, where its central directory starts, and the size of the file."""

    members: tuple[Member, ...]
    directory_offset: int
    size: int
    by_name: dict[str, Member] = field(default_factory=dict, compare=False, repr=False)

    def find(self, name: str) -> Member | None:
        return self.by_name.get(name)


def is_zip_head(head: bytes) -> bool:
    """True when a file starts the way zip files do (a local header, or an empty archive)."""
    return head[:4] in (LOCAL_SIG, EOCD_SIG)


def is_executable_head(head: bytes) -> bool:
    """True when a file starts like an ELF, PE, Mach-O or shell-script executable."""
    return head.startswith(_EXECUTABLE_MAGICS)


def first_name(head: bytes) -> str | None:
    """The name in the first local header when the head holds it, for cheap claims."""
    if len(head) < LOCAL_HEADER.size or head[:4] != LOCAL_SIG:
        return None
    n = struct.unpack_from("<H", head, 26)[0]
    raw = head[LOCAL_HEADER.size : LOCAL_HEADER.size + n]
    return raw.decode("utf-8", errors="replace") if len(raw) == n else None


def read_archive(read_at: ReadAt, size: int, fmt: str = FORMAT) -> Archive | None:
    """The central directory, or None when the file does not end with a zip end record.

    FormatError names the byte offset when the directory is there but broken or hostile.
    """
    found = _find_end(read_at, size, fmt)
    if found is None:
        return None
    eocd_at, count, directory_size, directory_offset, records_at = found
    if count > MAX_MEMBERS:
        raise FormatError(fmt, eocd_at, f"claims {count} members (cap {MAX_MEMBERS})")
    if directory_size > MAX_DIRECTORY or directory_size < count * _CENTRAL.size:
        reason = f"central directory of {directory_size} bytes cannot hold {count} entries"
        raise FormatError(fmt, eocd_at, reason)
    # Data before the archive (an executable, a self-extractor) shifts every offset.
    shift = records_at - directory_size - directory_offset
    if shift < 0:
        raise FormatError(fmt, eocd_at, "central directory overlaps its end record")
    start = directory_offset + shift
    raw = read_at(start, directory_size)
    if len(raw) != directory_size:
        raise FormatError(fmt, start, "file ends inside the central directory")
    members = _parse_directory(raw, start, count, shift, fmt)
    _check_layout(members, start, fmt)
    return Archive(tuple(members), start, size, {m.name: m for m in members})


def _find_end(read_at: ReadAt, size: int, fmt: str) -> tuple[int, int, int, int, int] | None:
    """(end record offset, member count, directory size, directory offset, where the records
    that end the archive start), or None when the file does not end with an end record."""
    tail_at = max(0, size - _EOCD.size - _MAX_COMMENT)
    tail = read_at(tail_at, size - tail_at)
    at = len(tail)
    while True:
        at = tail.rfind(EOCD_SIG, 0, at)
        if at < 0:
            return None
        fields = _EOCD.unpack_from(tail, at) if at + _EOCD.size <= len(tail) else None
        if fields is not None and at + _EOCD.size + fields[7] == len(tail):
            break
    _, disk, directory_disk, _, count, directory_size, directory_offset, _ = fields
    eocd_at = tail_at + at
    if disk or directory_disk:
        raise FormatError(fmt, eocd_at, "archive spans several disks")
    # Writers such as PyTorch's add zip64 records even to small archives; when present they
    # hold the real counts and sit between the directory and the end record.
    zip64 = _zip64_end(read_at, eocd_at, fmt)
    if zip64 is not None:
        return (eocd_at, *zip64)
    return eocd_at, count, directory_size, directory_offset, eocd_at


def _zip64_end(read_at: ReadAt, eocd_at: int, fmt: str) -> tuple[int, int, int, int] | None:
    locator_at = eocd_at - _ZIP64_LOCATOR.size
    record_at = locator_at - _ZIP64_EOCD.size
    if record_at < 0:
        return None
    raw = read_at(record_at, _ZIP64_EOCD.size + _ZIP64_LOCATOR.size)
    if raw[_ZIP64_EOCD.size : _ZIP64_EOCD.size + 4] != ZIP64_LOCATOR_SIG:
        return None
    record = _ZIP64_EOCD.unpack_from(raw)
    if record[0] != ZIP64_EOCD_SIG:
        raise FormatError(fmt, record_at, "zip64 locator without a zip64 end record")
    if record[4] or record[5]:
        raise FormatError(fmt, record_at, "archive spans several disks")
    _, _, _, _, _, _, _, count, directory_size, directory_offset = record
    return count, directory_size, directory_offset, record_at


def _parse_directory(raw: bytes, start: int, count: int, shift: int, fmt: str) -> list[Member]:
    members: list[Member] = []
    pos = 0
    for _ in range(count):
        if pos + _CENTRAL.size > len(raw):
            raise FormatError(fmt, start + pos, f"central directory ends after {len(members)}")
        fields = _CENTRAL.unpack_from(raw, pos)
        if fields[0] != CENTRAL_SIG:
            raise FormatError(fmt, start + pos, "central directory entry has no signature")
        flags, method, csize, usize = fields[3], fields[4], fields[8], fields[9]
        n_name, n_extra, n_comment, offset = fields[10], fields[11], fields[12], fields[16]
        end = pos + _CENTRAL.size + n_name + n_extra + n_comment
        if n_name > MAX_NAME or end > len(raw):
            raise FormatError(fmt, start + pos, "central directory entry runs past its end")
        name_raw = raw[pos + _CENTRAL.size : pos + _CENTRAL.size + n_name]
        extra = raw[pos + _CENTRAL.size + n_name : pos + _CENTRAL.size + n_name + n_extra]
        usize, csize, offset = zip64_sizes(extra, usize, csize, offset, start + pos, fmt)
        name = name_raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        members.append(Member(name, method, flags, csize, usize, offset + shift, n_name))
        pos = end
    return members


def zip64_sizes(
    extra: bytes, usize: int, csize: int, offset: int, at: int, fmt: str
) -> tuple[int, int, int]:
    """Replace the 32-bit fields that say 0xFFFFFFFF by the zip64 extra field's values."""
    if 0xFFFFFFFF not in (usize, csize, offset):
        return usize, csize, offset
    pos = 0
    while pos + 4 <= len(extra):
        tag, n = struct.unpack_from("<2H", extra, pos)
        if tag == 1:
            values = [usize, csize, offset]
            body = extra[pos + 4 : pos + 4 + n]
            k = 0
            for i, v in enumerate(values):
                if v == 0xFFFFFFFF:
                    if k + 8 > len(body):
                        raise FormatError(fmt, at, "zip64 extra field is too short")
                    values[i] = struct.unpack_from("<Q", body, k)[0]
                    k += 8
            return values[0], values[1], values[2]
        pos += 4 + n
    return usize, csize, offset


def _check_layout(members: list[Member], directory_at: int, fmt: str) -> None:
    """Members must lie one after another before the directory, at believable ratios."""
    for m in members:
        if m.method == STORED and m.file_size != m.compressed_size:
            reason = f"stored member {m.name[:200]!r} has two sizes"
            raise FormatError(fmt, m.header_offset, reason)
        if m.method == DEFLATED and m.file_size > max(m.compressed_size, 1) * MAX_RATIO:
            reason = (
                f"member {m.name[:200]!r} claims {m.file_size} bytes from "
                f"{m.compressed_size}: a zip bomb"
            )
            raise FormatError(fmt, m.header_offset, reason)
    ordered = sorted(members, key=lambda m: m.header_offset)
    limits = [m.header_offset for m in ordered[1:]] + [directory_at] if ordered else []
    for m, limit in zip(ordered, limits, strict=True):
        end = m.header_offset + LOCAL_HEADER.size + m.name_bytes + m.compressed_size
        if end > limit:
            reason = f"member {m.name[:200]!r} overlaps what follows it (a zip bomb or a cut file)"
            raise FormatError(fmt, m.header_offset, reason)


def data_offset(read_at: ReadAt, archive: Archive, member: Member, fmt: str = FORMAT) -> int:
    """Where a member's bytes start, from its local header."""
    raw = read_at(member.header_offset, LOCAL_HEADER.size)
    if len(raw) != LOCAL_HEADER.size or raw[:4] != LOCAL_SIG:
        raise FormatError(fmt, member.header_offset, f"no local header for {member.name[:200]!r}")
    n_name, n_extra = struct.unpack_from("<2H", raw, 26)
    start: int = member.header_offset + LOCAL_HEADER.size + n_name + n_extra
    if start + member.compressed_size > archive.directory_offset:
        reason = f"member {member.name[:200]!r} runs into the central directory"
        raise FormatError(fmt, member.header_offset, reason)
    return start


def read_member(
    read_at: ReadAt, archive: Archive, member: Member, *, limit: int, fmt: str = FORMAT
) -> bytes:
    """The first min(file size, limit) bytes of a member, inflating no more than that.

    Flag bits (0x1 encrypted, 0x20 patched, 0x40 strong encryption) are ignored, as PyTorch's
    reader ignores them: the bytes are read as they stand, so a loader's view is scanned."""
    start = data_offset(read_at, archive, member, fmt)
    want = min(member.file_size, limit)
    if member.method == STORED:
        data = read_at(start, want)
    elif member.method == DEFLATED:
        data = _inflate(read_at, start, member.compressed_size, want, fmt)
    else:
        reason = f"{member.name[:200]!r} uses compression method {member.method}"
        raise FormatError(fmt, member.header_offset, reason)
    if len(data) != want:
        reason = f"{member.name[:200]!r} holds {len(data)} bytes, not the {want} it claims"
        raise FormatError(fmt, start, reason)
    return data


def _inflate(read_at: ReadAt, start: int, compressed: int, want: int, fmt: str) -> bytes:
    inflater = zlib.decompressobj(-15)
    out = bytearray()
    pos, end, pending = start, start + compressed, b""
    while len(out) < want and not inflater.eof:
        if not pending:
            pending = read_at(pos, min(_CHUNK, end - pos)) if pos < end else b""
            if not pending:
                break
            pos += len(pending)
        try:
            out += inflater.decompress(pending, want - len(out))
        except zlib.error as e:
            raise FormatError(fmt, start, f"member does not inflate: {e}") from None
        pending = inflater.unconsumed_tail
    return bytes(out)


def member_reader(
    read_at: ReadAt, archive: Archive, member: Member, *, limit: int, fmt: str = FORMAT
) -> tuple[ReadAt, int]:
    """A ReadAt over one member and its size: a window on the file for a stored member, the
    first `limit` inflated bytes for a deflated one."""
    if member.method != STORED:
        data = read_member(read_at, archive, member, limit=limit, fmt=fmt)
        return (lambda o, n: data[o : o + n]), len(data)
    base, size = data_offset(read_at, archive, member, fmt), member.file_size

    def window(offset: int, length: int) -> bytes:
        return read_at(base + offset, max(0, min(length, size - offset)))

    return window, size


def archive_kind(archive: Archive, head: bytes) -> str | None:
    """ "pytorch" | "torchscript" | "keras" | "npz" | "llamafile" by the member layout."""
    names = archive.by_name
    if is_executable_head(head):
        return "llamafile" if any(n.lower().endswith(".gguf") for n in names) else None
    root = _torch_root(names)
    if root is not None:
        code = any(n.startswith(f"{root}code/") for n in names)
        script = code or f"{root}constants.pkl" in names or f"{root}bytecode.pkl" in names
        return "torchscript" if script else "pytorch"
    if "config.json" in names and "metadata.json" in names:
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return None


def _torch_root(names: dict[str, Member]) -> str | None:
    for name in names:
        head, sep, rest = name.partition("/")
        if sep and rest == "data.pkl":
            return f"{head}/"
    return None


def zip_kind(read_at: ReadAt, size: int) -> str | None:
    """The archive kind of a zip file or an executable with a zip appended, else None."""
    head = read_at(0, min(size, 64))
    if not (is_zip_head(head) or is_executable_head(head)):
        return None
    archive = read_archive(read_at, size)
    return archive_kind(archive, head) if archive is not None else None
