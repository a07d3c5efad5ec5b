"""The API reference page is read out of the OpenAPI document, every operation of it."""

from __future__ import annotations

from collector.web.apidocs import operations, schemas, type_name

DOCUMENT = {
    "paths": {
        "/api/v1/hosts/{agent_id}": {
            "get": {
                "summary": "Host",
                "parameters": [
                    {
                        "name": "agent_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/HostPage"}
                            },
                            "text/csv": {},
                        },
                    },
                    "404": {"description": "No such row"},
                },
            },
            "post": {
                "summary": "Change",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Change"}}
                    }
                },
                "responses": {},
            },
        }
    },
    "components": {
        "schemas": {
            "HostPage": {
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/HostItem"}},
                    "next": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "description": "cursor",
                    },
                }
            }
        }
    },
}


def test_every_operation_with_its_parameters_and_replies() -> None:
    get, post = operations(DOCUMENT)
    assert (get.method, get.path, get.summary) == ("GET", "/api/v1/hosts/{agent_id}", "Host")
    assert [(p.name, p.where, p.required, p.type) for p in get.parameters] == [
        ("agent_id", "path", True, "string"),
        ("limit", "query", False, "integer | null"),
    ]
    assert [(r.status, r.schema, r.media_types) for r in get.replies] == [
        ("200", "HostPage", ("application/json", "text/csv")),
        ("404", "", ()),
    ]
    assert post.body == "Change" and post.anchor == "POST--api-v1-hosts-agent_id"


def test_schemas_and_type_names() -> None:
    ((name, properties),) = schemas(DOCUMENT)
    assert name == "HostPage"
    assert properties == [("items", "array of HostItem", ""), ("next", "string | null", "cursor")]
    assert type_name({"enum": ["json", "csv"]}) == "'json' | 'csv'"
    assert type_name({}) == "any"


def test_an_empty_document_has_no_operations() -> None:
    assert operations({}) == [] and schemas({}) == []
