"""Per-OS default locations of the collector's data and of the bundled rule pack."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def default_data_dir() -> Path:
    override = os.environ.get("SHADOWAI_COLLECTOR_DATA_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "shadowai" / "collector"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "shadowai-collector"
    if os.geteuid() == 0:
        return Path("/var/lib/shadowai-collector")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "shadowai-collector"


def default_rules_dir() -> Path:
    """The rule pack next to the source tree (development and editable installs)."""
    return Path(__file__).resolve().parent.parent / "rules"
