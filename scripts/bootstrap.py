"""Create or reuse a virtual environment and install the project into it.

python3 scripts/bootstrap.py .venv                  # editable, with the dev extra
python3 scripts/bootstrap.py demo-data/venv --demo  # a copy with only what the demo runs
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import venv
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path, nargs="?", default=Path(".venv"))
    parser.add_argument(
        "--demo",
        action="store_true",
        help="install the agent, collector and demo extras, not editable (no dev toolchain)",
    )
    args = parser.parse_args(argv)
    python = args.venv / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(args.venv)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    project = [".[demo]"] if args.demo else ["-e", ".[dev]"]
    if args.demo:
        # setuptools stages a wheel in build/lib and never removes what left the tree there
        # (a deleted migration would ship again); start each build from nothing.
        shutil.rmtree(Path("build") / "lib", ignore_errors=True)
    subprocess.run([*pip, "install", *project], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
