"""The dashboard's Jinja environment: autoescaped templates and the filters they format with.

`render` adds what base.html needs on every page (the rules link, the search box, who is
signed in when a login layer set it on request.state).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from collector.web.views import digest_link, host_link

_TEMPLATES = Path(__file__).parent / "templates"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    env.filters.update(
        count=human_count,
        bytes=human_bytes,
        short_sha=short_sha,
        when=when,
        text=text,
        json_text=json_text,
        host_url=host_link,
        digest_url=digest_link,
    )
    return env


def render(
    env: Environment, request: Request, name: str, *, status_code: int = 200, **context: object
) -> HTMLResponse:
    """Template `name` with `context`, plus the values every page's header uses."""
    state = request.state
    username = getattr(state, "username", None)
    user = None if username is None else {"username": username, "role": state.role}
    context.setdefault("has_rules", False)
    context.setdefault("search_q", "")
    context.setdefault("user", user)
    context.setdefault("csrf_token", getattr(state, "csrf_token", "") or "")
    html = env.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code)


def json_text(value: object) -> str:
    """Changed fields of an audit entry as compact JSON; empty for none."""
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def text(value: object) -> str:
    """A table cell: empty for missing, lists joined."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value)
    return str(value)


def human_count(value: object) -> str:
    """7241732096 -> "7.2B", the way model sizes are spoken of."""
    if isinstance(value, bool) or not isinstance(value, int):
        return text(value)
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= scale:
            return _short(value / scale) + suffix
    return str(value)


def human_bytes(value: object) -> str:
    """4368439584 -> "4.4 GB" (decimal units, as disk tools and model hubs show them)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return text(value)
    for scale, suffix in ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if abs(value) >= scale:
            return f"{_short(value / scale)} {suffix}"
    return f"{value} B"


def _short(number: float) -> str:
    return f"{number:.0f}" if abs(number) >= 100 else f"{number:.1f}".removesuffix(".0")


def short_sha(value: object) -> str:
    return value[:12] if isinstance(value, str) else ""


def when(value: object) -> str:
    """An ISO 8601 time as "2024-05-01 12:00:03 UTC"; anything else as it is."""
    if not isinstance(value, str):
        return text(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if parsed.utcoffset() is not None else "")
