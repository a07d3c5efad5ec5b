"""Which imports make a pickle unsafe to load: a small allow-list, a deny-list, the rest unknown.

The allow-list is what a weights-only loader needs (tensors, storages, numpy arrays, plain
containers); anything denied or unknown can run code when the file is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

from agent.detect.formats.pickle_scan import PickleScan

MAX_REASONS = 20


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    UNKNOWN = "unknown"


_TORCH_DTYPES = (
    "float16|float32|float64|bfloat16|half|float|double|int8|int16|int32|int64|uint8|uint16"
    "|uint32|uint64|bool|complex32|complex64|complex128|cfloat|cdouble|long|int|short|qint8"
    "|quint8|qint32|quint4x2|float8_e4m3fn|float8_e5m2|float8_e4m3fnuz|float8_e5m2fnuz"
)
_NUMPY = r"numpy(?:\.core|\._core)"

ALLOWED_NAMES = frozenset(
    {
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.range",
        "builtins.object",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.bool",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bytes",
        "copyreg._reconstructor",
        "_codecs.encode",
        "torch.Size",
        "torch.device",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        "numpy.core.numeric._frombuffer",
        "joblib.numpy_pickle.NumpyArrayWrapper",
    }
)
ALLOWED_PATTERNS = (
    re.compile(r"torch\.\w*Storage"),
    re.compile(rf"torch\.(?:{_TORCH_DTYPES})"),
    re.compile(r"torch\.(?:strided|sparse_coo|sparse_csr|_mkldnn|per_tensor_affine)"),
    re.compile(r"numpy\.dtypes\.\w+DType"),
    re.compile(rf"{_NUMPY}\.multiarray\._reconstruct"),
)

# A denied entry covers the name and everything under it ("os" covers "os.path.join").
DENIED = (
    "os", "posix", "nt", "subprocess", "runpy", "importlib", "socket", "shutil", "sys", "pty",
    "webbrowser", "ctypes", "code", "codeop", "commands", "pdb", "bdb", "timeit", "cProfile",
    "profile", "trace", "multiprocessing", "asyncio", "signal", "tempfile", "glob", "pathlib",
    "io", "_io", "zipimport", "pkgutil", "http", "urllib", "requests", "ftplib", "smtplib",
    "telnetlib", "xmlrpc", "dill", "cloudpickle", "marshal", "pickle", "_pickle", "shelve",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.__import__",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.globals",
    "builtins.locals", "builtins.vars", "builtins.input", "builtins.breakpoint",
    "builtins.help", "builtins.exit", "builtins.quit", "builtins.memoryview", "builtins.type",
    "types.CodeType", "types.FunctionType", "types.LambdaType", "types.MethodType",
    "types.ModuleType", "operator.attrgetter", "operator.methodcaller",
    "functools.partial", "functools.reduce", "platform.popen", "platform.os", "torch.load",
    "torch.hub", "torch.ops", "torch.jit", "torch.storage._load_from_bytes",
    "torch.serialization.load", "numpy.load", "numpy.lib.npyio", "numpy.testing",
    "numpy.f2py", "numpy.distutils", "joblib.load", "nt.system", "posix.system",
)  # fmt: skip
_DENIED_NAMES = frozenset(DENIED)


def verdict(name: str) -> Verdict:
    """Classify one import name ("module.qualname")."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        if ".".join(parts[:i]) in _DENIED_NAMES:
            return Verdict.DENIED
    if name in ALLOWED_NAMES or any(p.fullmatch(name) for p in ALLOWED_PATTERNS):
        return Verdict.ALLOWED
    return Verdict.UNKNOWN


def pickle_reasons(scan: PickleScan, *, unknown_is_unsafe: bool = True) -> tuple[str, ...]:
    """Why a scanned pickle is unsafe: denied imports first, then unknown ones, unresolved
    names and an unfinished walk. Empty when every import is allowed."""
    denied: list[str] = []
    unknown: list[str] = []
    for name in scan.imports:
        v = verdict(name)
        if v is Verdict.DENIED:
            denied.append(f"dangerous import {name}")
        elif v is Verdict.UNKNOWN and unknown_is_unsafe:
            unknown.append(f"unknown import {name}")
    unresolved = [f"unresolved import: {u}" for u in scan.unresolved]
    unfinished = [] if scan.complete else [f"pickle not fully scanned: {scan.stopped}"]
    return combine(denied, unresolved, unknown, unfinished)


def combine(*groups: Iterable[str]) -> tuple[str, ...]:
    """Reasons in order without repeats, capped at MAX_REASONS with a count of the rest."""
    seen: dict[str, None] = {}
    for group in groups:
        for reason in group:
            seen.setdefault(reason, None)
    reasons = list(seen)
    if len(reasons) <= MAX_REASONS:
        return tuple(reasons)
    rest = len(reasons) - (MAX_REASONS - 1)
    return (*reasons[: MAX_REASONS - 1], f"and {rest} more")
