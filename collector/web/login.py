"""Logging in and out: `GET/POST /login`, `POST /logout`, and the checks behind them.

A failed login says only "wrong username or password", whatever went wrong; the reason
goes to the audit log. The guard has checked the login form's CSRF token before the post
reaches the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from collector.store import Store
from collector.store.people import audit
from collector.web.forms import BadForm, field, parse_form
from collector.web.passwords import Passwords, valid_username
from collector.web.session import (
    AccessSettings,
    current_viewer,
    mint_csrf_token,
    mint_token,
    parse_token,
    read_cookie,
    safe_next,
)
from collector.web.throttle import ThrottlePolicy, network, throttle_keys

Render = Callable[[str, Mapping[str, object]], str]
WRONG = "wrong username or password"
_LOGIN_FORM_SECONDS = 3600


@dataclass(frozen=True)
class Attempt:
    token: str | None  # the new session's cookie value when the login succeeded
    wait: timedelta = timedelta(0)  # above zero: refused unchecked, too many failures


@dataclass(frozen=True)
class Logins:
    store: Store
    passwords: Passwords
    settings: AccessSettings
    policy: ThrottlePolicy
    now: Callable[[], datetime]

    def attempt(self, username: str, password: str, address: str | None) -> Attempt:
        """Check throttling, then the password (always verified, even for no such user)."""
        now = self.now()
        keys = throttle_keys(username, address)
        wait = self.policy.wait(self.store.login_failures(keys), now)
        if wait > timedelta(0):
            return Attempt(None, wait)
        user = self.store.get_user(username) if valid_username(username) else None
        checked = self.passwords.check(None if user is None else user.password_hash, password)
        if user is None or not checked.ok or user.disabled:
            self.store.add_login_failure(keys, now=now, forget=self.policy.forget_after)
            why = "no such user" if user is None else "disabled" if checked.ok else "password"
            target = f"user:{username}" if valid_username(username) else "user:(not a username)"
            after = {"address": address, "reason": why}
            audit(
                self.store,
                f"address:{network(address)}",
                "auth.login_failed",
                target,
                None,
                after,
                now,
            )
            return Attempt(None)
        self.store.clear_login_failures(keys[0])  # the address's count only fades with time
        self.store.record_login(user.id, now=now, rehashed=checked.rehashed)
        self.store.purge_sessions(now=now, idle=self.settings.idle, forget=self.policy.forget_after)
        token, digest = mint_token()
        self.store.add_session(
            token_sha256=digest,
            user_id=user.id,
            csrf_token=mint_csrf_token(),
            now=now,
            expires_at=now + self.settings.absolute,
        )
        actor = f"user:{user.username}"
        audit(self.store, actor, "auth.login", actor, None, {"address": address}, now)
        return Attempt(token)

    def logout(self, token_sha256: bytes, actor: str, address: str | None) -> None:
        self.store.end_session(token_sha256)
        audit(self.store, actor, "auth.logout", actor, None, {"address": address}, self.now())

    def forget(self, cookie: str | None) -> None:
        """End the session a login replaces, if the browser still had one."""
        digest = parse_token(cookie)
        if digest is not None:
            self.store.end_session(digest)


def add_routes(router: APIRouter, logins: Logins, render: Render) -> None:
    settings = logins.settings

    def form(
        request: Request, status: int, next_: str, csrf: str, username: str = "", error: str = ""
    ) -> Response:
        context = {"next": next_, "csrf_token": csrf, "username": username, "error": error}
        response = HTMLResponse(render("login.html", context), status_code=status)
        _cookie(response, request, settings.login_cookie, csrf, _LOGIN_FORM_SECONDS)
        return response

    @router.get("/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        kept = read_cookie(request.headers.get("cookie"), settings.login_cookie)
        csrf = kept if kept is not None and parse_token(kept) else mint_token()[0]
        return form(request, 200, safe_next(next), csrf)

    @router.post("/login")
    async def login(request: Request) -> Response:
        try:
            fields = parse_form(await request.body(), request.headers.get("content-type"))
        except BadForm as exc:
            return HTMLResponse(str(exc), status_code=400)
        username, next_ = field(fields, "username"), safe_next(field(fields, "next"))
        csrf = field(fields, "csrf_token")  # the guard checked it against the cookie
        address = request.client.host if request.client else None
        attempt = await run_in_threadpool(
            logins.attempt, username, field(fields, "password"), address
        )
        if attempt.wait > timedelta(0):
            seconds = int(attempt.wait.total_seconds()) + 1
            error = f"Too many failed logins: try again in {seconds} s."
            response = form(request, 429, next_, csrf, username, error)
            response.headers["Retry-After"] = str(seconds)
            return response
        if attempt.token is None:
            return form(request, 401, next_, csrf, username, WRONG[0].upper() + WRONG[1:] + ".")
        old = read_cookie(request.headers.get("cookie"), settings.session_cookie)
        await run_in_threadpool(logins.forget, old)
        response = RedirectResponse(next_, status_code=303)
        seconds = int(settings.absolute.total_seconds())
        _cookie(response, request, settings.session_cookie, attempt.token, seconds)
        _cookie(response, request, settings.login_cookie, "", 0)
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        viewer = current_viewer.get()
        if viewer is not None:  # the guard let the post in, so there is one
            address = request.client.host if request.client else None
            logins.logout(viewer.token_sha256, viewer.actor, address)
        response = RedirectResponse("/login", status_code=303)
        _cookie(response, request, settings.session_cookie, "", 0)
        return response


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, Path=/, no Domain (so `__Host-` holds), Secure on HTTPS
    (`--cookie-secure`, or a request that came over HTTPS, as a local proxy may say)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=name.startswith("__Host-") or request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
