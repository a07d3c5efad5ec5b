"""API route for exports: the CycloneDX ML-BOM of the fleet or one host."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Response

from collector.export.fleet import UnknownHost, fleet_bom
from collector.store import Store

Require = Callable[[Store, str], Callable[..., str]]
MEDIA_TYPE = "application/vnd.cyclonedx+json; version=1.6"


def add_routes(router: APIRouter, store: Store, require: Require) -> None:
    viewer = [Depends(require(store, "viewer"))]

    @router.get("/export/cyclonedx", dependencies=viewer)
    def cyclonedx(host: str | None = None) -> Response:
        """One CycloneDX 1.6 document (not a paginated listing); `?host=` for one host."""
        try:
            text = fleet_bom(store, host=host, now=datetime.now(UTC))
        except UnknownHost as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        name = "fleet" if host is None else re.sub(r"[^A-Za-z0-9._-]", "_", host)[:100]
        return Response(
            text,
            media_type=MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="shadowai-{name}.cdx.json"'},
        )
