"""Alert triage API: the filtered, sorted, paged alert listing (JSON or CSV), one alert with
its history and comments, and the analyst's changes, one by one or in bulk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from collector.store import Store
from collector.store.triage_values import (
    ALERT_SORTS,
    DEFAULT_ALERT_SORT,
    MAX_BULK,
    MAX_ID,
    BulkChange,
    TriageError,
    alert_filter,
    alert_ids,
    assignee,
    comment,
    status_change,
)
from collector.web.acting import ApiActor
from collector.web.listing import listing_from, respond

Item = dict[str, object]
Require = Callable[[Store, str], Callable[..., str]]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="an alert id, 1..2^63-1")]
AlertStatus = Literal["open", "acknowledged", "resolved", "suppressed"]
Level = Literal["informational", "low", "medium", "high", "critical"]
COLUMNS = [
    "id",
    "rule_id",
    "rule_title",
    "level",
    "status",
    "assignee",
    "agent_id",
    "host.name",
    "summary",
    "count",
    "event_seq",
    "first_seen",
    "last_seen",
    "status_by",
    "status_at",
    "status_reason",
    "suppressed_until",
]


class StatusBody(BaseModel):
    status: AlertStatus
    until: datetime | None = None  # required for suppressed, and only for it
    reason: str = ""


class AssignBody(BaseModel):
    assignee: str | None  # null or "": nobody


class CommentBody(BaseModel):
    text: str


class BulkBody(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=MAX_BULK)
    status: AlertStatus | None = None
    until: datetime | None = None
    reason: str = ""
    assignee: str | None = None  # given (even null): assign; left out: leave as it is


def _missing(alert_id: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no alert {alert_id}")


def add_routes(router: APIRouter, store: Store, require: Require) -> None:
    _reads(router, store, [Depends(require(store, "viewer"))])
    _changes(router, store, [Depends(require(store, "analyst"))])


def _reads(router: APIRouter, store: Store, viewer: list[Any]) -> None:
    @router.get("/alerts", dependencies=viewer)
    def alerts(
        request: Request,
        status: AlertStatus | None = None,
        level: Level | None = None,
        rule: str | None = None,
        host: Annotated[str | None, Query(description="agent_id or host name")] = None,
        assignee: str | None = None,
        unassigned: bool = False,
    ) -> Response:
        """{"items": [alert], "next": cursor}; `sort` one of last_seen, first_seen, level
        (severity), rule, host, count, `-` for descending (default -last_seen)."""
        where = alert_filter(
            rule=rule,
            level=level,
            status=status,
            host=host,
            assignee=assignee,
            unassigned=unassigned,
        )
        listing = listing_from(request, sortable=ALERT_SORTS, default_sort=DEFAULT_ALERT_SORT)
        page = store.page_alerts(where, listing)
        page.columns.extend(COLUMNS)
        return respond(request, page, filename="alerts")

    @router.get("/alerts/{alert_id}", dependencies=viewer)
    def alert(alert_id: AlertId) -> Item:
        """The alert, with `history`: every status change, oldest first."""
        found = store.get_alert(alert_id)
        if found is None:
            raise _missing(alert_id)
        return {**found, "history": store.alert_history_of(alert_id) or []}

    @router.get("/alerts/{alert_id}/history", dependencies=viewer)
    def alert_history(alert_id: AlertId) -> Item:
        """{"items": [{status, by, at, reason, until}]}: every status change, oldest first."""
        history = store.alert_history_of(alert_id)
        if history is None:
            raise _missing(alert_id)
        return {"items": history, "next": None}

    @router.get("/alerts/{alert_id}/comments", dependencies=viewer)
    def comments(request: Request, alert_id: AlertId) -> Response:
        """{"items": [comment], "next": cursor}, oldest first."""
        if store.get_alert(alert_id) is None:
            raise _missing(alert_id)
        listing = listing_from(request, sortable=("id",), default_sort="id")
        return respond(request, store.alert_comments(alert_id, listing), filename="comments")


def _changes(router: APIRouter, store: Store, analyst: list[Any]) -> None:
    @router.post("/alerts/{alert_id}/status", dependencies=analyst)
    def set_status(alert_id: AlertId, body: StatusBody, actor: ApiActor) -> Item:
        """{"id", "status", "by", "until"}; 404 if there is no alert, 422 for suppressed
        without a future until (or until on another status)."""
        now = datetime.now(UTC)
        change = status_change(body.status, body.until, body.reason, now=now)
        if not store.set_alert_status(
            alert_id, change.status, by=actor, until=change.until, reason=change.reason, now=now
        ):
            raise _missing(alert_id)
        shown = None if change.until is None else change.until.isoformat()
        return {"id": alert_id, "status": change.status, "by": actor, "until": shown}

    @router.post("/alerts/{alert_id}/assign", dependencies=analyst)
    def assign(alert_id: AlertId, body: AssignBody, actor: ApiActor) -> Item:
        """{"id", "assignee", "by"}: the alert given to a user, or to nobody."""
        name = assignee(body.assignee)
        if not store.assign_alert(alert_id, name, by=actor):
            raise _missing(alert_id)
        return {"id": alert_id, "assignee": name, "by": actor}

    @router.post("/alerts/{alert_id}/comments", dependencies=analyst, status_code=201)
    def add_comment(alert_id: AlertId, body: CommentBody, actor: ApiActor) -> Item:
        """The comment as stored: {"id", "alert_id", "at", "actor", "text"}."""
        stored = store.comment_alert(alert_id, comment(body.text), by=actor)
        if stored is None:
            raise _missing(alert_id)
        return stored

    @router.post("/alerts/bulk", dependencies=analyst)
    def bulk(body: BulkBody, actor: ApiActor) -> JSONResponse:
        """The same change to each of `ids`: {"changed": [id], "missing": [id]}."""
        now = datetime.now(UTC)
        change = _bulk_change(body, now)
        result = store.bulk_change_alerts(alert_ids(body.ids), change, by=actor, now=now)
        return JSONResponse({"changed": result.changed, "missing": result.missing})


def _bulk_change(body: BulkBody, now: datetime) -> BulkChange:
    if body.status is None and (body.until is not None or body.reason):
        raise TriageError("status", "until and reason go with a status")
    status = (
        None
        if body.status is None
        else status_change(body.status, body.until, body.reason, now=now)
    )
    # A field left out leaves the assignee alone; null (or "") gives the alerts to nobody.
    if "assignee" not in body.model_fields_set:
        return BulkChange(status=status)
    return BulkChange(status=status, assign=True, assignee=assignee(body.assignee))
