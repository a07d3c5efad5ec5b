"""What the web tests share: API tokens for a role, a stand-in for the login middleware,
and a fleet of alerts to triage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request, Response

from collector.store import NewAlert, Store
from collector.web.auth import mint_api_token

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEVELS = ["low", "high", "critical", "medium"]


def bearer(store: Store, role: str) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role=role, created_at=NOW)
    return {"Authorization": f"Bearer {token}"}


def token_id_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_")[1]


def signed_in(app: FastAPI, *, actor: str, role: str) -> FastAPI:
    """The app as the session middleware will leave it: each page request carries who is
    signed in and their role (a small fake of that middleware, set on the request state)."""

    @app.middleware("http")
    async def person(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.actor = actor
        request.state.role = role
        return await call_next(request)

    return app


def seed_alerts(store: Store, count: int, *, title: str = "Rule") -> None:
    store.raise_alerts(
        [
            NewAlert(
                rule_id=f"rule-{i % 3}",
                rule_title=f"{title} {i % 3}",
                level=LEVELS[i % 4],
                agent_id=f"agent-{i % 5}",
                host_name=f"laptop-{i % 5}",
                dedup_key=f"k{i}",
                event_seq=i,
                summary=f"/models/{i}.gguf",
                at=NOW - timedelta(minutes=count - i),
            )
            for i in range(count)
        ]
    )
