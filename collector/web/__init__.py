"""The collector's dashboard (server-rendered pages) and REST API (/api/v1/)."""

from collector.web.app import create_app

__all__ = ["create_app"]
