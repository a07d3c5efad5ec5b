"""Alert triage pages: the filtered list with bulk actions, and one alert with its history,
comments and forms. Viewers read; analysts change status, assign and comment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from collector.governance.load import LEVELS
from collector.paging import Listing
from collector.store import ALERT_STATUSES, Store
from collector.store.audit import AuditFilter
from collector.store.triage_values import (
    ALERT_SORTS,
    DEFAULT_ALERT_SORT,
    AlertFilter,
    BulkChange,
    TriageError,
    alert_ids,
    assignee,
    comment,
    status_change,
)
from collector.store.triage_values import alert_id as parse_alert_id
from collector.web.acting import require
from collector.web.auth import role_allows
from collector.web.links import first_link, next_link, query_string, sort_links
from collector.web.listing import listing_from

Render = Callable[..., HTMLResponse]
Field = Annotated[str, Form()]
_ACTIVITY = Listing(limit=100, sort="id", descending=True)


def add_pages(router: APIRouter, store: Store, render: Render) -> None:
    _list_pages(router, store, render)
    _alert_pages(router, store, render)


def _page_filter(request: Request) -> AlertFilter:
    """The list's filters; an unknown status or level shows every alert, as a link would."""
    params = request.query_params
    status, level = params.get("status"), params.get("level")
    return AlertFilter(
        rule=params.get("rule") or None,
        level=level if level in LEVELS else None,
        status=status if status in ALERT_STATUSES else None,
        host=params.get("host") or None,
        assignee=params.get("assignee") or None,
        unassigned=params.get("unassigned") in ("1", "true", "on"),
    )


def _list_pages(router: APIRouter, store: Store, render: Render) -> None:
    @router.get("/alerts")
    def alerts(request: Request) -> HTMLResponse:
        who = require(request, "viewer")
        listing = listing_from(request, sortable=ALERT_SORTS, default_sort=DEFAULT_ALERT_SORT)
        where = _page_filter(request)
        page = store.page_alerts(where, listing)
        return render(
            "alerts.html",
            alerts=page.items,
            filters=where,
            status=where.status,
            statuses=ALERT_STATUSES,
            levels=LEVELS,
            sort=("-" if listing.descending else "") + listing.sort,
            sorts=sort_links(request, ALERT_SORTS, listing),
            next_href=next_link(request, page),
            first_href=first_link(request),
            back=query_string(request),
            can_triage=role_allows(who.role, "analyst"),
        )

    @router.post("/alerts/bulk")
    def bulk(
        request: Request,
        do: Field = "",
        status: Field = "",
        until: Field = "",
        reason: Field = "",
        assignee_name: Annotated[str, Form(alias="assignee")] = "",
        back: Field = "",
        alert_id: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        who = require(request, "analyst")
        now = datetime.now(UTC)
        try:
            ids = alert_ids(alert_id or [])
            if do == "status":
                change = BulkChange(status=status_change(status, _until(until), reason, now=now))
            elif do == "assign":
                change = BulkChange(assign=True, assignee=assignee(assignee_name))
            else:
                raise TriageError("do", "choose set status or assign")
        except TriageError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        store.bulk_change_alerts(ids, change, by=who.actor, now=now)
        # `back` is only ever a query string after our own path: no redirect elsewhere.
        return RedirectResponse("/alerts" + ("?" + back if back else ""), status_code=303)


def _until(text: str) -> datetime | None:
    """A form's until (a datetime-local field, UTC unless it says otherwise)."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TriageError("until", f"{text[:40]!r} is not a date and time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _alert_id(text: str) -> int:
    try:
        return parse_alert_id(text)
    except TriageError:
        raise HTTPException(status_code=404, detail=f"no alert {text[:40]!r}") from None


def _show_alert(
    request: Request, store: Store, render: Render, number: int, error: str = ""
) -> HTMLResponse:
    """The alert's page; with `error`, the form that failed says why (422)."""
    who = require(request, "viewer")
    alert = store.get_alert(number)
    if alert is None:
        raise HTTPException(status_code=404, detail=f"no alert {number}")
    listing = listing_from(request, sortable=("id",), default_sort="id")
    comments = store.alert_comments(number, listing)
    activity = store.page_audit(AuditFilter(target=f"alert:{number}"), _ACTIVITY)
    response = render(
        "alert.html",
        alert=alert,
        history=store.alert_history_of(number) or [],
        comments=comments.items,
        next_href=next_link(request, comments),
        activity=activity.items,
        statuses=ALERT_STATUSES,
        error=error,
        can_triage=role_allows(who.role, "analyst"),
    )
    response.status_code = 422 if error else 200
    return response


def _alert_pages(router: APIRouter, store: Store, render: Render) -> None:
    def show(request: Request, number: int, error: str = "") -> HTMLResponse:
        return _show_alert(request, store, render, number, error)

    @router.get("/alerts/{number}")
    def alert(request: Request, number: str) -> HTMLResponse:
        return show(request, _alert_id(number))

    def done(request: Request, number: int, attempt: Callable[[str], bool | None]) -> Response:
        who = require(request, "analyst")
        try:
            found = attempt(who.actor)
        except TriageError as exc:
            return show(request, number, error=str(exc))
        if not found:
            raise HTTPException(status_code=404, detail=f"no alert {number}")
        return RedirectResponse(f"/alerts/{number}", status_code=303)

    @router.post("/alerts/{number}/status")
    def set_status(
        request: Request, number: str, status: Field = "", until: Field = "", reason: Field = ""
    ) -> Response:
        n = _alert_id(number)

        def attempt(actor: str) -> bool:
            now = datetime.now(UTC)
            change = status_change(status, _until(until), reason, now=now)
            return store.set_alert_status(
                n, change.status, by=actor, until=change.until, reason=change.reason, now=now
            )

        return done(request, n, attempt)

    @router.post("/alerts/{number}/assign")
    def assign(
        request: Request, number: str, assignee_name: Annotated[str, Form(alias="assignee")] = ""
    ) -> Response:
        n = _alert_id(number)
        return done(
            request, n, lambda actor: store.assign_alert(n, assignee(assignee_name), by=actor)
        )

    @router.post("/alerts/{number}/comments")
    def add_comment(request: Request, number: str, text: Field = "") -> Response:
        n = _alert_id(number)
        return done(
            request, n, lambda actor: store.comment_alert(n, comment(text), by=actor) is not None
        )
