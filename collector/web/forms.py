"""Pure: the body of an HTML form post (application/x-www-form-urlencoded) as fields."""

from __future__ import annotations

from urllib.parse import parse_qs

from collector.errors import CollectorError

MAX_FORM_BYTES = 1 << 20
_MAX_FIELDS = 10_000
FORM_TYPE = "application/x-www-form-urlencoded"

Form = dict[str, list[str]]


class BadForm(CollectorError):
    """A request body that is not an urlencoded form we will read."""


def parse_form(body: bytes, content_type: str | None) -> Form:
    """Every field's values in order; BadForm for another content type, non-ASCII bytes (a
    browser percent-encodes everything else), too many fields or too many bytes."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise BadForm(f"content type {kind[:80]!r}: expected {FORM_TYPE}")
    if len(body) > MAX_FORM_BYTES:
        raise BadForm(f"form of {len(body)} bytes: more than {MAX_FORM_BYTES}")
    try:
        text = body.decode("ascii")
        return parse_qs(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm(f"form: {exc}") from None


def field(form: Form, name: str) -> str:
    """The first value of `name`, or "" when absent."""
    values = form.get(name)
    return values[0] if values else ""
