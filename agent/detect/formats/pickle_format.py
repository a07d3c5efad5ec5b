"""Raw pickle and joblib files, as loaders open them: compressed (gzip, zlib, bz2, xz, lzma),
zipped or in a 7z archive, several pickles in a row, a pickle after junk or followed by junk.

A pickle is reported when it imports ML libraries (scikit-learn, XGBoost, torch, numpy arrays
...) or anything dangerous or suspicious, whatever the file is called; plain data is not.
"""

from __future__ import annotations

import functools
import re

from agent.detect.formats import ModelInfo, ReadAt, sevenzip
from agent.detect.formats import pickle_memo as memo
from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.npz import dtype_name
from agent.detect.formats.pickle_streams import Inflated, compression, inflate_head
from agent.detect.formats.pytorch import is_legacy_head
from agent.detect.formats.unsafe import (
    DANGEROUS,
    SUSPICIOUS,
    Verdict,
    judge_pickle,
    merge,
    verdict,
)
from agent.detect.formats.ziparchive import is_zip_head, member_reader, read_member
from agent.detect.formats.zipwalk import every_member
from agent.errors import FormatError

FORMAT = "pickle"
MAX_INFLATED = 256 << 20
MAX_TEXT = 256
MAX_PICKLES = 16  # pickles walked one after another in one file
MAX_ZIP_MEMBERS = 1024
MAX_MEMBER_PICKLE = 64 << 20
MAX_CANDIDATES = 16
# Opcodes a claim walks: enough to tell a pickle from text or other binary, while parse does
# the one full walk.
_CLAIM_OPCODES = 16
ML_MODULES = frozenset(
    {
        "sklearn", "xgboost", "lightgbm", "catboost", "torch", "tensorflow", "keras",
        "transformers", "numpy", "joblib", "statsmodels", "gensim", "spacy", "fastai",
        "sentence_transformers", "onnx", "diffusers", "peft", "timm", "tokenizers", "prophet",
        "pycaret", "h2o", "mlflow", "skops", "imblearn", "category_encoders", "pmdarima",
    }
)  # fmt: skip
_ARRAY_BUILDS = frozenset(
    {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
)
_FROMBUFFER = frozenset({"numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer"})
_KEEP = _ARRAY_BUILDS | _FROMBUFFER | {ps.JOBLIB_WRAPPER}
_FLAGGED = (DANGEROUS, SUSPICIOUS)
_PROTO = re.compile(rb"\x80(?:[\x00-\x05]|\Z)")
_ESTIMATORS = ("sklearn.", "torch.nn.modules.", "xgboost.", "lightgbm.", "catboost.")
# Where a pickle may start after junk: a protocol 2-5 header anywhere in the head (found with
# bytes.find, at memchr speed, since every unidentified file passes here), or a protocol 0/1
# GLOBAL right after a binary byte in the first bytes (text before it would make every word
# list a candidate, and a regular expression over whole heads costs too much).
_PROTOCOLS = b"\x02\x03\x04\x05"  # the byte after PROTO (0x80)
_GLOBAL_AFTER_JUNK = re.compile(
    rb"[\x00-\x09\x0b-\x1f\x7f-\xff]c[A-Za-z_][\w.]{0,200}\n[A-Za-z_][\w.]{0,200}\n"
)
_JUNK_SEARCHED = 256


def claims(head: bytes, size: int) -> bool:
    """A head that walks as a pickle, a compressed head that inflates to one (or to too little
    to tell yet), a zip, or a head with a pickle after junk; torch's legacy files are left
    to the pytorch reader."""
    if is_legacy_head(head):
        return False
    if memo.walked(head) is not None or _claim_walk(head, size, _CLAIM_OPCODES):
        return True
    memo.keep_refusal(head, size)
    if is_zip_head(head):
        return True
    if sevenzip.claims(head):
        return True
    stream = compression(head)
    if stream is not None:
        inflated, ended = inflate_head(head, stream)
        if ended:
            memo.keep_stream(head, inflated)
        if len(inflated) < 16 or _claim_walk(inflated, None, walk_on=ended):
            return True
        return bool(_embedded(inflated))
    return _embedded(head) is not None


def _claim_walk(
    head: bytes, size: int | None, max_opcodes: int = 256, at: int = 0, *, walk_on: bool = False
) -> bool:
    """looks_like_pickle of bytes that sit at `at` in their file, keeping a whole walk for
    parse; `walk_on` as walk_head's, and so when the head is the whole file."""
    whole = walk_on or (size is not None and len(head) >= size)
    looks, scan = ps.walk_head(head, size, max_opcodes, _KEEP, at, walk_on=whole)
    if scan is not None:
        memo.keep_walk(head, at, scan)
    return looks


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for plain data, for compressed files and zips that hold no pickle, and for junk
    that only looked like one; FormatError for a broken or truncated pickle."""
    head = read_at(0, min(size, 4096))
    if is_zip_head(head):
        return _zip_info(read_at, size)
    if sevenzip.claims(head):
        return _sevenzip_info(read_at, size)
    first = memo.walked(head)
    if first is not None or _PROTO.match(head) or _looks_like_pickle(head, size):
        return _model_info(_walk(read_at, size, 0, capped=False, first=first), size)
    stream = compression(head)
    if stream is not None:
        # One inflater: the check reads its first window, which the walk then starts from;
        # none when the claim inflated the whole stream.
        whole = memo.inflated(head)
        inflated = Inflated(read_at, size, stream) if whole is None else _over(whole)
        try:
            window = inflated(0, 4096)
        except FormatError:
            return None  # it only looked compressed
        first = memo.walked(window)
        if first is not None or ps.looks_like_pickle(window, max_opcodes=_CLAIM_OPCODES):
            return _model_info(_walk(inflated, MAX_INFLATED, 0, capped=True, first=first), size)
        # A compressed tar (or other wrapper) with a pickle after its header.
        return _after_junk(inflated, MAX_INFLATED, window, capped=True)
    return _after_junk(read_at, size, head, capped=False)


def _looks_like_pickle(head: bytes, size: int) -> bool:
    """The claim's check, unless the claim made it for this head already."""
    return not memo.refused(head, size) and ps.looks_like_pickle(head, size, _CLAIM_OPCODES)


def _after_junk(read_at: ReadAt, size: int, head: bytes, *, capped: bool) -> ModelInfo | None:
    """A pickle found after junk in the head counts only when it is flagged: junk that happens
    to walk as a pickle of plain data is no model."""
    start = _embedded(head)
    if start is None:
        return None
    first = memo.walked(head[start:], start)
    try:
        scans = _walk(read_at, size, start, capped=capped, first=first)
    except FormatError:
        return None
    info = _model_info(scans, size)
    return info if info is not None and info.risk in _FLAGGED else None


def _walk(
    read_at: ReadAt, size: int, start: int, *, capped: bool, first: ps.PickleScan | None = None
) -> list[ps.PickleScan]:
    """Every pickle from `start` on: loaders such as torch's legacy format read several in a
    row, so whatever follows a STOP and walks as a pickle is read too; junk ends the walk.
    `first`: the first pickle's scan, when a claim walk has read all of it already."""
    if first is None:
        first = ps.scan(read_at, size, start, fmt=FORMAT, keep=_KEEP, joblib=True, capped=capped)
    scans = [first]
    while len(scans) < MAX_PICKLES and scans[-1].complete:
        at = scans[-1].end
        if at >= size:
            break
        ahead = read_at(at, min(4096, size - at))
        whole = not capped and at + len(ahead) >= size
        looks, walked = ps.walk_head(
            ahead, len(ahead) if whole else None, keep=_KEEP, at=at, walk_on=whole
        )
        if not looks:
            break
        if walked is not None:  # the check read all of this pickle: no second walk
            scans.append(walked)
            continue
        try:
            scans.append(
                ps.scan(read_at, size, at, fmt=FORMAT, keep=_KEEP, joblib=True, capped=capped)
            )
        except FormatError:
            break
    return scans


def _embedded(head: bytes) -> int | None:
    """Where a pickle starts after junk in the head, if anywhere."""
    for at in _candidates(head):
        rest = head[at:]
        if memo.walked(rest, at) is not None or _claim_walk(rest, None, at=at):
            return at
    return None


def _candidates(head: bytes) -> list[int]:
    found: list[int] = []
    at = head.find(0x80, 1)
    while 0 <= at < len(head) - 1 and len(found) < MAX_CANDIDATES:
        if head[at + 1] in _PROTOCOLS:
            found.append(at)
        at = head.find(0x80, at + 1)
    match = _GLOBAL_AFTER_JUNK.search(head, 0, _JUNK_SEARCHED)
    if match is not None:
        found.append(match.start() + 1)
    return sorted(found)[:MAX_CANDIDATES]


def _zip_info(read_at: ReadAt, size: int) -> ModelInfo | None:
    """The pickles among a zip's members, read as PyTorch's and zipfile's readers would: local
    headers and central directory both, flag bits and CRCs not trusted to hide anything."""
    try:
        view, members = every_member(read_at, size, FORMAT)
    except FormatError:
        return None
    scans: list[ps.PickleScan] = []
    for member in members[:MAX_ZIP_MEMBERS]:
        try:
            peek = read_member(read_at, view, member, limit=64, fmt=FORMAT)
            if not ps.looks_like_pickle(peek, member.file_size):
                continue
            reader, n = member_reader(read_at, view, member, limit=MAX_MEMBER_PICKLE, fmt=FORMAT)
            scans += _walk(reader, n, 0, capped=n < member.file_size)
        except FormatError:
            continue
    return _model_info(scans, size) if scans else None


def _sevenzip_info(read_at: ReadAt, size: int) -> ModelInfo | None:
    """The pickles among a 7z archive's files (folders our reader cannot unpack are left out:
    an archive is reported for what it shows, not for what it hides)."""
    files, _skipped = sevenzip.streams(read_at, size)
    scans: list[ps.PickleScan] = []
    for data in files[:MAX_ZIP_MEMBERS]:
        if not ps.looks_like_pickle(data[:4096], len(data)):
            continue
        try:
            scans += _walk(_over(data), len(data), 0, capped=False)
        except FormatError:
            continue
    return _model_info(scans, size) if scans else None


def _over(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def _model_info(scans: list[ps.PickleScan], size: int) -> ModelInfo | None:
    if len(scans) == 1:  # most files: no lists to merge
        judgement, imports = judge_pickle(scans[0]), scans[0].imports
    else:
        judgement = merge(*[judge_pickle(s) for s in scans])
        imports = tuple(n for s in scans for n in s.imports)
    ml = [name for name in imports if name.partition(".")[0] in ML_MODULES]
    if not ml and judgement.risk not in _FLAGGED:
        return None
    arrays = [c for s in scans for c in (*s.calls, *s.builds) if c.callee in _KEEP]
    elements = _array_elements(scans) if arrays else {}
    elements.pop("OTHER", None)
    architecture = None
    for s in scans:
        architecture = _architecture(s.root, ml)
        if architecture:
            break
    return ModelInfo(
        format=FORMAT,
        architecture=architecture,
        parameters=sum(elements.values()) if elements else None,
        quantization=max(sorted(elements.items()), key=lambda kv: kv[1])[0] if elements else None,
        tensor_count=len(arrays),
        header_bytes=min(scans[-1].end, size),
        producer="joblib" if ps.JOBLIB_WRAPPER in imports else None,
        unsafe=judgement.unsafe,
        unsafe_reasons=judgement.reasons,
        risk=judgement.risk,
    )


def _array_elements(scans: list[ps.PickleScan]) -> dict[str, int]:
    """dtype -> element count of the numpy arrays the pickles rebuild, as far as they say."""
    totals: dict[str, int] = {}
    builds = [call for scan in scans for call in scan.builds]
    calls = [call for scan in scans for call in scan.calls]
    for call in builds:
        shape, dtype = _shape_and_dtype(call)
        count = ps.array_elements(shape)
        if count is not None:
            name = _dtype(dtype)
            totals[name] = totals.get(name, 0) + count
    for call in calls:
        args = call.value
        if call.callee in _FROMBUFFER and isinstance(args, tuple) and len(args) >= 3:
            count = ps.array_elements(args[2])
            if count is not None:
                totals[_dtype(args[1])] = totals.get(_dtype(args[1]), 0) + count
    return totals


def _shape_and_dtype(call: ps.Call) -> tuple[ps.Value, ps.Value]:
    state = call.value
    if call.callee == ps.JOBLIB_WRAPPER and isinstance(state, ps.PickleDict):
        return state.get("shape"), state.get("dtype")
    # ndarray.__setstate__ takes (version, shape, dtype, is_fortran, data).
    if call.callee in _ARRAY_BUILDS and isinstance(state, tuple) and len(state) == 5:
        return state[1], state[2]
    return None, None


def _dtype(value: ps.Value) -> str:
    text = ps.dtype_string(value)
    return _dtype_label(text) if text else "OTHER"


@functools.lru_cache(maxsize=256)  # asked once per array, about a handful of type strings
def _dtype_label(text: str) -> str:
    return dtype_name(text) or "OTHER"


def _architecture(root: ps.Value, ml: list[str]) -> str | None:
    """The root object's class when it is an ML class, else the first ML class imported."""
    if isinstance(root, ps.Obj) and root.callee in ml and not _plumbing(root.callee):
        return root.callee.rpartition(".")[2][:MAX_TEXT]
    for name in ml:
        last = name.rpartition(".")[2]
        if last[:1].isupper() and not _plumbing(name):
            return last[:MAX_TEXT]
    return None


def _plumbing(name: str) -> bool:
    """Arrays, tensors and containers say nothing about what the model is."""
    if name.startswith(_ESTIMATORS):
        return False
    return name.startswith(("numpy.", "joblib.")) or verdict(name) is Verdict.ALLOWED
