"""Read a llamafile: an executable (ELF, PE or an APE shell-script header) with a zip appended
that stores a GGUF model uncompressed; the GGUF is read in place through a shifted ReadAt.
"""

from __future__ import annotations

from dataclasses import replace

from agent.detect.formats import ModelInfo, ReadAt, gguf
from agent.detect.formats.ziparchive import (
    STORED,
    archive_kind,
    data_offset,
    is_executable_head,
    read_archive,
)
from agent.errors import FormatError

FORMAT = "llamafile"


def claims(head: bytes, size: int) -> bool:
    """An executable large enough to carry a model; parse looks for the zip at its end."""
    return is_executable_head(head) and size > 4096


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for an executable without an appended zip holding a .gguf; FormatError when the
    GGUF is compressed or broken."""
    head = read_at(0, min(size, 64))
    try:
        archive = read_archive(read_at, size, FORMAT)
    except FormatError:
        # Executables can hold zip signatures by chance (zip libraries do); that is no model.
        return None
    if archive is None or archive_kind(archive, head) != FORMAT:
        return None
    member = next(m for m in archive.members if m.name.lower().endswith(".gguf"))
    if member.method != STORED:
        reason = f"{member.name[:256]!r} is compressed; llamafile maps its GGUF in place"
        raise FormatError(FORMAT, member.header_offset, reason)
    base = data_offset(read_at, archive, member, FORMAT)
    length = member.file_size

    def inner(offset: int, n: int) -> bytes:
        return read_at(base + offset, max(0, min(n, length - offset)))

    if not gguf.claims(inner(0, 64)):
        raise FormatError(FORMAT, base, f"{member.name[:256]!r} is not a GGUF file")
    try:
        info = gguf.parse(inner, length)
    except FormatError as e:
        raise FormatError(FORMAT, base + e.offset, f"embedded GGUF: {e.reason}") from None
    return replace(info, format=FORMAT, header_bytes=base + info.header_bytes)
