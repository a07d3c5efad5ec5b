"""Every published advisory against picklescan and fickling we could find, rebuilt here from its
description: each file must come out `dangerous` (or, where the advisory is about an import
outside an allow-list, at least `suspicious`), whatever it is called.

No advisory against modelscan was found in the GitHub advisory index; its issues tracker holds
private reports only.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from p_payloads import (
    call,
    dumps,
    global_pickle,
    reduce_pickle,
    seen,
    stack_global,
    unicode,
    value,
    whole,
    zipped,
)

CMD = "__import__('os').system('id')"

# (advisory, module, qualified name, arguments): a call the advisory showed reaching code.
CALLS = [
    ("GHSA-4r9r-ch6f-vxmx", "torch.utils.bottleneck.__main__", "run_cprofile", (CMD, ())),
    ("GHSA-4whj-rm5r-c2v8", "torch.utils.bottleneck.__main__", "run_autograd_prof", (CMD, ())),
    ("GHSA-86cj-95qr-2p4f", "torch._dynamo.guards", "GuardBuilder.get", ((), CMD)),
    ("GHSA-f4x7-rfwp-v3xw", "torch.fx.experimental.symbolic_shapes",
     "ShapeEnv.evaluate_guards_expression", ((), CMD, ())),
    ("GHSA-f745-w6jp-hpxx", "torch.utils.collect_env", "run", ("id",)),
    ("GHSA-jhph-76pp-mggw", "torch.utils.collect_env", "run_and_read_all", ((), "id")),
    ("GHSA-h3qp-7fh3-f8h4", "torch.utils.data.datapipes.utils.decoder", "basichandlers",
     ("pickle", b"")),
    ("GHSA-vr7h-p6mm-wpmh", "torch.jit.unsupported_tensor_ops", "execWrapper", (CMD, (), ())),
    ("GHSA-vv6j-3g6g-2pvj", "torch.utils._config_module", "ConfigModule.load_config",
     ((), b"")),
    ("GHSA-5qwp-399c-mjwf", "trace", "Trace.run", ((), CMD)),
    ("GHSA-g344-hcph-8vgg", "trace", "Trace.runctx", ((), CMD, (), ())),
    ("GHSA-x696-vm39-cp64", "profile", "Profile.run", ((), CMD)),
    ("GHSA-6vqj-c2q5-j97w", "profile", "Profile.runctx", ((), CMD, (), ())),
    ("GHSA-7wx9-6375-f5wh", "profile", "run", (CMD,)),
    ("GHSA-49gj-c84q-6qm9", "cProfile", "run", (CMD,)),
    ("GHSA-9w88-8rmg-7g2p", "cProfile", "runctx", (CMD, (), ())),
    ("GHSA-p523-jq9w-64x9", "cProfile", "run", (CMD,)),
    ("GHSA-f54q-57x4-jg88", "lib2to3.pgen2.grammar", "Grammar.loads", ((), b"")),
    ("GHSA-p9w7-82w4-7q8m", "lib2to3.pgen2.pgen", "ParserGenerator.make_label",
     ((), (), '""+' + CMD)),
    ("GHSA-3vg9-h568-4w9m", "idlelib.debugobj", "ObjectTreeItem.SetText", ((), CMD)),
    ("GHSA-6w4w-5w54-rjvr", "idlelib.autocomplete", "AutoComplete.get_entity", ((), CMD)),
    ("GHSA-7cq8-mj8x-j263", "idlelib.autocomplete", "AutoComplete.fetch_completions",
     ((), CMD, 1)),
    ("GHSA-8r4j-24qv-fmq9", "idlelib.calltip", "Calltip.fetch_tip", ((), CMD)),
    ("GHSA-9xph-j2h6-g47v", "idlelib.calltip", "get_entity", (CMD,)),
    ("GHSA-m869-42cg-3xwr", "idlelib.run", "Executive.runcode", ((), CMD)),
    ("GHSA-j343-8v2j-ff7w", "idlelib.pyshell", "ModifiedInterpreter.runcommand", ((), CMD)),
    ("GHSA-3gf5-cxq9-w223", "idlelib.pyshell", "ModifiedInterpreter.runcode", ((), CMD)),
    ("GHSA-cj3c-v495-4xqh", "code", "InteractiveInterpreter.runcode", ((), CMD)),
    ("GHSA-fqq6-7vqf-w3fg", "doctest", "debug_script", (CMD, 1)),
    ("GHSA-xp4f-hrf8-rxw7", "ensurepip", "_run_pip", (CMD,)),
    ("GHSA-q77w-mwjj-7mqx", "asyncio.unix_events", "_UnixSubprocessTransport._start",
     ((), "id", 1, (), (), (), 0)),
    ("GHSA-f7qq-56ww-84cr", "asyncio.unix_events", "_UnixSubprocessTransport._start",
     ((), "id", 1, (), (), (), 0)),
    ("GHSA-m273-6v24-x4m4", "distutils.file_util", "write_file", ("x.env", ("evil",))),
    ("GHSA-4675-36f9-wf6r", "ctypes", "CDLL", ("libc.so.6",)),
    ("GHSA-5hvc-6wx8-mvv4", "ctypes", "CDLL", ("libc.so.6",)),
    ("GHSA-vqmv-47xg-9wpr", "pty", "spawn", (("/bin/sh", "-c", "id"),)),
    ("GHSA-r7v6-mfhq-g3m2", "pty", "spawn", ("id",)),
    ("GHSA-r8g5-cgf2-4m4m", "numpy.f2py.crackfortran", "getlincoef", (CMD, ())),
    ("GHSA-9726-w42j-3qjr", "_io", "FileIO", ("/etc/hosts", "r")),
    ("GHSA-9726-w42j-3qjr", "urllib.request", "urlopen", ("https://example.invalid",)),
    ("GHSA-m7j5-r2p5-c39r", "logging", "FileHandler", ("evil.log",)),
    ("GHSA-g38g-8gr9-h9xp", "uuid", "_get_command_stdout", ("id",)),
    ("GHSA-g38g-8gr9-h9xp", "_osx_support", "_read_output", ("id",)),
    ("GHSA-g38g-8gr9-h9xp", "_aix_support", "_read_cmd_output", ("id",)),
    ("GHSA-g38g-8gr9-h9xp", "imaplib", "IMAP4_stream", ("id",)),
    ("GHSA-g38g-8gr9-h9xp", "_pyrepl.pager", "pipe_pager", ("text", "id")),
    ("GHSA-g38g-8gr9-h9xp", "test.support.script_helper", "assert_python_ok", ("-c pass",)),
    ("GHSA-5hwf-rc88-82xm", "uuid", "_get_command_stdout", ("echo", "x")),
    ("GHSA-5hwf-rc88-82xm", "_aix_support", "_read_cmd_output", ("echo x",)),
    ("GHSA-5hwf-rc88-82xm", "_osx_support", "_find_build_tool", ("x; echo INJECTED #",)),
    ("GHSA-wfq2-52f7-7qvj", "runpy", "_run_code", (CMD, ())),
    ("GHSA-q5qq-mvfm-j35x", "runpy", "_run_code", (CMD, ())),
    ("GHSA-q5qq-mvfm-j35x", "importlib", "import_module", ("os",)),
    ("GHSA-q5qq-mvfm-j35x", "code", "InteractiveConsole.push", ((), CMD)),
    ("GHSA-q5qq-mvfm-j35x", "multiprocessing.util", "spawnv_passfds", ("/bin/sh", ("id",), ())),
    ("GHSA-h4rm-mm56-xf63", "builtins", "__import__", ("os",)),
    ("GHSA-h4rm-mm56-xf63", "builtins", "getattr", ((), "system")),
    ("GHSA-hgrh-qx5j-jfwx", "aiohttp.client", "ClientSession", ()),
    ("GHSA-hgrh-qx5j-jfwx", "http.client", "HTTPSConnection", ("example.invalid",)),
    ("GHSA-hgrh-qx5j-jfwx", "ssl", "create_connection", (("example.invalid", 443),)),
    ("GHSA-hgrh-qx5j-jfwx", "requests.api", "get", ("https://example.invalid",)),
    ("GHSA-v7x6-rv5q-mhwc", "timeit", "timeit", (CMD,)),
    ("GHSA-6ggj-6f2q-f7mx", "_interpreters", "create", ()),
    ("GHSA-6ggj-6f2q-f7mx", "_xxsubinterpreters", "create", ()),
    ("GHSA-m6fh-58r7-x697", "_posixsubprocess", "fork_exec", (("id",),)),
    ("GHSA-m6fh-58r7-x697", "site", "addpackage", ("/tmp", "evil.pth", ())),
    ("GHSA-m6fh-58r7-x697", "atexit", "register", ((),)),
    ("GHSA-wccx-j62j-r448", "_pickle", "loads", (b"\x80\x04N.",)),
    ("GHSA-fphw-536r-4p88", "pickle", "_loads", (b"\x80\x04N.",)),
]  # fmt: skip


def dangerous(data: bytes) -> None:
    info = seen(data)
    assert info is not None, "not reported"
    assert (info.risk, info.unsafe) == ("dangerous", True), info.unsafe_reasons


@pytest.mark.parametrize(
    ("advisory", "module", "name", "args"),
    CALLS,
    ids=[f"{a}-{m}.{n}" for a, m, n, _ in CALLS],
)
def test_an_advisory_call_is_dangerous_in_every_protocol(
    advisory: str, module: str, name: str, args: tuple[object, ...]
) -> None:
    dangerous(reduce_pickle(module, name, *args))  # type: ignore[arg-type]
    dangerous(global_pickle(module, name, "x"))


def test_GHSA_84r2_jw7c_4r5q_pydoc_locate_and_methodcaller() -> None:
    located = call("pydoc", "locate", "os")
    caller = call("operator", "methodcaller", "system", "id")
    dangerous(whole(caller + b"(" + located + b"tR"))


@pytest.mark.parametrize("module", ["_operator", "operator"])
def test_GHSA_955r_x9j8_7rhh_methodcaller_on_an_import(module: str) -> None:
    imported = call("builtins", "__import__", "os")
    dangerous(whole(call(module, "methodcaller", "system", "id") + b"(" + imported + b"tR"))


def test_GHSA_46h3_79wf_xr6c_attrgetter_on_an_import() -> None:
    imported = call("builtins", "__import__", "os")
    getter = call("_operator", "attrgetter", "system") + b"(" + imported + b"tR"
    dangerous(whole(getter + value(("id",)) + b"R"))


def test_GHSA_vvpj_8cmc_gx39_resolve_name_reaches_every_function() -> None:
    dangerous(whole(call("pkgutil", "resolve_name", "os:system") + value(("id",)) + b"R"))


def test_GHSA_9gvj_pp9x_gcfr_stack_global_of_protocol_0_strings() -> None:
    dangerous(b"S'os'\nS'system'\n\x93S'ls'\n\x85R.")


def test_GHSA_97f8_7cmv_76j2_legacy_torch_magic_number_made_by_eval() -> None:
    magic = reduce_pickle("builtins", "eval", "0x1950A86A20F9469CFC6C")
    rest = dumps(1001, 2) + dumps({}, 2) + dumps([], 2) + reduce_pickle("posix", "system", "id")
    info = seen(magic + rest + dumps(None, 2))

    assert info is not None and info.risk == "dangerous"
    assert {"dangerous import builtins.eval", "dangerous import posix.system"} <= set(
        info.unsafe_reasons
    )


def test_GHSA_9m3x_qqw2_h32h_code_type_and_cloudpickle() -> None:
    code_type = stack_global("types", "CodeType") + value((0, 0, 0, 0, 0, 0, b"d\x00S\x00")) + b"R"
    dangerous(whole(code_type))
    make = call("cloudpickle.cloudpickle", "_make_function", (), (), "f", (), ())
    dangerous(whole(make))


def test_GHSA_565g_hwwr_4pp3_marshal_and_function_type() -> None:
    code = call("marshal", "loads", b"\xe3")
    dangerous(whole(stack_global("types", "FunctionType") + b"(" + code + b"}tR"))


def test_GHSA_mxhj_88fx_4pcv_a_call_discarded_by_pop_is_seen() -> None:
    dangerous(b"\x80\x04(" + stack_global("smtplib", "SMTP") + unicode("127.0.0.1") + b"o0N.")


def test_GHSA_5j3x_jp52_966f_a_dotted_name_through_an_allowed_module() -> None:
    dangerous(whole(stack_global("pathlib", "os.system") + value(("id",)) + b"R"))


def test_GHSA_mhc9_48gj_9gp3_reduce_followed_by_build() -> None:
    connect = call("socket", "create_connection", ("127.0.0.1", 4444))
    dangerous(whole(connect + b"}b"))
    handler = call("signal", "signal", 2, ())
    dangerous(whole(handler + b"}b"))


def test_GHSA_cffv_grgg_g429_an_import_outside_the_allow_list_is_flagged() -> None:
    info = seen(reduce_pickle("ast", "parse", "1"))

    assert info is not None and info.risk == "suspicious" and info.unsafe is False


def test_GHSA_gx77_x2pv_48v7_extension_crc_and_submodule() -> None:
    payload = reduce_pickle("asyncio.unix_events", "_UnixSubprocessTransport._start", "id")
    dangerous(payload)  # the same bytes, whatever the file is called (.bin, .pt, .txt)
    archive = bytearray(zipped({"archive/data.pkl": payload}))
    crc_at = archive.index(b"PK\x01\x02") + 16
    archive[crc_at : crc_at + 4] = struct.pack("<I", zlib.crc32(b"other"))
    dangerous(bytes(archive))


def test_GHSA_jgw4_cr84_mqxg_a_pickle_named_bin() -> None:
    dangerous(reduce_pickle("asyncio.unix_events", "_UnixSubprocessTransport._start", "id"))
