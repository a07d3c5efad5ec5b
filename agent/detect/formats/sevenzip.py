"""A bounded reader of 7z archives, enough to look inside for pickles: the header (plain or
LZMA-encoded), its pack and folder records and the sizes of the streams in each folder.

Folders of one copy, LZMA or LZMA2 coder, or LZMA/LZMA2 behind one branch filter (BCJ, the
default of 7-Zip and py7zr for some files), are unpacked, each up to MAX_UNPACK bytes and at
most MAX_RATIO times its packed size; others (encryption, longer chains) are reported skipped.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass, field

from agent.detect.formats import ReadAt
from agent.errors import FormatError

FORMAT = "7z"
MAGIC = b"7z\xbc\xaf\x27\x1c"
MAX_HEADER = 16 << 20
MAX_UNPACK = 64 << 20
MAX_RATIO = 2000  # LZMA packs runs of zeros near this; more is a bomb
MAX_ITEMS = 1 << 16
_COPY, _LZMA2, _LZMA = b"\x00", b"\x21", b"\x03\x01\x01"
_BRANCH = {
    b"\x03\x03\x01\x03": lzma.FILTER_X86, b"\x03\x03\x02\x05": lzma.FILTER_POWERPC,
    b"\x03\x03\x04\x01": lzma.FILTER_IA64, b"\x03\x03\x05\x01": lzma.FILTER_ARM,
    b"\x03\x03\x07\x01": lzma.FILTER_ARMTHUMB, b"\x03\x03\x08\x05": lzma.FILTER_SPARC,
}  # fmt: skip
_END, _HEADER, _MAIN, _PACK, _UNPACK, _SUBSTREAMS = 0x00, 0x01, 0x04, 0x06, 0x07, 0x08
_SIZE, _CRC, _FOLDER, _UNPACK_SIZE, _NUM_STREAMS, _ENCODED = 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x17


def claims(head: bytes) -> bool:
    return head[:6] == MAGIC


@dataclass
class _Folder:
    coder: bytes | None  # None: a chain or complex coder we do not unpack
    props: bytes
    branch: int | None = None  # the lzma filter id of a BCJ filter after the coder
    outs: int = 1  # output streams of its coders: each has an unpack size
    unpack_size: int = 0
    streams: list[int] = field(default_factory=list)  # sizes of the files packed in it


@dataclass
class _Streams:
    pack_pos: int = 0
    pack_sizes: list[int] = field(default_factory=list)
    folders: list[_Folder] = field(default_factory=list)


class _Bytes:
    """A cursor over header bytes that names the offset of what breaks."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.pos, self.base = data, 0, at

    def error(self, reason: str) -> FormatError:
        return FormatError(FORMAT, self.base + self.pos, reason)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.error("header ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error("header ends early")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def number(self) -> int:
        """7z's variable-length integer: leading one bits of the first byte count the extra
        little-endian bytes."""
        first, mask, value = self.byte(), 0x80, 0
        for i in range(8):
            if not first & mask:
                return value | (first & (mask - 1)) << (8 * i)
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def count(self) -> int:
        n = self.number()
        if n > MAX_ITEMS:
            raise self.error(f"claims {n} items (cap {MAX_ITEMS})")
        return n


def streams(read_at: ReadAt, size: int) -> tuple[list[bytes], list[str]]:
    """(the files' bytes, up to the caps, in archive order; what was skipped and why)."""
    start = read_at(0, min(32, size))
    if len(start) < 32 or start[:6] != MAGIC:
        raise FormatError(FORMAT, 0, "no 7z signature header")
    offset = int.from_bytes(start[12:20], "little")
    length = int.from_bytes(start[20:28], "little")
    if length > MAX_HEADER or 32 + offset + length > size:
        raise FormatError(FORMAT, 12, "next header lies outside the file or is too large")
    header = _Bytes(read_at(32 + offset, length), 32 + offset)
    kind = header.byte()
    if kind == _ENCODED:
        packed = _read_streams(header)
        data, skipped = _unpack(read_at, size, packed)
        if not data or skipped:
            raise header.error("encoded header cannot be unpacked")
        header = _Bytes(data[0], 0)
        kind = header.byte()
    if kind != _HEADER:
        raise header.error(f"header starts with property {kind}")
    found = _main_streams(header)
    return _unpack(read_at, size, found) if found is not None else ([], [])


def _main_streams(header: _Bytes) -> _Streams | None:
    prop = header.byte()
    while prop not in (_MAIN, _END):
        if prop not in (0x02, 0x03):  # archive properties and additional streams come first
            raise header.error(f"unexpected header property {prop}")
        _skip_property(header)
        prop = header.byte()
    return _read_streams(header) if prop == _MAIN else None


def _skip_property(header: _Bytes) -> None:
    while header.byte() != _END:
        header.take(header.number())


def _read_streams(r: _Bytes) -> _Streams:
    found = _Streams()
    prop = r.byte()
    if prop == _PACK:
        found.pack_pos = r.number()
        found.pack_sizes = [0] * r.count()
        prop = r.byte()
        while prop != _END:
            if prop == _SIZE:
                found.pack_sizes = [r.number() for _ in found.pack_sizes]
            else:
                _digests(r, len(found.pack_sizes))
            prop = r.byte()
        prop = r.byte()
    if prop == _UNPACK:
        _unpack_info(r, found)
        prop = r.byte()
    if prop == _SUBSTREAMS:
        _substreams(r, found)
    return found


def _unpack_info(r: _Bytes, found: _Streams) -> None:
    if r.byte() != _FOLDER:
        raise r.error("unpack info without folders")
    folders = r.count()
    if r.byte() != 0:
        raise r.error("folders stored elsewhere are not read")
    found.folders = [_folder(r) for _ in range(folders)]
    if r.byte() != _UNPACK_SIZE:
        raise r.error("folders without unpack sizes")
    for folder in found.folders:
        # One size per coder output; the chain's last output is the folder's data.
        folder.unpack_size = [r.number() for _ in range(folder.outs)][-1]
        folder.streams = [folder.unpack_size]
    prop = r.byte()
    while prop != _END:
        _digests(r, len(found.folders))
        prop = r.byte()


def _folder(r: _Bytes) -> _Folder:
    n = r.count()
    coders: list[tuple[bytes, bytes]] = []
    ins = outs = 0
    for _ in range(n):
        flags = r.byte()
        coder_id = r.take(flags & 0x0F)
        streams = (r.count(), r.count()) if flags & 0x10 else (1, 1)
        ins, outs = ins + streams[0], outs + streams[1]
        props = r.take(r.number()) if flags & 0x20 else b""
        coders.append((coder_id, props))
    if outs > MAX_ITEMS or ins > MAX_ITEMS:
        raise r.error(f"folder claims over {MAX_ITEMS} coder streams")
    for _ in range(outs - 1):  # bind pairs: a two-coder chain binds the filter to the coder
        r.number(), r.number()
    if ins - (outs - 1) > 1:
        for _ in range(ins - (outs - 1)):
            r.number()  # which inputs are packed streams
    simple = ins == outs == n
    if simple and n == 1:
        return _Folder(*coders[0])
    if simple and n == 2 and coders[0][0] in (_LZMA, _LZMA2) and coders[1][0] in _BRANCH:
        return _Folder(*coders[0], branch=_BRANCH[coders[1][0]], outs=2)
    return _Folder(None, b"", outs=outs)


def _substreams(r: _Bytes, found: _Streams) -> None:
    counts = [1] * len(found.folders)
    prop = r.byte()
    if prop == _NUM_STREAMS:
        counts = [r.count() for _ in found.folders]
        prop = r.byte()
    if prop == _SIZE:
        for folder, n in zip(found.folders, counts, strict=True):
            sizes = [r.number() for _ in range(n - 1)] if n else []
            folder.streams = [*sizes, folder.unpack_size - sum(sizes)] if n else []
    # Digests and file names follow; nothing else here is needed.


def _digests(r: _Bytes, n: int) -> None:
    defined = n if r.byte() else sum(bin(b).count("1") for b in r.take((n + 7) // 8))
    r.take(4 * defined)


def _unpack(read_at: ReadAt, size: int, found: _Streams) -> tuple[list[bytes], list[str]]:
    out: list[bytes] = []
    skipped: list[str] = []
    at = 32 + found.pack_pos
    budget = MAX_UNPACK  # for the whole archive, not per folder
    for i, folder in enumerate(found.folders):
        packed = found.pack_sizes[i] if i < len(found.pack_sizes) else 0
        if folder.coder not in (_COPY, _LZMA, _LZMA2):
            skipped.append(f"7z folder {i}: coder chain or filter not unpacked")
        elif at + packed > size or folder.unpack_size > max(packed, 1) * MAX_RATIO:
            skipped.append(f"7z folder {i}: sizes do not fit the file (a bomb or a cut file)")
        elif budget <= 0:
            skipped.append(f"7z folder {i}: past the {MAX_UNPACK} bytes unpacked per archive")
        else:
            data = _decode(folder, read_at(at, packed), at, budget)
            budget -= len(data)
            pos = 0
            for n in folder.streams:
                out.append(data[pos : pos + n])
                pos += n
        at += packed
    return out, skipped


def _decode(folder: _Folder, packed: bytes, at: int, budget: int) -> bytes:
    want = min(folder.unpack_size, budget)
    if folder.coder == _COPY:
        return packed[:want]
    try:
        chain = [{"id": folder.branch}] if folder.branch is not None else []
        decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[*chain, _filter(folder)])
        return decoder.decompress(packed, want)
    except (lzma.LZMAError, ValueError, EOFError) as e:
        raise FormatError(FORMAT, at, f"7z folder does not unpack: {e}") from None


def _filter(folder: _Folder) -> dict[str, int]:
    props = folder.props
    if folder.coder == _LZMA2:
        if len(props) != 1 or props[0] > 40:
            raise ValueError("LZMA2 properties")
        dict_size = 0xFFFFFFFF if props[0] == 40 else (2 | props[0] & 1) << (props[0] // 2 + 11)
        return {"id": lzma.FILTER_LZMA2, "dict_size": dict_size}
    if len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise ValueError("LZMA properties")
    d = props[0]
    return {
        "id": lzma.FILTER_LZMA1,
        "lc": d % 9,
        "lp": d // 9 % 5,
        "pb": d // 45,
        "dict_size": int.from_bytes(props[1:5], "little"),
    }
