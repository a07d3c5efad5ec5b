"""Read PyTorch checkpoints without loading them: torch.save zips, TorchScript archives and the
legacy pickle format. Tensors are counted from the storages their pickle references, and the
pickle's imports are checked against the unsafe-serialization policy.
"""

from __future__ import annotations

import re

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.unsafe import (
    DANGEROUS,
    SUSPICIOUS,
    Judgement,
    judge,
    judge_pickle,
    merge,
)
from agent.detect.formats.ziparchive import (
    Archive,
    Member,
    archive_kind,
    first_name,
    is_zip_head,
    member_reader,
    read_archive,
    read_member,
)
from agent.detect.formats.zipwalk import every_member, with_local_members
from agent.errors import FormatError

FORMAT = "pytorch"
TORCHSCRIPT = "torchscript"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_PICKLE = 64 << 20  # a deflated data.pkl is inflated up to this
TORCHSCRIPT_REASON = "torchscript code"
MAX_CODE = 1 << 20  # bytes of one code member that are searched
MAX_CODE_MEMBERS = 256
# Builtins TorchScript code can call that reach the file system (the code is Python syntax).
_DANGEROUS_CODE = re.compile(rb"\b(?:torch|ops\.aten)\.(from_file|save|load)\s*\(")
_HEAD_OPCODES = 64
_LEGACY_MAGIC_BYTES = b"\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")
_ZIP_ROOT_FILES = frozenset(
    {"data.pkl", "version", ".format_version", "byteorder", "constants.pkl", "bytecode.pkl"}
)
_ZIP_ROOT_DIRS = ("data/", "code/", ".data/", "extra/", "constants/")
_CONTAINERS = frozenset({"collections.OrderedDict", "builtins.dict"})

# torch.<Name>Storage -> the short dtype names used for ai.model.quantization.
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16",
    "DoubleStorage": "F64", "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16",
    "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL", "UInt16Storage": "U16",
    "UInt32Storage": "U32", "UInt64Storage": "U64", "ComplexFloatStorage": "C64",
    "ComplexDoubleStorage": "C128", "QInt8Storage": "QINT8", "QUInt8Storage": "QUINT8",
    "QInt32Storage": "QINT32", "QUInt4x2Storage": "QUINT4X2", "QUInt2x4Storage": "QUINT2X4",
    "Float8_e4m3fnStorage": "F8_E4M3", "Float8_e5m2Storage": "F8_E5M2",
    "UntypedStorage": "U8",
}  # fmt: skip


def claims(head: bytes, size: int) -> bool:
    """A legacy checkpoint's magic-number pickle, or a zip whose first member sits in a torch
    archive's root folder (data.pkl, data/N, version, code/ ...)."""
    return is_legacy_head(head) or _torch_zip_head(head)


def is_legacy_head(head: bytes) -> bool:
    """True when the file starts with the pickled magic number of torch's legacy format."""
    return head[:1] == b"\x80" and _LEGACY_MAGIC_BYTES in head[:32]


def _torch_zip_head(head: bytes) -> bool:
    name = first_name(head)
    if name is None:
        return False
    root, sep, rest = name.partition("/")
    return bool(root and sep) and (rest in _ZIP_ROOT_FILES or rest.startswith(_ZIP_ROOT_DIRS))


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None when the file is a zip of another kind; FormatError when a torch file is broken
    or cut short (a split download's first part has no zip end record)."""
    head = read_at(0, min(size, 64))
    if is_legacy_head(head):
        return _parse_legacy(read_at, size)
    try:
        archive = read_archive(read_at, size, FORMAT)
    except FormatError:
        # A doctored central directory: torch's reader may still load the local headers.
        if not _torch_zip_head(head):
            raise
        archive = every_member(read_at, size, FORMAT)[0]
    if archive is None:
        if is_zip_head(head) and _torch_zip_head(head):
            raise FormatError(FORMAT, size, "no zip end record: the archive is cut short")
        return None
    kind = archive_kind(archive, head)
    if kind not in (FORMAT, TORCHSCRIPT):
        return None
    return _parse_zip(read_at, size, archive, kind)


def _parse_zip(read_at: ReadAt, size: int, archive: Archive, kind: str) -> ModelInfo:
    data = next(m for m in archive.members if m.name.partition("/")[2] == "data.pkl")
    root = data.name[: -len("data.pkl")]
    reader, n = member_reader(read_at, archive, data, limit=MAX_PICKLE, fmt=kind)
    scan = ps.scan(reader, n, fmt=kind)
    # Every other pickle a loader might read: duplicate names, members only the local headers
    # list, constants.pkl; each is judged by its own imports.
    others = [
        _member_judgement(read_at, archive, m, kind) for m in _pickles(read_at, size, archive, data)
    ]
    if kind == FORMAT:
        return _info(FORMAT, scan, merge(judge_pickle(scan), *others), n)
    # TorchScript resolves its pickles' names against the code in the archive, not Python
    # modules, so unknown names are no reason; the code itself makes it suspicious, and
    # dangerous where it reaches the file system.
    script = judge(SUSPICIOUS, [TORCHSCRIPT_REASON])
    code = _code_judgement(read_at, archive, root)
    found = merge(script, code, judge_pickle(scan, unknown_is_suspicious=False), *others)
    return _info(TORCHSCRIPT, scan, found, n)


def _code_judgement(read_at: ReadAt, archive: Archive, root: str) -> Judgement:
    """TorchScript code that calls a builtin reaching outside the model (torch.from_file
    reads any file, torch.save writes one): dangerous."""
    calls: dict[str, None] = {}
    code = [m for m in archive.members if m.name.startswith(f"{root}code/")]
    for member in code[:MAX_CODE_MEMBERS]:
        if not member.name.endswith(".py"):
            continue
        try:
            text = read_member(read_at, archive, member, limit=MAX_CODE, fmt=TORCHSCRIPT)
        except FormatError:
            continue
        for match in _DANGEROUS_CODE.finditer(text):
            calls.setdefault(f"torchscript code calls torch.{match.group(1).decode()}", None)
    return judge(DANGEROUS, list(calls)) if calls else Judgement(None)


def _pickles(read_at: ReadAt, size: int, archive: Archive, data: Member) -> list[Member]:
    """The .pkl members besides `data`, from the central directory (or the view that stands
    for it) and the local headers."""
    try:
        members = with_local_members(read_at, size, archive, FORMAT)[1]
    except FormatError:
        return []
    return [m for m in members if m.name.endswith(".pkl") and m.header_offset != data.header_offset]


def _member_judgement(read_at: ReadAt, archive: Archive, member: Member, kind: str) -> Judgement:
    try:
        reader, n = member_reader(read_at, archive, member, limit=MAX_PICKLE, fmt=kind)
        scan = ps.scan(reader, n, fmt=kind)
    except FormatError:
        return Judgement(None)
    # TorchScript's own pickles (constants.pkl) name archive classes, not Python modules.
    return judge_pickle(scan, unknown_is_suspicious=kind == FORMAT)


def _parse_legacy(read_at: ReadAt, size: int) -> ModelInfo:
    """The legacy layout: pickles of the magic number, the protocol version and system info,
    then the object itself; raw storage bytes follow and are not read."""
    magic = ps.scan(read_at, size, 0, fmt=FORMAT, max_opcodes=_HEAD_OPCODES)
    if magic.root != LEGACY_MAGIC:
        raise FormatError(FORMAT, 0, "first pickle is not the legacy magic number")
    version = ps.scan(read_at, size, magic.end, fmt=FORMAT, max_opcodes=_HEAD_OPCODES)
    if version.root != LEGACY_PROTOCOL:
        raise FormatError(FORMAT, magic.end, "legacy protocol version is not 1001")
    sys_info = ps.scan(read_at, size, version.end, fmt=FORMAT, max_opcodes=1024)
    if not sys_info.complete:
        raise FormatError(FORMAT, version.end, "system info pickle is too long")
    scan = ps.scan(read_at, size, sys_info.end, fmt=FORMAT)
    # torch.load unpickles every one of them, the header pickles included.
    found = merge(*(judge_pickle(s) for s in (magic, version, sys_info, scan)))
    return _info(FORMAT, scan, found, scan.end)


def _info(fmt: str, scan: ps.PickleScan, found: Judgement, read: int) -> ModelInfo:
    elements = storage_elements(scan.persistent_ids)
    return ModelInfo(
        format=fmt,
        architecture=_root_class(scan.root),
        parameters=sum(elements.values()) if scan.persistent_ids else None,
        quantization=_dominant(elements),
        tensor_count=len(scan.persistent_ids),
        header_bytes=read,
        producer="torch",
        unsafe=found.unsafe,
        unsafe_reasons=found.reasons,
        risk=found.risk,
    )


def storage_elements(persistent_ids: tuple[ps.Value, ...]) -> dict[str, int]:
    """dtype -> element count over distinct storages: torch pickles each storage as
    ('storage', torch.<Type>Storage, key, location, numel[, view])."""
    seen: dict[str, tuple[str, int]] = {}
    for pid in persistent_ids:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            continue
        kind, key, numel = pid[1], pid[2], pid[4]
        if isinstance(kind, ps.Global) and isinstance(key, str) and type(numel) is int:
            dtype = STORAGE_DTYPES.get(kind.name.rpartition(".")[2], "OTHER")
            seen.setdefault(key, (dtype, max(numel, 0)))
    totals: dict[str, int] = {}
    for dtype, numel in seen.values():
        totals[dtype] = totals.get(dtype, 0) + numel
    return totals


def _dominant(elements: dict[str, int]) -> str | None:
    if not elements:
        return None
    return max(sorted(elements.items()), key=lambda kv: kv[1])[0]


def _root_class(root: ps.Value) -> str | None:
    """The class of a pickled whole module (or TorchScript module); None for a state dict."""
    if isinstance(root, ps.Obj) and root.callee is not None and root.callee not in _CONTAINERS:
        return root.callee.rpartition(".")[2][:256] or None
    return None
