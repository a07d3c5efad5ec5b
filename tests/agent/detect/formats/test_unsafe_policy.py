"""The unsafe-serialization policy: a small allow-list, a deny-list always named, the rest
unknown and unsafe too."""

from __future__ import annotations

import collections
import os
import pickle
from typing import Any

import pytest

from agent.detect.formats import pickle_scan as ps
from agent.detect.formats.unsafe import MAX_REASONS, Verdict, combine, pickle_reasons, verdict


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "name",
    [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
        "torch.BFloat16Storage",
        "torch.bfloat16",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.dtype",
        "numpy.ndarray",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "_codecs.encode",
    ],
)
def test_weights_only_plumbing_is_allowed(name: str) -> None:
    assert verdict(name) is Verdict.ALLOWED


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "os.path.join",
        "posix.system",
        "nt.system",
        "subprocess.Popen",
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.open",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.eval.__call__",
        "runpy._run_code",
        "importlib.import_module",
        "socket.create_connection",
        "shutil.rmtree",
        "sys.modules",
        "pty.spawn",
        "webbrowser.open",
        "pickle.loads",
        "marshal.loads",
        "types.CodeType",
        "types.FunctionType",
        "torch.load",
    ],
)
def test_dangerous_imports_are_denied(name: str) -> None:
    assert verdict(name) is Verdict.DENIED


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.linear_model._logistic.LogisticRegression",
        "osmosis.system",
        "builtins.evaluate",
        "torch.nn.modules.linear.Linear",
        "collections.OrderedDict.fromkeys",
    ],
)
def test_names_neither_allowed_nor_denied_are_unknown(name: str) -> None:
    assert verdict(name) is Verdict.UNKNOWN


def test_reasons_name_denied_imports_before_unknown_ones() -> None:
    data = pickle.dumps([collections.Counter(), Shell(), collections.OrderedDict()], protocol=4)

    reasons = pickle_reasons(ps.scan_bytes(data))

    system = f"{os.system.__module__}.system"
    assert reasons == (f"dangerous import {system}", "unknown import collections.Counter")


def test_unknown_imports_can_be_left_out() -> None:
    data = pickle.dumps(collections.Counter(a=1), protocol=2)

    assert pickle_reasons(ps.scan_bytes(data), unknown_is_unsafe=False) == ()


def test_allowed_imports_give_no_reasons() -> None:
    data = pickle.dumps(collections.OrderedDict(a={1, 2}), protocol=2)

    assert pickle_reasons(ps.scan_bytes(data)) == ()


def test_unresolved_names_and_unfinished_walks_are_reasons() -> None:
    computed = ps.scan_bytes(b"\x80\x04K\x01\x8c\x06system\x93)R.")
    long_walk = ps.scan_bytes(b"\x80\x04" + b"N0" * 100 + b"N.", max_opcodes=50)

    assert pickle_reasons(computed) == ("unresolved import: import of a computed name at byte 12",)
    assert pickle_reasons(long_walk) == ("pickle not fully scanned: stopped after 50 opcodes",)


def test_combine_drops_repeats_and_caps_the_count() -> None:
    many = [f"unknown import m{i}.C" for i in range(30)]

    reasons = combine(["a", "b"], ["a"], many)

    assert len(reasons) == MAX_REASONS
    assert reasons[:3] == ("a", "b", "unknown import m0.C")
    assert reasons[-1] == f"and {32 - (MAX_REASONS - 1)} more"
