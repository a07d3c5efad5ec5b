"""The ASGI guard in front of every HTTP path: Host allow-list, security headers, sessions
for dashboard pages and CSRF on every form post.

Paths are sorted once here, so that a page added later is behind a login without doing
anything: only /login, /static/ and /healthz are open; /api/ and /metrics check their own
bearer tokens and never read cookies, so cross-site requests cannot ride on a session.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import quote

from anyio import to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.store import Store
from collector.web.forms import MAX_FORM_BYTES, BadForm, field, parse_form
from collector.web.hosts import BadHost, HostAllowList, parse_host
from collector.web.session import AccessSettings, Viewer, current_viewer, parse_token, read_cookie

PUBLIC_PATHS = frozenset({"/login", "/healthz"})
PUBLIC_PREFIXES = ("/static/",)
OWN_AUTH_PATHS = frozenset({"/metrics"})  # bearer token or a scrape-only address
OWN_AUTH_PREFIXES = ("/api/",)  # bearer API tokens only
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY = timedelta(seconds=60)  # last_seen is written at most this often
CSP = (
    # Pages need nothing but our own stylesheet; anything injected cannot run or phone home.
    "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def path_kind(path: str) -> str:
    """ "public", "own-auth" (API, metrics) or "page" (needs a session)."""
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return "public"
    if path in OWN_AUTH_PATHS or path.startswith(OWN_AUTH_PREFIXES):
        return "own-auth"
    return "page"


def security_headers(path: str, settings: AccessSettings, https: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
    if not path.startswith(PUBLIC_PREFIXES):
        headers["Cache-Control"] = "no-store"  # pages show the fleet; nothing to keep on disk
    if settings.cookie_secure or https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Store,
        settings: AccessSettings,
        hosts: HostAllowList,
        now: Callable[[], datetime],
    ) -> None:
        self.app = app
        self._store = store
        self._settings = settings
        self._hosts = hosts
        self._now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none served: refuse rather than check
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        https = scope.get("scheme") == "https"
        send = _adding(send, security_headers(path, self._settings, https))
        headers = Headers(scope=scope)
        refused = self._host_refusal(headers.getlist("host"))
        if refused is not None:
            await refused(scope, receive, send)
            return
        kind = path_kind(path)
        if kind == "own-auth" or (kind == "public" and path != "/login"):
            await self.app(scope, receive, send)
            return
        if kind == "public":  # /login: its form carries the login cookie's token
            expected = read_cookie(headers.get("cookie"), self._settings.login_cookie)
            await self._checked(scope, receive, send, expected if parse_token(expected) else None)
            return
        await self._page(scope, receive, send, headers)

    async def _page(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        """A dashboard page: with a session, its viewer in request.state; else to /login."""
        cookie = read_cookie(headers.get("cookie"), self._settings.session_cookie)
        viewer = await to_thread.run_sync(self._viewer, cookie)
        if viewer is None:
            await _to_login(scope, scope["method"])(scope, receive, send)
            return
        scope.setdefault("state", {}).update(
            actor=viewer.actor,
            username=viewer.username,
            role=viewer.role,
            csrf_token=viewer.csrf_token,
        )
        reset = current_viewer.set(viewer)
        try:
            await self._checked(scope, receive, send, viewer.csrf_token)
        finally:
            current_viewer.reset(reset)

    def _host_refusal(self, values: list[str]) -> Response | None:
        if len(values) != 1:
            return PlainTextResponse("one Host header, please", status_code=400)
        try:
            host, port = parse_host(values[0])
        except BadHost as exc:
            return PlainTextResponse(str(exc), status_code=400)
        if not self._hosts.allows_parsed(host, port):
            # 421: this server does not answer for that name (DNS rebinding, a stray proxy).
            return PlainTextResponse(f"not a host this collector serves: {host}", 421)
        return None

    async def _checked(
        self, scope: Scope, receive: Receive, send: Send, expected: str | None
    ) -> None:
        """Pass safe methods on; any other needs a csrf_token form field (or X-CSRF-Token
        header) equal to `expected`, compared in constant time."""
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        body = await _read_body(receive)
        if body is None:
            await PlainTextResponse("form too large", 413)(scope, receive, send)
            return
        given = headers.get("x-csrf-token")
        if given is None:
            try:
                given = field(parse_form(body, headers.get("content-type")), "csrf_token")
            except BadForm:
                given = ""
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            refusal = "the form has expired or did not come from this dashboard; reload the page"
            await PlainTextResponse(refusal, 403)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _viewer(self, cookie: str | None) -> Viewer | None:
        """The session's viewer, or None when it is missing, ended, idle or too old."""
        digest = parse_token(cookie)
        row = None if digest is None else self._store.get_session(digest)
        if digest is None or row is None:
            return None
        now = self._now()
        idle_until = row.last_seen + self._settings.idle
        if row.disabled or now >= row.expires_at or now >= idle_until:
            self._store.end_session(digest)
            return None
        if now - row.last_seen >= TOUCH_EVERY:
            self._store.touch_session(digest, now=now)
        return Viewer(row.username, row.role, row.csrf_token, digest)


def _to_login(scope: Scope, method: str) -> Response:
    if method not in ("GET", "HEAD"):
        return RedirectResponse("/login", status_code=303)
    target = scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        target += "?" + query
    return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)


def _adding(send: Send, extra: dict[str, str]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in extra.items():
                if name not in headers:
                    headers.append(name, value)
        await send(message)

    return sending


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past the form size limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying
