"""The rules page and API: every loaded rule with its match counts, the rule set's last
reload and its errors, and the exceptions that expired."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from collector.rules_view import DEFAULT_RULE_SORT, RULE_SORTS, page_rules, with_counts
from collector.store import Store
from collector.web.acting import require as require_page
from collector.web.links import first_link, next_link, sort_links
from collector.web.listing import listing_from, respond

RulesSummary = Callable[[], Sequence[Mapping[str, object]]]
RulesStatus = Callable[[], Mapping[str, object]]
Render = Callable[..., HTMLResponse]
Require = Callable[[Store, str], Callable[..., str]]
COLUMNS = [
    "id",
    "title",
    "level",
    "dataset",
    "action",
    "tags",
    "source",
    "alerts_total",
    "alerts_open",
    "last_match",
]


def add_page(
    router: APIRouter,
    store: Store,
    render: Render,
    summary: RulesSummary,
    status: RulesStatus | None,
) -> None:
    @router.get("/rules")
    def rules(request: Request) -> HTMLResponse:
        require_page(request, "viewer")
        listing = listing_from(request, sortable=RULE_SORTS, default_sort=DEFAULT_RULE_SORT)
        page = page_rules(with_counts(summary(), store.rule_alert_counts()), listing)
        return render(
            "rules.html",
            rules=page.items,
            status=dict(status()) if status is not None else {},
            sorts=sort_links(request, RULE_SORTS, listing),
            next_href=next_link(request, page),
            first_href=first_link(request),
        )


def add_routes(
    router: APIRouter,
    store: Store,
    require: Require,
    summary: RulesSummary | None,
    status: RulesStatus | None,
) -> None:
    viewer = [Depends(require(store, "viewer"))]

    @router.get("/rules/status", dependencies=viewer)
    def rules_state() -> dict[str, object]:
        """The rule set's last good load, its last reload error, and expired exceptions."""
        if status is None:
            raise HTTPException(status_code=404, detail="no live rule set")
        return dict(status())

    @router.get("/rules", dependencies=viewer)
    def rules(request: Request) -> Response:
        """{"items": [rule], "next"}: each rule with alerts_total, alerts_open and last_match;
        `sort` one of title, id, level, alerts_total, alerts_open, last_match. 404 when this
        collector was given no rules."""
        if summary is None:
            raise HTTPException(status_code=404, detail="no rule set loaded")
        listing = listing_from(request, sortable=RULE_SORTS, default_sort=DEFAULT_RULE_SORT)
        page = page_rules(with_counts(summary(), store.rule_alert_counts()), listing)
        page.columns.extend(COLUMNS)
        return respond(request, page, filename="rules")
