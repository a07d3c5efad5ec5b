"""Creating enrollment and API tokens, for every front end: the CLI, the pages, the API.

The request is checked here (AdminError names the field), the secret minted, and one store
call keeps its digest and the audit row together. The token text is returned once and
never stored.
"""

from __future__ import annotations

import getpass
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.errors import CollectorError
from collector.store import Store
from collector.web.auth import ROLES, mint_api_token
from wire import tokens

MAX_USES = 1_000_000
MAX_HOURS = 10 * 366 * 24
MAX_GROUP = 255


class AdminError(CollectorError):
    """A token request we refuse; `field` names what to fix."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class NewToken:
    """A token just made: `text` is shown once; the rest is what its list shows."""

    text: str
    token_id: str
    expires_at: datetime | None


def cli_actor() -> str:
    """Who runs the command line, as the audit log names them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"cli:uid-{os.getuid()}" if hasattr(os, "getuid") else "cli:unknown"


def expiry(hours: float, now: datetime) -> datetime | None:
    """`hours` from now (0: never), within ten years."""
    if isinstance(hours, bool) or not math.isfinite(hours) or not 0 <= hours <= MAX_HOURS:
        raise AdminError("expires_in_hours", f"must be 0 (never) to {MAX_HOURS}")
    return None if hours == 0 else now + timedelta(hours=hours)


def group_name(group: str) -> str:
    text = group.strip()
    if not text or len(text) > MAX_GROUP:
        raise AdminError("group", f"must be 1..{MAX_GROUP} characters")
    if any(ord(c) < 32 or c == "\x7f" for c in text) or not text.isprintable():
        raise AdminError("group", "holds a character that is not printable")
    return text


def create_enrollment_token(
    store: Store,
    *,
    ca_fingerprint: str,
    group: str,
    uses: int,
    expires_in_hours: float,
    actor: str,
    now: datetime,
) -> NewToken:
    """A token that enrolls up to `uses` agents into `group` and pins this collector's CA."""
    if isinstance(uses, bool) or not 1 <= uses <= MAX_USES:
        raise AdminError("uses", f"must be 1..{MAX_USES}")
    group = group_name(group)
    expires_at = expiry(expires_in_hours, now)
    token = tokens.mint(ca_fingerprint)
    store.add_enrollment_token(
        token_id=token.token_id,
        secret_sha256=token.secret_sha256,
        group=group,
        created_at=now,
        expires_at=expires_at,
        max_uses=uses,
        actor=actor,
    )
    return NewToken(str(token), token.token_id, expires_at)


def create_api_token(
    store: Store, *, role: str, expires_in_hours: float, actor: str, now: datetime
) -> NewToken:
    """A bearer token for the API with `role`'s rights."""
    if role not in ROLES:
        raise AdminError("role", f"must be one of {', '.join(ROLES)}")
    expires_at = expiry(expires_in_hours, now)
    text, token_id, secret_sha256 = mint_api_token()
    store.add_api_token(
        token_id=token_id,
        secret_sha256=secret_sha256,
        role=role,
        created_at=now,
        expires_at=expires_at,
        actor=actor,
    )
    return NewToken(text, token_id, expires_at)
