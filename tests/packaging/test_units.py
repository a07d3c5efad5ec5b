"""The service definitions: hardened systemd units, sysusers, launchd and Windows service files.

macOS and Windows packages cannot be built here; their files are parsed and cross-checked
against the agent's real command line instead.
"""

from __future__ import annotations

import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
REPO = PACKAGING.parent
UNITS = PACKAGING / "systemd"
# Exposure ceilings of issue 12, as `systemd-analyze security --offline=true` scores them.
EXPOSURE_LIMITS = {"shadowai-agent.service": 4.0, "shadowai-collector.service": 2.5}
PROGRAMS = {"shadowai-agent": "agent.cli", "shadowai-collector": "collector.cli"}


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def options_accepted(argv: list[str]) -> None:
    """Every --option of a service's command line is one its real CLI documents."""
    program = Path(argv[0]).name
    subcommand = argv[1]
    help_text = subprocess.run(
        [sys.executable, "-m", PROGRAMS[program], subcommand, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (arg for arg in argv[2:] if arg.startswith("--")):
        assert re.search(rf"{re.escape(option)}\b", help_text), f"{program} {subcommand}: {option}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
@pytest.mark.parametrize("unit", sorted(EXPOSURE_LIMITS))
def test_units_stay_under_their_exposure_limit(unit: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNITS / unit)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= EXPOSURE_LIMITS[unit]


def test_agent_unit_grants_only_the_two_capabilities_it_needs() -> None:
    settings = unit_settings("shadowai-agent.service")
    wanted = {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}
    assert set(settings["CapabilityBoundingSet"][0].split()) == wanted
    assert set(settings["AmbientCapabilities"][0].split()) == wanted
    assert settings["User"] == ["shadowai-agent"]
    assert settings["ProtectHome"] == ["read-only"]


def test_collector_unit_runs_without_capabilities() -> None:
    settings = unit_settings("shadowai-collector.service")
    assert settings["CapabilityBoundingSet"] == [""]
    assert settings["User"] == ["shadowai"]


@pytest.mark.parametrize("unit", sorted(EXPOSURE_LIMITS))
def test_unit_command_lines_use_real_options(unit: str) -> None:
    options_accepted(shlex.split(unit_settings(unit)["ExecStart"][0]))


@pytest.mark.parametrize("unit", sorted(EXPOSURE_LIMITS))
def test_each_unit_user_is_created_by_sysusers(unit: str) -> None:
    user = unit_settings(unit)["User"][0]
    conf = (PACKAGING / "sysusers" / f"{unit.removesuffix('.service')}.conf").read_text()
    entries = [shlex.split(line) for line in conf.splitlines() if line and line[0] != "#"]
    assert [entry[:2] for entry in entries] == [["u", user]]
    assert entries[0][-1] == "/usr/sbin/nologin"


@pytest.mark.parametrize("program", ["agent", "collector"])
def test_deb_definitions_name_files_that_exist(program: str) -> None:
    definition = yaml.safe_load((PACKAGING / "deb" / f"{program}.yaml").read_text())
    for entry in definition["contents"]:
        if not entry["src"].startswith("build/"):  # the wheelhouse, made by scripts/package.py
            assert (REPO / entry["src"]).exists(), entry["src"]
    for script in definition["scripts"].values():
        path = REPO / script
        assert path.stat().st_mode & 0o111, f"{script} is not executable"
        assert path.read_text().startswith("#!/bin/sh\n")


def test_launchd_plist_runs_the_agent_daemon() -> None:
    with (PACKAGING / "launchd" / "com.shadowai.agent.plist").open("rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "com.shadowai.agent"
    assert plist["LowPriorityIO"] is True and plist["ProcessType"] == "Background"
    options_accepted(plist["ProgramArguments"])


def test_windows_service_definitions_are_well_formed_and_agree() -> None:
    wix = "{http://wixtoolset.org/schemas/v4/wxs}"
    package = ET.parse(PACKAGING / "windows" / "shadowai-agent.wxs").getroot()
    install = package.find(f".//{wix}ServiceInstall")
    control = package.find(f".//{wix}ServiceControl")
    service = ET.parse(PACKAGING / "windows" / "shadowai-agent.xml").getroot()
    assert install is not None and control is not None
    assert install.get("Name") == control.get("Name") == service.findtext("id")
    assert package.find(f".//{wix}MajorUpgrade") is not None
    arguments = shlex.split(service.findtext("arguments") or "", posix=False)
    assert arguments[:3] == ["-m", "agent.cli", "run"]
    options_accepted(["shadowai-agent", *arguments[2:]])


def test_packaged_config_passes_config_check_with_every_example_enabled(tmp_path: Path) -> None:
    text = (PACKAGING / "etc" / "agent.toml").read_text()
    enabled = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    assert enabled != text, "the file shows its keys as commented examples"
    for name, body in (("as-shipped.toml", text), ("enabled.toml", enabled)):
        path = tmp_path / name
        path.write_text(body)
        check = subprocess.run(
            [sys.executable, "-m", "agent.cli", "config", "check", "--config", str(path)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
