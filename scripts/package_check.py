"""Install, upgrade, remove and purge the built .deb packages in a disposable root.

dpkg runs with `--root` and chrootless maintainer scripts (they honour DPKG_ROOT), so the
check needs no container: it proves the contents, that postinst builds a working virtual
environment and the system user, that identity and spool survive an upgrade and a remove,
and that only a purge deletes them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DPKG = ["dpkg", "--force-script-chrootless", "--force-depends", "--log=/dev/null"]


class CheckFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    print(f"ok: {what}")


def dpkg(root: Path, *args: str) -> None:
    subprocess.run([*DPKG, f"--root={root}", *args], check=True)


def new_root(base: Path) -> Path:
    root = base / "root"
    for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "usr/sbin"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    return root


def installed(root: Path, package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and result.stdout.endswith(" installed")


def user_exists(root: Path, name: str) -> bool:
    passwd = root / "etc/passwd"
    return passwd.exists() and any(
        line.split(":", 1)[0] == name for line in passwd.read_text().splitlines()
    )


def check_agent(deb: Path, root: Path) -> None:
    data = root / "var/lib/shadowai-agent"
    agent = root / "opt/shadowai/agent/venv/bin/shadowai-agent"
    dpkg(root, "-i", str(deb))
    expect(installed(root, "shadowai-agent"), "agent package installed")
    expect((root / "usr/lib/systemd/system/shadowai-agent.service").is_file(), "agent unit")
    expect((root / "etc/shadowai/agent.toml").is_file(), "agent config in /etc/shadowai")
    expect(user_exists(root, "shadowai-agent"), "system user shadowai-agent created")
    expect(data.is_dir() and (data.stat().st_mode & 0o777) == 0o700, "data dir owner-only")
    version = subprocess.run([str(agent), "--version"], capture_output=True, text=True)
    expect(version.returncode == 0, f"agent runs from its venv ({version.stdout.strip()})")
    (data / "agent.key").write_bytes(b"identity kept across upgrades")
    (data / "spool.db").write_bytes(b"spool kept across upgrades")
    dpkg(root, "-i", str(deb))
    expect((data / "agent.key").exists() and (data / "spool.db").exists(), "upgrade keeps data")
    expect(agent.exists(), "upgrade rebuilds the venv")
    dpkg(root, "--remove", "shadowai-agent")
    expect(not agent.exists(), "remove deletes the venv")
    expect((data / "agent.key").exists(), "remove keeps identity and spool")
    expect((root / "etc/shadowai/agent.toml").exists(), "remove keeps the config")
    dpkg(root, "--purge", "shadowai-agent")
    expect(not data.exists(), "purge deletes identity and spool")
    expect(not (root / "etc/shadowai/agent.toml").exists(), "purge deletes the config")
    expect(not (root / "opt/shadowai").exists(), "nothing left under /opt/shadowai")


def check_collector(deb: Path, root: Path) -> None:
    data = root / "var/lib/shadowai-collector"
    collector = root / "opt/shadowai/collector/venv/bin/shadowai-collector"
    dpkg(root, "-i", str(deb))
    expect(installed(root, "shadowai-collector"), "collector package installed")
    expect(user_exists(root, "shadowai"), "system user shadowai created")
    expect((root / "etc/shadowai/rules").is_dir(), "rule pack seeded in /etc/shadowai/rules")
    validate = subprocess.run(
        [str(collector), "rules", "validate", str(root / "etc/shadowai/rules")],
        capture_output=True,
        text=True,
    )
    expect(validate.returncode == 0, "the installed collector validates the seeded pack")
    (data / "collector.db").write_bytes(b"database kept across upgrades")
    dpkg(root, "-i", str(deb))
    expect((data / "collector.db").exists(), "upgrade keeps the database")
    dpkg(root, "--purge", "shadowai-collector")
    expect(not data.exists() and not collector.exists(), "purge deletes database and venv")


CHECKS: dict[str, Callable[[Path, Path], None]] = {
    "agent": check_agent,
    "collector": check_collector,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="package_check", description=__doc__)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    try:
        for program, check in CHECKS.items():
            (deb,) = args.dist.glob(f"shadowai-{program}_*_amd64.deb")
            with tempfile.TemporaryDirectory(prefix=f"shadowai-{program}-root-") as base:
                check(deb, new_root(Path(base)))
    except (CheckFailed, subprocess.CalledProcessError, ValueError) as exc:
        print(f"package check failed: {exc}", file=sys.stderr)
        return 1
    print("package check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
