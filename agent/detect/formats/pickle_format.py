"""Raw pickle and joblib files (also zlib- or gzip-compressed, inflated within a cap).

A pickle is a model when it imports ML libraries (scikit-learn, XGBoost, torch, numpy
arrays ...), and is reported anyway when it imports something dangerous; plain data is not.
"""

from __future__ import annotations

import re
import zlib

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.npz import dtype_name
from agent.detect.formats.pytorch import is_legacy_head
from agent.detect.formats.unsafe import Verdict, pickle_reasons, verdict
from agent.errors import FormatError

FORMAT = "pickle"
MAX_INFLATED = 256 << 20
MAX_TEXT = 256
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
_GZIP, _ZLIB = 31, 15
# joblib before 0.10 wrote "ZF", the length in hex padded with spaces, then a zlib stream.
_ZFILE_HEADER = re.compile(rb"ZF0x[0-9a-fA-F]{1,17}L? {0,20}")
_Stream = tuple[int, int]
_CHUNK = 64 << 10


def claims(head: bytes, size: int) -> bool:
    """A head that walks as a pickle, or a zlib/gzip head that inflates to one (or to too little
    to tell yet); torch's legacy files are left to the pytorch reader."""
    if is_legacy_head(head):
        return False
    if ps.looks_like_pickle(head, size):
        return True
    stream = _compression(head)
    if stream is None:
        return False
    inflated = _inflate_head(head, stream)
    return len(inflated) < 16 or ps.looks_like_pickle(inflated)


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for plain data and for compressed files that hold no pickle; FormatError for a
    broken or truncated pickle."""
    head = read_at(0, min(size, 64))
    stream = None if ps.looks_like_pickle(head, size) else _compression(head)
    if stream is None:
        scan = ps.scan(read_at, size, fmt=FORMAT, keep=_KEEP, joblib=True)
    else:
        if not _inflates_to_pickle(read_at, size, stream):
            return None
        inflated = _Inflated(read_at, size, stream)
        scan = ps.scan(inflated, MAX_INFLATED, fmt=FORMAT, keep=_KEEP, joblib=True, capped=True)
    return _model_info(scan, size)


def _inflates_to_pickle(read_at: ReadAt, size: int, stream: _Stream) -> bool:
    try:
        return ps.looks_like_pickle(_Inflated(read_at, size, stream)(0, 4096))
    except FormatError:
        return False


def _model_info(scan: ps.PickleScan, size: int) -> ModelInfo | None:
    reasons = pickle_reasons(scan)
    ml = [name for name in scan.imports if name.partition(".")[0] in ML_MODULES]
    alarming = any(verdict(n) is Verdict.DENIED for n in scan.imports)
    if not ml and not alarming and not scan.unresolved and scan.complete:
        return None
    elements = _array_elements(scan)
    known = {k: v for k, v in elements.items() if k != "OTHER"}
    return ModelInfo(
        format=FORMAT,
        architecture=_architecture(scan.root, ml),
        parameters=sum(known.values()) if known else None,
        quantization=max(sorted(known.items()), key=lambda kv: kv[1])[0] if known else None,
        tensor_count=sum(1 for c in (*scan.calls, *scan.builds) if c.callee in _KEEP),
        header_bytes=min(scan.end, size),
        producer="joblib" if ps.JOBLIB_WRAPPER in scan.imports else None,
        unsafe=bool(reasons),
        unsafe_reasons=reasons,
    )


def _compression(head: bytes) -> _Stream | None:
    """(zlib wbits, where the stream starts) for gzip, zlib and joblib's old "ZF" files."""
    if head[:3] == b"\x1f\x8b\x08":
        return _GZIP, 0
    zfile = _ZFILE_HEADER.match(head)
    start = zfile.end() if zfile else 0
    pair = head[start : start + 2]
    if len(pair) == 2 and pair[0] == 0x78 and (pair[0] << 8 | pair[1]) % 31 == 0:
        return _ZLIB, start
    return None


def _inflate_head(head: bytes, stream: _Stream) -> bytes:
    wbits, start = stream
    try:
        return zlib.decompressobj(wbits).decompress(head[start:], 4096)
    except zlib.error:
        return b""


class _Inflated:
    """A forward-only ReadAt over a zlib or gzip stream that keeps one window in memory.

    The pickle walk only moves forward, so bytes before the last offset asked for are dropped;
    the caller caps how far it asks.
    """

    def __init__(self, read_at: ReadAt, size: int, stream: _Stream) -> None:
        self.read_at, self.size = read_at, size
        wbits, self.consumed = stream
        self.inflater = zlib.decompressobj(wbits)
        self.pending = b""
        self.window, self.window_at = b"", 0

    def __call__(self, offset: int, length: int) -> bytes:
        if offset < self.window_at:
            raise FormatError(FORMAT, offset, "compressed pickle read out of order")
        self._drop(offset)
        while len(self.window) < offset - self.window_at + length:
            piece = self._more()
            if not piece:
                break
            self.window += piece
            self._drop(offset)
        start = offset - self.window_at
        return self.window[start : start + length]

    def _drop(self, offset: int) -> None:
        cut = min(offset - self.window_at, len(self.window))
        self.window, self.window_at = self.window[cut:], self.window_at + cut

    def _more(self) -> bytes:
        while not self.inflater.eof:
            if not self.pending:
                if self.consumed >= self.size:
                    return b""
                self.pending = self.read_at(self.consumed, min(_CHUNK, self.size - self.consumed))
                if not self.pending:
                    return b""
                self.consumed += len(self.pending)
            try:
                out = self.inflater.decompress(self.pending, _CHUNK)
            except zlib.error as e:
                raise FormatError(FORMAT, self.consumed, f"compressed pickle: {e}") from None
            self.pending = self.inflater.unconsumed_tail
            if out:
                return out
        return b""


def _array_elements(scan: ps.PickleScan) -> dict[str, int]:
    """dtype -> element count of the numpy arrays the pickle rebuilds, as far as it says."""
    totals: dict[str, int] = {}
    for call in scan.builds:
        shape, dtype = _shape_and_dtype(call)
        count = ps.array_elements(shape)
        if count is not None:
            name = _dtype(dtype)
            totals[name] = totals.get(name, 0) + count
    for call in scan.calls:
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
    return (dtype_name(text) if text else None) or "OTHER"


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
    return name.startswith(("numpy.", "joblib.")) or verdict(name) is Verdict.ALLOWED
