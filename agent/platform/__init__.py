"""Per-OS paths and facts, chosen once here rather than with platform checks spread around."""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Platform:
    os_type: str  # ECS host.os.type: linux, macos, windows
    home: Path
    env: dict[str, str]

    def data_dir(self) -> Path:
        override = self.env.get("SHADOWAI_AGENT_DATA_DIR")
        if override:
            return Path(override)
        if self.os_type == "windows":
            return Path(self.env.get("PROGRAMDATA", r"C:\ProgramData")) / "shadowai" / "agent"
        if self.os_type == "macos":
            return self.home / "Library" / "Application Support" / "shadowai-agent"
        base = self.env.get("XDG_STATE_HOME") or str(self.home / ".local" / "state")
        return Path(base) / "shadowai-agent"

    def model_roots(self) -> list[Path]:
        """Where local model stores keep weights by default, honouring their overrides."""
        env, home = self.env, self.home
        hf_home = Path(env.get("HF_HOME") or home / ".cache" / "huggingface")
        roots = [
            Path(env.get("OLLAMA_MODELS") or home / ".ollama" / "models"),
            Path(env.get("HF_HUB_CACHE") or hf_home / "hub"),
            Path(env.get("LLAMA_CACHE") or home / ".cache" / "llama.cpp"),
            home / ".lmstudio" / "models",
            home / ".cache" / "lm-studio" / "models",
        ]
        if self.os_type == "linux":
            roots.append(Path("/usr/share/ollama/.ollama/models"))
            roots.append(home / ".local" / "share" / "nomic.ai" / "GPT4All")
        if self.os_type == "macos":
            roots.append(home / "Library" / "Application Support" / "nomic.ai" / "GPT4All")
        if self.os_type == "windows":
            local = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
            roots.append(local / "nomic.ai" / "GPT4All")
        return list(dict.fromkeys(roots))


def current() -> Platform:
    os_type = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    return Platform(os_type=os_type, home=Path.home(), env=dict(os.environ))


def host_name() -> str:
    return socket.gethostname() or platform.node()
