"""A browsable API reference at /api/docs, rendered on the server from the OpenAPI document.

Swagger UI would load scripts from a CDN, which the pages' CSP forbids; this page is plain
HTML from app.openapi(): every operation, its parameters, its responses, the schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from collector.web.templating import environment, render

_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str  # path, query, header
    required: bool
    type: str
    description: str


@dataclass(frozen=True)
class Reply:
    status: str
    description: str
    media_types: tuple[str, ...]
    schema: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    parameters: tuple[Parameter, ...]
    body: str  # the request body's schema, "" for none
    replies: tuple[Reply, ...]

    @property
    def anchor(self) -> str:
        return f"{self.method}-{self.path}".replace("/", "-").replace("{", "").replace("}", "")


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Pure: every operation of an OpenAPI 3 document, in path order."""
    found = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method in _METHODS:
            if method in item:
                found.append(_operation(method, path, item[method]))
    return found


def schemas(document: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Pure: each component schema as (name, [(property, type, description)])."""
    shown = []
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        properties = [
            (prop, type_name(spec), str(spec.get("description", "")))
            for prop, spec in schema.get("properties", {}).items()
        ]
        shown.append((name, properties))
    return shown


def type_name(schema: Mapping[str, Any]) -> str:
    """A short reading of a JSON schema: `string`, `integer | null`, `array of Host`."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(type_name(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_name(schema.get('items', {}))}"
    if "const" in schema:
        return repr(schema["const"])
    return str(kind) if kind else "any"


def _operation(method: str, path: str, spec: Mapping[str, Any]) -> Operation:
    parameters = tuple(
        Parameter(
            name=str(p.get("name", "")),
            where=str(p.get("in", "")),
            required=bool(p.get("required", False)),
            type=type_name(p.get("schema", {})),
            description=str(p.get("description", "")),
        )
        for p in spec.get("parameters", [])
    )
    body = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
    replies = tuple(
        Reply(
            status=str(status),
            description=str(reply.get("description", "")),
            media_types=tuple(reply.get("content", {})),
            schema=type_name(reply.get("content", {}).get("application/json", {}).get("schema", {}))
            if "application/json" in reply.get("content", {})
            else "",
        )
        for status, reply in sorted(spec.get("responses", {}).items())
    )
    return Operation(
        method=method.upper(),
        path=path,
        summary=str(spec.get("summary", "")),
        description=str(spec.get("description", "")),
        parameters=parameters,
        body=type_name(body["schema"]) if "schema" in body else "",
        replies=replies,
    )


def router(*, has_rules: bool) -> APIRouter:
    pages = APIRouter(include_in_schema=False)
    env = environment()

    @pages.get("/api/docs", response_class=HTMLResponse)
    def docs(request: Request) -> Response:
        document = request.app.openapi()
        return render(
            env,
            request,
            "apidocs.html",
            has_rules=has_rules,
            info=document.get("info", {}),
            operations=operations(document),
            schemas=schemas(document),
        )

    return pages
