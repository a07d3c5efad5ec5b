"""The pickle import policy: allow-list and deny-list kept as data with reasons and sources,
the longer entry winning; risk levels dangerous / suspicious / none."""

from __future__ import annotations

import collections
import os
import pickle
from typing import Any

import pytest

from agent.detect.formats import pickle_scan as ps
from agent.detect.formats import risk_rules
from agent.detect.formats.unsafe import (
    MAX_REASONS,
    Verdict,
    combine,
    judge_pickle,
    pickle_reasons,
    verdict,
)


class Unvetted:
    pass


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
        "numpy.matrixlib.defmatrix.matrix",
        "numpy.random._pickle.__generator_ctor",
        "scipy.sparse._coo.coo_matrix",
        "sklearn.linear_model._logistic.LogisticRegression",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "torch.jit._pickle.build_intlist",
        "torch.jit._pickle.build_tensorlist",
        "torch.nn.modules.linear.Linear",
        "copyreg.__newobj__",
        "datetime.datetime",
    ],
)
def test_benign_package_plumbing_is_allowed(name: str) -> None:
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
        "torch.jit.load",
        "torch.jit.unsupported_tensor_ops.execWrapper",
        "numpy.testing._private.utils.runstring",
        "numpy.f2py.crackfortran.getlincoef",
        "numpy.__builtins__",
        "sklearn.utils._testing.assert_run_python_script_without_output",
        "uuid._get_command_stdout",
        "io.FileIO",
        "_io.FileIO",
        "operator.attrgetter",
        "_operator.methodcaller",
        "cloudpickle.cloudpickle._make_function",
        "test.support.script_helper.assert_python_ok",
    ],
)
def test_dangerous_imports_are_denied(name: str) -> None:
    assert verdict(name) is Verdict.DENIED


@pytest.mark.parametrize(
    "name",
    [
        "__main__.MyModel",
        "osmosis.system",
        "builtins.evaluate",
        "io.BytesIO",
        "functools.partial",
        "numpy.add",
    ],
)
def test_names_neither_allowed_nor_denied_are_unknown(name: str) -> None:
    assert verdict(name) is Verdict.UNKNOWN


def test_reasons_name_denied_imports_before_unknown_ones() -> None:
    data = pickle.dumps([Unvetted(), Shell(), collections.OrderedDict()], protocol=4)

    reasons = pickle_reasons(ps.scan_bytes(data))

    system = f"{os.system.__module__}.system"
    assert reasons == (f"dangerous import {system}", f"unknown import {__name__}.Unvetted")


def test_unknown_imports_can_be_left_out() -> None:
    data = pickle.dumps(Unvetted(), protocol=2)

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


def test_an_attribute_path_is_judged_by_where_it_leads() -> None:
    assert verdict("pathlib.os.system", "os.system") is Verdict.DENIED
    assert verdict("trace.Trace.run", "Trace.run") is Verdict.DENIED
    assert verdict("collections.OrderedDict.fromkeys", "OrderedDict.fromkeys") is Verdict.ALLOWED


@pytest.mark.parametrize(
    ("data", "risk"),
    [
        (pickle.dumps(Shell(), protocol=2), "dangerous"),
        (pickle.dumps(Unvetted(), protocol=2), "suspicious"),
        (pickle.dumps(collections.OrderedDict(a=[1.5]), protocol=2), "none"),
        (b"\x80\x04K\x01\x8c\x06system\x93)R.", "dangerous"),
        (b"\x80\x02\x82\x01)R.", "suspicious"),
    ],
    ids=["denied", "unknown", "allowed", "computed-name", "extension-code"],
)
def test_each_scan_gets_one_risk_level(data: bytes, risk: str) -> None:
    judgement = judge_pickle(ps.scan_bytes(data))

    assert judgement.risk == risk
    assert judgement.unsafe is (risk == "dangerous")


@pytest.mark.parametrize("table", [risk_rules.DENY, risk_rules.ALLOW, risk_rules.ALLOW_PATTERNS])
def test_every_list_entry_says_why_and_where_from(table: tuple[tuple[str, str, str], ...]) -> None:
    names = [name for name, _, _ in table]

    assert len(names) == len(set(names))
    assert all(reason and source for _, reason, source in table)


@pytest.mark.parametrize("name", ["test.MyModel", "code.Encoder", "profile.UserProfile"])
def test_user_modules_named_like_stdlib_modules_are_only_unknown(name: str) -> None:
    assert verdict(name) is Verdict.UNKNOWN
