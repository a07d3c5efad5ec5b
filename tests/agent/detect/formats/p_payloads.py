"""Pickle bytes written opcode by opcode, the way published bypasses build them: no payload here
is ever loaded, and the modules named need not exist on this machine."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

from agent.detect.formats import ModelInfo, identify

Arg = str | bytes | int | tuple["Arg", ...]


def unicode(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def value(arg: Arg) -> bytes:
    """Protocol 4 opcodes pushing a plain argument."""
    if isinstance(arg, str):
        return unicode(arg)
    if isinstance(arg, bytes):
        return (
            b"C" + bytes([len(arg)]) + arg
            if len(arg) < 256
            else b"B" + struct.pack("<I", len(arg)) + arg
        )
    if isinstance(arg, int):
        return b"J" + struct.pack("<i", arg)
    return b"(" + b"".join(value(a) for a in arg) + b"t"


def stack_global(module: str, name: str) -> bytes:
    return unicode(module) + unicode(name) + b"\x93"


def call(module: str, name: str, *args: Arg) -> bytes:
    """Opcodes calling module.name(*args) (STACK_GLOBAL, a tuple, REDUCE), result on the stack."""
    return stack_global(module, name) + value(tuple(args)) + b"R"


def whole(body: bytes) -> bytes:
    """A protocol 4 pickle around opcodes that leave one value on the stack."""
    return b"\x80\x04" + body + b"."


def reduce_pickle(module: str, name: str, *args: Arg) -> bytes:
    return whole(call(module, name, *args))


def global_pickle(module: str, name: str, *args: str) -> bytes:
    """Protocol 0: GLOBAL, MARK, STRING lines, TUPLE, REDUCE."""
    strings = b"".join(b"S'" + a.encode() + b"'\n" for a in args)
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + strings + b"tR."


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def dumps(value_: object, protocol: int = 4) -> bytes:
    return pickle.dumps(value_, protocol=protocol)


def seen(data: bytes) -> ModelInfo | None:
    """What the scanner reports for a file of these bytes, whatever its name."""
    return identify(lambda o, n: data[o : o + n], len(data))
