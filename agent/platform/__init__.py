"""Per-OS paths and facts, chosen once here rather than with platform checks spread around."""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.detect.stores import GPT4ALL, HUGGINGFACE, JAN, LLAMA_CPP, LMSTUDIO, OLLAMA, StoreRoot


@dataclass(frozen=True)
class Platform:
    os_type: str  # ECS host.os.type: linux, macos, windows
    home: Path
    env: dict[str, str]
    system: bool = False  # running as root: the service's places, not a user's

    def config_path(self) -> Path:
        """agent.toml where administrators look for it on this OS (MDM, GPO, Ansible)."""
        override = self.env.get("SHADOWAI_AGENT_CONFIG")
        if override:
            return Path(override)
        if self.os_type == "windows":
            return self._program_data() / "shadowai" / "agent.toml"
        if self.os_type == "macos":
            return Path("/Library/Application Support/shadowai/agent.toml")
        return Path("/etc/shadowai/agent.toml")

    def _program_data(self) -> Path:
        return Path(self.env.get("PROGRAMDATA", r"C:\ProgramData"))

    def data_dir(self) -> Path:
        override = self.env.get("SHADOWAI_AGENT_DATA_DIR")
        if override:
            return Path(override)
        if self.os_type == "windows":
            return self._program_data() / "shadowai" / "agent"
        if self.system and self.os_type == "macos":
            return Path("/Library/Application Support/shadowai/agent")
        if self.system:
            return Path("/var/lib/shadowai-agent")  # the packaged unit's StateDirectory
        if self.os_type == "macos":
            return self.home / "Library" / "Application Support" / "shadowai-agent"
        base = self.env.get("XDG_STATE_HOME") or str(self.home / ".local" / "state")
        return Path(base) / "shadowai-agent"

    def store_roots(self) -> list[StoreRoot]:
        """Where each local model store keeps weights on this OS, overrides first; a path once."""
        found = [
            *self._ollama_roots(),
            *self._huggingface_roots(),
            *self._llama_cpp_roots(),
            *self._lmstudio_roots(),
            *self._gpt4all_roots(),
            *self._jan_roots(),
        ]
        first = {root.path: root for root in reversed(found)}
        return sorted(first.values(), key=found.index)

    def model_roots(self) -> list[Path]:
        """The store roots' paths alone, for callers that walk them without caring whose."""
        return list(dict.fromkeys(root.path for root in self.store_roots()))

    def model_root_paths(self) -> list[Path]:
        return self.model_roots()

    def default_excludes(self) -> list[str]:
        """fnmatch patterns (full path or name) the walker skips on this OS, each for a reason."""
        # .git: packed objects are never loadable models, and git-lfs keeps a second copy of
        # every large file under .git/lfs/objects, which would report each model twice.
        # __pycache__: bytecode only. node_modules is kept: transformers.js and onnxruntime-web
        # ship real ONNX models there.
        # Whole home folders are walked as a service: language package caches and the trash
        # hold archives and sources by the hundred thousand, never a model someone runs.
        caches = ["*/.cache/pip", "*/.npm/_cacache", "*/.cargo/registry", "*/.rustup"]
        caches += ["*/.m2/repository", "*/.gradle/caches", "*/.local/share/Trash", "*/.Trash"]
        common = [".git", "__pycache__", *caches]
        if self.os_type == "windows":
            root = self.env.get("SystemRoot") or self.env.get("SYSTEMROOT") or r"C:\Windows"
            # The OS tree and restore points hold no user models; the latter is unreadable.
            return [*common, root, "System Volume Information"]
        if self.os_type == "macos":
            # /System is the sealed OS volume; /dev is devices; /private/var/vm is swap.
            return [*common, "/dev", "/System", "/private/var/vm"]
        # Kernel and runtime pseudo file systems: reads may block or never end.
        return [*common, "/proc", "/sys", "/dev", "/run"]

    def _env(self, name: str) -> Path | None:
        """A path from the environment, with a leading ~ taken as this home (as the tools'
        own expanduser would); None when unset or empty."""
        value = self.env.get(name)
        if not value:
            return None
        if value == "~" or value.startswith(("~/", "~\\")):
            return self.home / value[2:]
        return Path(value)

    def _env_or(self, name: str, default: Path) -> Path:
        return self._env(name) or default

    def _ollama_roots(self) -> list[StoreRoot]:
        # Ollama keeps ~/.ollama/models on every OS (%USERPROFILE% on Windows); OLLAMA_MODELS
        # moves it, and the default still holds what was pulled before the move. The Linux
        # install script runs a system service as user "ollama" with home /usr/share/ollama.
        paths = [self._env("OLLAMA_MODELS"), self.home / ".ollama" / "models"]
        if self.os_type == "linux":
            paths.append(Path("/usr/share/ollama/.ollama/models"))
        return [StoreRoot(p, OLLAMA) for p in paths if p]

    def _huggingface_roots(self) -> list[StoreRoot]:
        # huggingface_hub constants (0.14 to 1.x, every OS): HF_HUB_CACHE, else the legacy
        # HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, HF_HOME defaulting to
        # $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface. transformers before v5 also
        # honoured TRANSFORMERS_CACHE, a cache of the same layout.
        cache = self._env_or("XDG_CACHE_HOME", self.home / ".cache")
        paths = [
            self._env("HF_HUB_CACHE"),
            self._env("HUGGINGFACE_HUB_CACHE"),
            self._env("TRANSFORMERS_CACHE"),
            self._env_or("HF_HOME", cache / "huggingface") / "hub",
        ]
        return [StoreRoot(p, HUGGINGFACE) for p in paths if p]

    def _local_app_data(self) -> Path:
        return self._env_or("LOCALAPPDATA", self.home / "AppData" / "Local")

    def _llama_cpp_roots(self) -> list[StoreRoot]:
        # common.cpp fs_get_cache_directory() (2024 to 2026): LLAMA_CACHE, else the OS cache
        # folder. Newer releases download -hf models into the Hugging Face cache instead.
        if self.os_type == "windows":
            base = self._local_app_data()
        elif self.os_type == "macos":
            base = self.home / "Library" / "Caches"
        else:
            base = self._env_or("XDG_CACHE_HOME", self.home / ".cache")
        return [StoreRoot(self._env_or("LLAMA_CACHE", base / "llama.cpp"), LLAMA_CPP)]

    def _lmstudio_roots(self) -> list[StoreRoot]:
        # LM Studio 0.3 uses ~/.lmstudio/models on every OS, 0.2 used ~/.cache/lm-studio/models;
        # it has no environment override (the folder is chosen in the app).
        return [
            StoreRoot(self.home / ".lmstudio" / "models", LMSTUDIO),
            StoreRoot(self.home / ".cache" / "lm-studio" / "models", LMSTUDIO),
        ]

    def _gpt4all_roots(self) -> list[StoreRoot]:
        # GPT4All 2.x/3.x default to Qt's AppLocalDataLocation for "nomic.ai/GPT4All"; a folder
        # chosen in its settings lives in GPT4All.ini, not in the environment.
        if self.os_type == "windows":
            base = self._local_app_data()
        elif self.os_type == "macos":
            base = self.home / "Library" / "Application Support"
        else:
            base = self._env_or("XDG_DATA_HOME", self.home / ".local" / "share")
        return [StoreRoot(base / "nomic.ai" / "GPT4All", GPT4ALL)]

    def _jan_roots(self) -> list[StoreRoot]:
        # Jan 0.6 (Tauri) keeps its data folder in the OS app-data folder, models under
        # llamacpp/models (and mlx/models on macOS); 0.5 kept <data>/models; 0.4 used
        # ~/jan/models on every OS. A data folder moved in Jan's settings is not followed.
        if self.os_type == "windows":
            base = self._env_or("APPDATA", self.home / "AppData" / "Roaming")
        elif self.os_type == "macos":
            base = self.home / "Library" / "Application Support"
        else:
            base = self._env_or("XDG_DATA_HOME", self.home / ".local" / "share")
        data = base / "Jan" / "data"
        paths = [data / "llamacpp" / "models", data / "mlx" / "models", data / "models"]
        return [StoreRoot(p, JAN) for p in [*paths, self.home / "jan" / "models"]]


def current() -> Platform:
    os_type = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    return Platform(os_type=os_type, home=_home(), env=dict(os.environ), system=privileged())


def privileged() -> bool:
    """Whether this process may read other users' files: root, or a service user granted
    CAP_DAC_READ_SEARCH; such a process is the service and uses the system's folders."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:  # pragma: no cover - Windows: the service runs as LocalSystem
        return False
    return geteuid() == 0 or has_capability(CAP_DAC_READ_SEARCH)


CAP_DAC_READ_SEARCH = 2  # linux/capability.h
CAP_SYS_PTRACE = 19


def has_capability(bit: int, status: str = "/proc/self/status") -> bool:
    """Whether `bit` is in this process's effective capabilities (Linux; False elsewhere)."""
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << bit))
    except (OSError, ValueError, IndexError):
        pass
    return False


def _home() -> Path:
    try:
        return Path.home()
    except RuntimeError:  # a system user without HOME or a passwd home
        return Path("/nonexistent")


def host_name() -> str:
    return socket.gethostname() or platform.node()
