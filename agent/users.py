"""Every local user's model stores and home folder, from the OS's user list rather than
$HOME, plus the stores a system service keeps.

Which accounts are people is decided here from plain records (pure); the sources that read
the OS (pwd, the Windows profile list) are thin and injected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.detect.stores import LMSTUDIO, OLLAMA, StoreRoot
from agent.platform import Platform
from agent.platform import privileged as platform_privileged

# Login shells that mean "no one logs in here": service accounts, not people.
_NO_LOGIN = ("nologin", "/bin/false", "/usr/bin/false", "/dev/null")
# Windows well-known SIDs of the system, local service and network service profiles.
_WINDOWS_SERVICE_SIDS = ("S-1-5-18", "S-1-5-19", "S-1-5-20")


@dataclass(frozen=True)
class Account:
    """One entry of the OS's user list, as read (pwd entry or Windows profile)."""

    name: str
    uid: int  # -1 on Windows
    home: str
    shell: str = ""
    sid: str = ""


@dataclass(frozen=True)
class LocalUser:
    name: str
    home: Path


def people(accounts: Iterable[Account], os_type: str) -> list[LocalUser]:
    """The accounts whose home may hold a person's models, each home once."""
    found: dict[str, LocalUser] = {}
    for account in accounts:
        if not account.home or not _is_person(account, os_type):
            continue
        home = os.path.normpath(account.home)
        if home in ("/", "/nonexistent", "/var/empty", "/dev/null"):
            continue
        found.setdefault(home, LocalUser(account.name, Path(home)))
    return list(found.values())


def _is_person(account: Account, os_type: str) -> bool:
    if os_type == "windows":
        return account.sid.startswith("S-1-5-21-")  # domain or local accounts, not services
    if account.shell.endswith(_NO_LOGIN):
        return False
    if os_type == "macos":
        # Darwin's daemons are below 500 and named with a leading underscore.
        return account.uid == 0 or (account.uid >= 500 and not account.name.startswith("_"))
    return account.uid == 0 or 1000 <= account.uid < 65534


def store_roots(plat: Platform, users: Sequence[LocalUser]) -> list[StoreRoot]:
    """The stores of this OS for each user, then the system-wide ones; a path once."""
    found = list(plat.store_roots())  # the service's own, with its environment overrides
    for user in users:
        theirs = Platform(os_type=plat.os_type, home=user.home, env={})
        found += theirs.store_roots()
    found += system_stores(plat)
    first: dict[Path, StoreRoot] = {}
    for root in found:
        first.setdefault(root.path, root)
    return list(first.values())


def system_stores(plat: Platform) -> list[StoreRoot]:
    """Stores a system service or an installer keeps outside any home."""
    if plat.os_type == "linux":
        return [
            StoreRoot(Path("/usr/share/ollama/.ollama/models"), OLLAMA),
            StoreRoot(Path("/var/lib/ollama/.ollama/models"), OLLAMA),
            StoreRoot(Path("/var/lib/ollama/models"), OLLAMA),
        ]
    if plat.os_type == "windows":
        program_data = Path(plat.env.get("PROGRAMDATA", r"C:\ProgramData"))
        return [StoreRoot(program_data / "Ollama" / "models", OLLAMA)]
    return [StoreRoot(Path("/Applications/LM Studio.app/Contents/Resources/models"), LMSTUDIO)]


def system_roots(plat: Platform) -> list[Path]:
    """Folders outside homes where applications ship models (walked, no store layout)."""
    if plat.os_type == "windows":
        return [
            Path(plat.env.get("ProgramFiles", r"C:\Program Files")),
            Path(plat.env.get("ProgramFiles(x86)", r"C:\Program Files (x86)")),
        ]
    if plat.os_type == "macos":
        return [Path("/Applications")]  # application bundles that ship models
    return []  # packages and services keep models in the stores above


def service_roots(
    plat: Platform, users: Sequence[LocalUser], *, homes: bool, exists: Callable[[Path], bool]
) -> list[Path]:
    """What a service covers: each user's home (or only their stores), the system stores,
    and the application folders; those that exist, a path once."""
    roots: list[Path] = [r.path for r in store_roots(plat, users)]
    if homes:
        roots = [*(u.home for u in users), *roots, *system_roots(plat)]
    return [p for p in dict.fromkeys(roots) if exists(p) and not _inside_any(p, roots)]


def _inside_any(path: Path, roots: Sequence[Path]) -> bool:
    """Whether another root already covers `path` (a store inside a home)."""
    return any(other != path and other in path.parents for other in roots)


def posix_accounts() -> list[Account]:
    import pwd

    return [Account(e.pw_name, e.pw_uid, e.pw_dir, e.pw_shell) for e in pwd.getpwall()]


def windows_accounts() -> list[Account]:  # pragma: no cover - needs Windows
    """The profile list (HKLM\\...\\ProfileList): every profile that has been loaded here."""
    return [
        Account(os.path.basename(home), -1, os.path.expandvars(home), sid=sid)
        for sid, home in _profile_list()
    ]


if sys.platform == "win32":  # pragma: no cover - needs Windows

    def _profile_list() -> list[tuple[str, str]]:
        import winreg

        key = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList"
        found = []
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as profiles:
            for i in range(winreg.QueryInfoKey(profiles)[0]):
                sid = winreg.EnumKey(profiles, i)
                with winreg.OpenKey(profiles, sid) as profile:
                    home, _ = winreg.QueryValueEx(profile, "ProfileImagePath")
                found.append((sid, str(home)))
        return found

else:

    def _profile_list() -> list[tuple[str, str]]:
        raise OSError("the profile list is a Windows registry key")


def accounts_for(os_type: str) -> Callable[[], list[Account]]:
    return windows_accounts if os_type == "windows" else posix_accounts


def local_users(
    plat: Platform, source: Callable[[], list[Account]] | None = None
) -> list[LocalUser]:
    """This machine's people, from its user list (the source is injected in tests)."""
    read = source or accounts_for(plat.os_type)
    try:
        return people(read(), plat.os_type)
    except (OSError, KeyError, ImportError):
        return []  # no user list: the service still covers its own and the system stores


def privileged() -> bool:
    """Whether this process may read other users' files: then every user is covered;
    otherwise only this user's own stores (Windows: a service runs as LocalSystem)."""
    if os.name == "nt":  # pragma: no cover - needs Windows
        return True
    return platform_privileged()
