"""Regenerate wire/v1 from proto/ (generate) or fail when the committed code is stale (check)."""

from __future__ import annotations

import filecmp
import os
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("wire") / "v1"


def generate(out: Path) -> None:
    # protoc finds the mypy plugins on PATH; they live beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "generate"
    if mode == "generate":
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE
        stale = [
            p.name
            for p in sorted(fresh.iterdir())
            if not (ROOT / PACKAGE / p.name).exists()
            or not filecmp.cmp(p, ROOT / PACKAGE / p.name, shallow=False)
        ]
    if stale:
        print(f"stale generated code in {PACKAGE}: {', '.join(stale)}; run `make proto`")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
