"""Passwords: argon2id round trips, rehash on new parameters, and a verification for every
answer, even for a user that does not exist."""

from __future__ import annotations

from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from collector.web.passwords import MAX_LENGTH, Passwords, password_problem, valid_username

CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


class CountingHasher(PasswordHasher):
    """A real hasher that counts verifications: the fake an unknown user is checked with."""

    def __init__(self) -> None:
        super().__init__(**CHEAP)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


def test_a_hash_verifies_its_password_only() -> None:
    passwords = Passwords(PasswordHasher(**CHEAP))
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.check(stored, "correct horse battery").ok
    assert not passwords.check(stored, "correct horse battery ").ok
    assert not passwords.check("not a hash", "correct horse battery").ok


def test_an_unknown_user_costs_a_verification_too() -> None:
    hasher = CountingHasher()
    passwords = Passwords(hasher)
    assert passwords.check(None, "whatever it is") == passwords.check(None, "")
    assert not passwords.check(None, "whatever it is").ok
    assert hasher.verified == 3


def test_an_overlong_password_is_refused_after_the_usual_work() -> None:
    hasher = CountingHasher()
    passwords = Passwords(hasher)
    stored = passwords.hash("x" * (MAX_LENGTH + 1))
    assert not passwords.check(stored, "x" * (MAX_LENGTH + 1)).ok
    assert hasher.verified == 1


def test_old_parameters_give_a_new_hash_on_a_match_only() -> None:
    old = Passwords(PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)).hash("p" * 12)
    current = Passwords(PasswordHasher(**CHEAP))
    checked = current.check(old, "p" * 12)
    assert checked.ok and checked.rehashed is not None
    assert checked.rehashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert current.check(checked.rehashed, "p" * 12).rehashed is None
    assert current.check(old, "q" * 12).rehashed is None


def test_the_rules_for_new_passwords_and_names() -> None:
    assert password_problem("") == "the password is empty"
    assert password_problem("x" * 11) == "the password has 11 characters; it needs at least 12"
    assert password_problem("x" * 12) is None
    assert password_problem("x" * (MAX_LENGTH + 1)) is not None
    for good in ["alice", "a", "alice.smith@example.org", "build-bot_2", "A" * 64]:
        assert valid_username(good), good
    for bad in ["", ".alice", "-a", "a b", "a\x00", "ålice", "A" * 65, "alice\n"]:
        assert not valid_username(bad), bad


@given(st.text(max_size=80))
def test_any_text_is_a_username_or_not(name: str) -> None:
    if valid_username(name):
        assert name.isascii() and name.isprintable() and 1 <= len(name) <= 64
