"""Credentials: usernames, argon2id password hashes (memory-hard), the rules for new ones.

An unknown user costs the same as a wrong password (a dummy hash is verified), so the time
of an answer does not tell which usernames exist.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_LENGTH = 12
MAX_LENGTH = 1024  # longer is no stronger, and hashing it is work an attacker chooses


def valid_username(name: str) -> bool:
    """Letters, digits and `._@-`, 1-64 characters, starting with a letter or digit."""
    return _USERNAME.fullmatch(name) is not None


def password_problem(password: str) -> str | None:
    """Why `password` may not be set, or None if it may."""
    if not password:
        return "the password is empty"
    if len(password) < MIN_LENGTH:
        return f"the password has {len(password)} characters; it needs at least {MIN_LENGTH}"
    if len(password) > MAX_LENGTH:
        return f"the password has more than {MAX_LENGTH} characters"
    return None


@dataclass(frozen=True)
class Checked:
    ok: bool
    rehashed: str | None = None  # a new hash with the current parameters, to store


class Passwords:
    """Hash and verify with one PasswordHasher; at most `concurrent` verifications at once,
    since each takes the hasher's memory (64 MiB by default) and unauthenticated callers
    choose how many to start."""

    def __init__(self, hasher: PasswordHasher | None = None, *, concurrent: int = 2) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = threading.BoundedSemaphore(concurrent)
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def check(self, stored: str | None, password: str) -> Checked:
        """Whether `password` matches `stored` (None: no such user, still verified against a
        dummy hash); on a match with old parameters, the new hash to store."""
        target = stored if stored is not None else self._dummy_hash()
        if len(password) > MAX_LENGTH:
            password = ""  # verify anyway, so that the answer takes the usual time
        with self._slots:
            try:
                self._hasher.verify(target, password)
            except (VerificationError, InvalidHashError):
                return Checked(False)
            if stored is None or not password:
                return Checked(False)
            if self._hasher.check_needs_rehash(stored):
                return Checked(True, self._hasher.hash(password))
        return Checked(True)

    def _dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self._hasher.hash("not a password anyone has")
            return self._dummy
