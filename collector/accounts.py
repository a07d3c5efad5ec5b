"""`shadowai-collector users ...` (create, list, disable, enable, set-password) and the
dashboard access options of `serve`.

Passwords come from standard input (a prompt, twice, on a terminal) so that they stay out
of argv and shell history; every change is written to the audit log as the `cli` actor.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TextIO

from collector.errors import CollectorError
from collector.server import is_loopback, split_address
from collector.store import Store
from collector.store.people import audit
from collector.web.auth import ROLES
from collector.web.hosts import parse_host
from collector.web.passwords import Passwords, password_problem, valid_username
from collector.web.session import AccessSettings

ACTOR = "cli"


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    users = sub.add_parser("users", parents=[common], help="dashboard users")
    users_sub = users.add_subparsers(dest="action", required=True)
    create = users_sub.add_parser(
        "create", parents=[common], help="add a user; the password is read from stdin"
    )
    create.add_argument("--username", required=True)
    create.add_argument("--role", choices=list(ROLES), required=True)
    users_sub.add_parser("list", parents=[common], help="users as JSON lines (no hashes)")
    for action, what in [
        ("disable", "refuse the user's logins and end its sessions"),
        ("enable", "let a disabled user log in again"),
        ("set-password", "replace the password (read from stdin); ends its sessions"),
    ]:
        users_sub.add_parser(action, parents=[common], help=what).add_argument("username")


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="another Host the dashboard answers to (a proxy's name); repeatable",
    )
    serve.add_argument(
        "--cookie-secure",
        action="store_true",
        help="browsers reach the dashboard over HTTPS (a TLS proxy): Secure, __Host- cookies",
    )
    serve.add_argument(
        "--session-idle", type=float, default=30.0, help="minutes without a request (default 30)"
    )
    serve.add_argument(
        "--session-max", type=float, default=12.0, help="hours a session lasts at most (12)"
    )
    serve.add_argument(
        "--unsafe-plaintext-dashboard",
        action="store_true",
        help="serve logins over plain HTTP on a non-loopback --http (passwords in clear)",
    )


def access_settings(args: argparse.Namespace) -> AccessSettings:
    """Session settings from the serve options; a non-loopback plain-HTTP dashboard would send
    passwords and session cookies in clear, so it needs a TLS proxy or the unsafe switch."""
    http_host, _ = split_address(args.http)
    if not (is_loopback(http_host) or args.cookie_secure or args.unsafe_plaintext_dashboard):
        raise CollectorError(
            f"--http {args.http}: passwords would cross the network in clear; put a TLS proxy "
            "in front and pass --cookie-secure, or pass --unsafe-plaintext-dashboard"
        )
    if args.session_idle <= 0 or args.session_max <= 0:
        raise CollectorError("--session-idle and --session-max must be above 0")
    for name in args.allowed_host:
        parse_host(name)  # BadHost names the bad one before anything starts
    return AccessSettings(
        idle=timedelta(minutes=args.session_idle),
        absolute=timedelta(hours=args.session_max),
        cookie_secure=args.cookie_secure,
    )


def run(args: argparse.Namespace, store: Store, stdin: TextIO, out: Callable[[str], None]) -> int:
    now = datetime.now(UTC)
    if args.action == "list":
        for item in store.list_users():
            out(json.dumps(item))
        return 0
    if args.action == "create":
        return _create(store, args.username, args.role, stdin, now)
    if args.action == "set-password":
        password = read_password(stdin)
        if not store.set_password_hash(args.username, Passwords().hash(password)):
            raise CollectorError(f"no user {args.username!r}")
        audit(store, ACTOR, "user.set_password", f"user:{args.username}", None, None, now)
        return 0
    disabled = args.action == "disable"
    before = store.set_user_disabled(args.username, disabled)
    if before is None:
        raise CollectorError(f"no user {args.username!r}")
    action = "user.disable" if disabled else "user.enable"
    target = f"user:{args.username}"
    audit(store, ACTOR, action, target, {"disabled": before}, {"disabled": disabled}, now)
    return 0


def _create(store: Store, username: str, role: str, stdin: TextIO, now: datetime) -> int:
    """Check the name and role before asking for a password."""
    if not valid_username(username):
        raise CollectorError(
            f"username {username[:80]!r}: use 1-64 letters, digits and ._@-, "
            "starting with a letter or digit"
        )
    if role not in ROLES:
        raise CollectorError(f"role {role!r}: one of {', '.join(ROLES)}")
    password_hash = Passwords().hash(read_password(stdin))
    store.add_user(username=username, role=role, password_hash=password_hash, now=now)
    after = {"username": username, "role": role}
    audit(store, ACTOR, "user.create", f"user:{username}", None, after, now)
    return 0


def read_password(stdin: TextIO) -> str:
    """The new password: typed twice on a terminal, else all of stdin less one line end."""
    if stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CollectorError("the two passwords differ")
    else:
        password = stdin.read()
        password = password.removesuffix("\n").removesuffix("\r")
    problem = password_problem(password)
    if problem is not None:
        raise CollectorError(f"{problem} (the password is read from standard input)")
    return password
