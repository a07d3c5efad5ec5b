"""Create or reuse the virtual environment and install the project with its dev extra."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else ".venv")
    python = target / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(target)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", ".[dev]"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
