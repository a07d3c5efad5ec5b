"""Malicious and benign pickles built here, one evil file per bypass class: files caught, false
verdicts and scan time for our reader, picklescan and modelscan in the same run; the same
times on large model files and on torch checkpoints; then the dangerous findings our scanner
reports on this environment's site-packages (target 0).

Run: python -m bench.pickles (10-30 s; not part of `make bench`).
"""

from __future__ import annotations

import bz2
import collections
import datetime
import gzip
import io
import logging
import lzma
import os
import pickle
import site
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.sensors.files import ScanStats, observe_file, scan

if TYPE_CHECKING:
    import numpy as np

Verdict = Callable[[Path], bool]  # True: the tool calls the file dangerous
CMD = "id"


def _u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _sg(module: str, name: str) -> bytes:
    return _u(module) + _u(name) + b"\x93"


def _call(module: str, name: str, *args: str) -> bytes:
    return _sg(module, name) + b"(" + b"".join(_u(a) for a in args) + b"tR"


def _apply(*args: str) -> bytes:
    """Call what is on the stack with string arguments."""
    return b"(" + b"".join(_u(a) for a in args) + b"tR"


def _with(callee: bytes, *args: bytes) -> bytes:
    """Call what `callee` pushes with the values the other opcodes push."""
    return callee + b"(" + b"".join(args) + b"tR"


def _p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def _p0(module: str, name: str, arg: str = CMD) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'" + arg.encode() + b"'\ntR."


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


class _Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"echo {CMD}",))


def _evil_calls() -> dict[str, bytes]:
    """Direct calls and gadget chains: one per class the scanners' own test suites use."""
    memo = _u("os") + b"\x94" + _u("system") + b"\x94" + b"00h\x00h\x01\x93"
    imported = _call("builtins", "__import__", "os")
    located = _call("pydoc", "locate", "os")
    module = _call("importlib", "import_module", "os")
    popen = _sg("subprocess", "Popen") + _sg("builtins", "object")
    getattr_, partial = _sg("builtins", "getattr"), _sg("functools", "partial")
    attrgetter = _call("_operator", "attrgetter", "system")
    calls = {
        "p0-os-system": _p0("os", "system"),
        "p2-subprocess": pickle.dumps(_Shell(), 2).replace(b"posix", b"posix"),
        "p4-eval": _p4(_call("builtins", "eval", "1")),
        "p5-exec": b"\x80\x05" + _call("builtins", "exec", "1") + b".",
        "p1-socket": _p0("socket", "create_connection"),
        "p3-requests": b"\x80\x03" + _call("requests.api", "get", "http://x") + b".",
        "aiohttp": _p4(_call("aiohttp.client", "request", "GET")),
        "httplib": _p0("httplib", "HTTPConnection", "x"),
        "sys-exit": _p4(_call("sys", "exit", "1")),
        "webbrowser": _p4(_call("webbrowser", "open", "http://x")),
        "runpy": _p4(_call("runpy", "run_path", "/tmp/x.py")),
        "uuid-command": _p4(_call("uuid", "_get_command_stdout", CMD)),
        "imaplib-stream": _p4(_call("imaplib", "IMAP4_stream", CMD)),
        "pydoc-pager": _p4(_call("pydoc", "pipepager", "t", CMD)),
        "osx-support": _p4(_call("_osx_support", "_read_output", CMD)),
        "aix-support": _p4(_call("_aix_support", "_read_cmd_output", CMD)),
        "test-support": _p4(_call("test.support.script_helper", "assert_python_ok", "-c")),
        "cloudpickle": _p4(_call("cloudpickle.cloudpickle", "_make_function", "f")),
        "code-type": _p4(_call("types", "CodeType", "x")),
        "io-fileio": _p4(_call("_io", "FileIO", "/etc/hosts")),
        "urllib-request": _p4(_call("urllib.request", "urlopen", "http://x")),
        "torch-collect-env": _p4(_call("torch.utils.collect_env", "run", CMD)),
        "numpy-f2py": _p4(_call("numpy.f2py.crackfortran", "getlincoef", "1", "x")),
        "pkgutil-resolve": _p4(_call("pkgutil", "resolve_name", "os:system") + _apply(CMD)),
        "dotted-name": _p4(_sg("pathlib", "os.system") + _apply(CMD)),
        "protocol0-stack-global": b"S'os'\nS'system'\n\x93S'id'\n\x85R.",
        "computed-name": _p4(_call("builtins", "str", "os") + _u("system") + b"\x93" + _apply(CMD)),
        "memo-indirection": _p4(memo + _apply(CMD)),
        "getattr-chain": _p4(_with(getattr_, imported, _u("system")) + _apply(CMD)),
        "methodcaller-chain": _p4(_with(_call("operator", "methodcaller", "system", CMD), located)),
        "attrgetter-chain": _p4(_with(attrgetter, module) + _apply(CMD)),
        "functools-partial": _p4(_with(partial, _sg("posix", "system"), _u(CMD)) + b")R"),
        "copyreg-reconstructor": _p4(_with(_sg("copyreg", "_reconstructor"), popen, b"N")),
        "obj-then-pop": b"\x80\x04(" + _sg("smtplib", "SMTP") + _u("127.0.0.1") + b"o0N.",
    }  # fmt: skip
    return calls


def _evil_containers() -> dict[str, bytes]:
    """The same payload however it is wrapped, named or placed."""
    import numpy as np

    payload = pickle.dumps(_Shell(), 4)
    crc = bytearray(_zip({"archive/data.pkl": payload}))
    at = crc.index(b"PK\x01\x02") + 16
    crc[at : at + 4] = struct.pack("<I", zlib.crc32(b"other"))
    flagged = bytearray(_zip({"archive/data.pkl": payload}))
    at = flagged.index(b"PK\x01\x02") + 8
    flagged[at : at + 2] = struct.pack("<H", 1)
    doctored = bytearray(_zip({"archive/data.pkl": payload}))
    at = doctored.index(b"PK\x01\x02") + 46
    doctored[at : at + 16] = b"archive/safe.txt"
    magic = _p4(_call("builtins", "eval", "0x1950A86A20F9469CFC6C"))
    legacy = (
        magic + b"".join(pickle.dumps(v, 2) for v in (1001, {}, [])) + pickle.dumps(_Shell(), 2)
    )
    return {
        "gzip": gzip.compress(payload),
        "bz2": bz2.compress(payload),
        "xz": lzma.compress(payload),
        "lzma-alone": lzma.compress(payload, format=lzma.FORMAT_ALONE),
        "zlib": zlib.compress(payload),
        "zip-wrong-extension.txt": _zip({"notes.txt": payload}),
        "zip-crc-mismatch": bytes(crc),
        "zip-flag-encrypted": bytes(flagged),
        "zip-doctored-directory": bytes(doctored),
        "torch-magic-bypass.pt": legacy,
        "trailing-garbage": payload + b"\x00garbage\xff" * 20,
        "junk-prefix": b"\x00\x01junk\xff\xfe" * 10 + payload,
        "concatenated": pickle.dumps({"a": 1}, 4) + pickle.dumps([1], 4) + payload,
        "numpy-object.npy": _npy(np.array([1, _Shell()], dtype=object)),
        "npz-member.npz": _npz(np.array([_Shell()], dtype=object)),
        "torch-zip.pt": _torch_payload(payload),
    }


def _npy(array: np.ndarray[Any, Any]) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npz(array: np.ndarray[Any, Any]) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, a=array, b=np.ones(3))
    return buffer.getvalue()


def _torch_payload(payload: bytes) -> bytes:
    return _zip({"archive/data.pkl": payload, "archive/version": b"3\n"}, zipfile.ZIP_STORED)


def _benign() -> dict[str, bytes]:
    """Files real packages and users write: none of them may be called dangerous."""
    import numpy as np
    import scipy.sparse  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    rng = np.random.default_rng(0)
    x = rng.random((20, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    data = {"a": [1, 2.5, "x"], "b": (None, True, b"raw")}
    files = {f"plain-p{p}": pickle.dumps(data, p) for p in range(6)}
    files.update(
        {
            "sklearn.pkl": pickle.dumps(model, 5),
            "sklearn-gzip.pkl": gzip.compress(pickle.dumps(model, 4)),
            "numpy-matrix.pkl": pickle.dumps(np.asmatrix(np.eye(3)), 2),
            "numpy-generator.pkl": pickle.dumps(np.random.default_rng(1), 4),
            "scipy-sparse.pkl": pickle.dumps(scipy.sparse.coo_matrix(np.eye(3)), 4),
            "ordered-dict.pkl": pickle.dumps(collections.OrderedDict(a=np.ones(2)), 2),
            "datetime.pkl": pickle.dumps({"t": datetime.datetime(2026, 1, 1)}, 4),
            "numpy-object-plain.npy": _npy(np.array([1, "two", None], dtype=object)),
            "npz-object-plain.npz": _npz(np.array([(1, 2)], dtype=object)),
        }
    )
    files.update(_torch_files())
    return files


def _torch_files() -> dict[str, bytes]:
    import torch

    class Vad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sizes = [256, 512]  # a list attribute: saved through build_intlist
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x) * self.sizes[0]

    out = {}
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    for name, obj, legacy in [
        ("torch-state.pt", module.state_dict(), False),
        ("torch-whole.pt", module, False),
        ("torch-legacy.pt", module.state_dict(), True),
    ]:
        buffer = io.BytesIO()
        torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
        out[name] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Vad()), buffer)
    out["torchscript-intlist.jit"] = buffer.getvalue()
    return out


def build_large(root: Path) -> list[tuple[Path, bool]]:
    """Benign model files of real size: a scikit-learn forest (joblib) and a torch state dict."""
    import joblib  # type: ignore[import-untyped]
    import numpy as np
    import torch
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]

    rng = np.random.default_rng(0)
    x = rng.random((2000, 20))
    forest = RandomForestClassifier(n_estimators=60, random_state=0).fit(x, x[:, 0] > 0.5)
    joblib.dump(forest, root / "forest.joblib")
    with open(root / "forest.pkl", "wb") as f:
        pickle.dump(forest, f, protocol=4)
    layers = [torch.nn.Linear(1024, 1024) for _ in range(12)]
    torch.save(torch.nn.Sequential(*layers).state_dict(), root / "weights.pt")
    return [(root / n, False) for n in ("forest.joblib", "forest.pkl", "weights.pt")]


def build_checkpoints(root: Path) -> list[tuple[Path, bool]]:
    """Checkpoints as people save them, tens of MB each, written by torch itself: state dicts
    of a transformer encoder and a convolutional network (as zips and in the legacy format),
    a whole pickled module and a TorchScript archive."""
    import torch

    torch.manual_seed(0)

    def encoder(width: int, layers: int) -> torch.nn.TransformerEncoder:
        layer = torch.nn.TransformerEncoderLayer(width, 4, width * 4, batch_first=True)
        return torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    convnet, channels = [], 3
    for width in (64, 128, 256, 512):
        for _ in range(2):
            conv = torch.nn.Conv2d(channels, width, 3, padding=1, bias=False)
            convnet += [conv, torch.nn.BatchNorm2d(width), torch.nn.ReLU()]
            channels = width
    cnn = torch.nn.Sequential(*convnet, torch.nn.Flatten(), torch.nn.Linear(channels, 1000))
    torch.save(encoder(384, 6).state_dict(), root / "encoder.pt")
    torch.save(encoder(256, 4), root / "encoder-module.pt")
    torch.save(cnn.state_dict(), root / "convnet.pth")
    torch.save(cnn.state_dict(), root / "convnet-legacy.pth", _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(cnn), root / "convnet.torchscript")
    names = ("encoder.pt", "encoder-module.pt", "convnet.pth", "convnet-legacy.pth")
    return [(root / n, False) for n in (*names, "convnet.torchscript")]


def build(root: Path) -> list[tuple[Path, bool]]:
    """Write every case under root; (path, is evil). Evil files get neutral names."""
    cases: list[tuple[Path, bool]] = []
    for group, evil in ((_evil_calls(), True), (_evil_containers(), True), (_benign(), False)):
        for name, data in group.items():
            path = root / (name if "." in name else f"{name}.pkl")
            path.write_bytes(data)
            cases.append((path, evil))
    return cases


def ours(path: Path) -> bool:
    obs = observe_file(path, path.stat(), hash_contents=False)
    return obs is not None and obs.info.risk == "dangerous"


def picklescan_tool() -> Verdict | None:
    try:
        from picklescan.scanner import scan_file_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    return lambda path: bool(scan_file_path(str(path)).issues_count)


def modelscan_tool() -> Verdict | None:
    try:
        from modelscan.modelscan import ModelScan  # type: ignore[import-untyped]
    except ImportError:
        return None
    logging.getLogger("modelscan").setLevel(logging.CRITICAL)

    def verdict(path: Path) -> bool:
        result: dict[str, Any] = ModelScan().scan(path)
        return bool(result.get("issues"))

    return verdict


def measure(
    tools: dict[str, Verdict], cases: list[tuple[Path, bool]], rounds: int
) -> dict[str, tuple[int, int, float]]:
    """Per tool: (evil files caught, benign files called dangerous, best seconds for the whole
    folder). The tools take turns round after round, so that a busy spell on the shared
    machine, or the BLAS threads the corpus builder leaves spinning, falls on all alike."""
    best = dict.fromkeys(tools, float("inf"))
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        for name, tool in tools.items():
            start = time.perf_counter()
            verdicts = [(_safe(tool, path), evil) for path, evil in cases]
            best[name] = min(best[name], time.perf_counter() - start)
            caught = sum(1 for v, evil in verdicts if v and evil)
            counts[name] = caught, sum(1 for v, evil in verdicts if v and not evil)
    return {name: (*counts[name], best[name]) for name in tools}


def _safe(tool: Verdict, path: Path) -> bool:
    try:
        return tool(path)
    except Exception:  # a scanner that crashes on a file has not caught it
        return False


def site_packages() -> Iterator[str]:
    """Counts by format and risk on this environment's site-packages (the venv's and the base
    interpreter's), and the files called dangerous there."""
    roots = sorted({Path(p).resolve() for p in site.getsitepackages() if Path(p).is_dir()})
    counts: Counter[tuple[str, str | None]] = Counter()
    dangerous = []
    stats = ScanStats()
    start = time.perf_counter()
    for obs in scan(roots, hash_contents=False, stats=stats):
        counts[(obs.info.format, obs.info.risk)] += 1
        if obs.info.risk == "dangerous":
            dangerous.append(f"{obs.path}: {', '.join(obs.info.unsafe_reasons[:3])}")
    seconds = time.perf_counter() - start
    yield f"site-packages {', '.join(map(str, roots))}: {stats.files_seen} files in {seconds:.1f} s"
    for (fmt, risk), n in sorted(counts.items(), key=str):
        yield f"  {fmt:12} risk={risk}: {n}"
    yield f"  dangerous findings on benign package data: {len(dangerous)} (target 0)"
    yield from (f"    {line}" for line in dangerous[:20])


def run() -> Iterator[str]:
    # The corpus is built in this process with scikit-learn and torch, whose BLAS and OpenMP
    # threads would otherwise keep spinning on the machine's cores while the scanners are
    # timed; set before anything loads numpy (modelscan does).
    for threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(threads, "1")
    found = {"shadowai": ours, "picklescan": picklescan_tool(), "modelscan": modelscan_tool()}
    tools = {name: tool for name, tool in found.items() if tool is not None}
    yield from (f"{name}: not installed, skipped" for name, t in found.items() if t is None)
    with tempfile.TemporaryDirectory() as tmp:
        cases = build(Path(tmp))
        evil = sum(1 for _, e in cases if e)
        yield f"pickles: {evil} evil files (one per bypass class), {len(cases) - evil} benign"
        results = measure(tools, cases, rounds=7)
        for name, (caught, false, seconds) in results.items():
            yield (
                f"  {name:10} caught {caught}/{evil}, benign called dangerous {false}, "
                f"{seconds * 1000:.1f} ms for the folder"
            )
        missed = [p.name for p, e in cases if e and not _safe(ours, p)]
        wrong = [p.name for p, e in cases if not e and _safe(ours, p)]
        yield f"    shadowai missed: {missed or 'none'}; false: {wrong or 'none'}"
        yield from _ratios(results, "", "(target > 1 against picklescan)")
        for label, builder in (
            ("large benign model files", build_large),
            ("torch checkpoints", build_checkpoints),
        ):
            folder = Path(tmp) / builder.__name__
            folder.mkdir()
            yield from _benign_folder(label, builder(folder), tools)
    yield from site_packages()


def _benign_folder(
    label: str, cases: list[tuple[Path, bool]], tools: dict[str, Verdict]
) -> Iterator[str]:
    """Scan time and false verdicts of each tool on a folder of benign model files."""
    megabytes = sum(p.stat().st_size for p, _ in cases) / 1e6
    yield f"{label}: {len(cases)}, {megabytes:.0f} MB"
    results = measure(tools, cases, rounds=3)
    for name, (_, false, seconds) in results.items():
        yield f"  {name:10} {seconds * 1000:.1f} ms, benign called dangerous {false}"
    yield from _ratios(results, f" on {label}", "")


def _ratios(results: dict[str, tuple[int, int, float]], where: str, note: str) -> Iterator[str]:
    ours_seconds = results["shadowai"][2]
    for name in ("picklescan", "modelscan"):
        if name in results:
            ratio = results[name][2] / ours_seconds
            yield f"  time ratio {name}/shadowai{where}: {ratio:.2f}x {note}".rstrip()


def main() -> int:
    for line in run():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
