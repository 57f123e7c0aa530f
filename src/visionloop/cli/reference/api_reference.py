"""The HTTP API reference, rendered from the OpenAPI document of the app the Router serves (the one
tests/unit/test_openapi_stable.py holds to its saved contract)."""

from __future__ import annotations

import json
from typing import Any

from visionloop.cli.reference.markdown import GENERATED, cell, code, table

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document() -> dict[str, Any]:
    from visionloop.serving.router import app

    return app.openapi()


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_text(s) for s in schema["anyOf"])
    kind = str(schema.get("type", "object"))
    if kind == "array" and "items" in schema:
        return f"array of {_schema_text(schema['items'])}"
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    return kind


def _parameters(operation: dict[str, Any]) -> str:
    rows = []
    for p in operation.get("parameters", []):
        schema = p.get("schema", {})
        default = schema.get("default", "")
        rows.append((
            code(p["name"]), p["in"], code(_schema_text(schema)), "yes" if p.get("required") else "",
            code(json.dumps(default) if default != "" else ""), cell(p.get("description", "")),
        ))  # fmt: skip
    return table(("parameter", "in", "type", "required", "default", "description"), rows) if rows else ""


def _body(operation: dict[str, Any], schemas: dict[str, Any]) -> str:
    body = operation.get("requestBody")
    if not body:
        return ""
    lines = []
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        name = _schema_text(schema)
        fields = schemas.get(name, {}).get("properties", {})
        described = ", ".join(f"`{k}` ({_schema_text(v)})" for k, v in fields.items())
        lines.append(f"Request body ({media}): {name}" + (f": {described}" if described else "") + ".")
    return "\n".join(lines)


def _operation(path: str, method: str, operation: dict[str, Any], schemas: dict[str, Any]) -> str:
    token = "needs the bearer token" if operation.get("security") else "no token"
    parts = [f"### `{method.upper()} {path}`\n", f"{operation.get('summary', '')} ({token}).\n"]
    description = operation.get("description", "").strip()
    if description:
        parts.append(description + "\n")
    for block in (_parameters(operation), _body(operation, schemas)):
        if block:
            parts.append(block + "\n")
    responses = ", ".join(f"{code} {r.get('description', '')}" for code, r in sorted(operation["responses"].items()))
    parts.append(f"Responses: {responses}. Operation id `{operation.get('operationId', '')}`.\n")
    return "\n".join(parts)


def api_page() -> str:
    document = openapi_document()
    schemas = document.get("components", {}).get("schemas", {})
    security = document.get("components", {}).get("securitySchemes", {})
    auth = "; ".join(f"{name}: {s.get('scheme', s.get('type'))}, {s.get('description', '')}" for name, s in
                     security.items())  # fmt: skip
    parts = [
        GENERATED,
        "# HTTP API reference\n",
        f"{document['info'].get('description', '')} Version {document['info'].get('version')}; authentication: "
        f"{auth} The running service also serves this document at `/openapi.json` and an explorer at `/docs`.\n",
    ]
    groups: dict[str, list[str]] = {}
    for path, item in document["paths"].items():
        group = path.split("/")[2] if path.startswith("/v1/") else path.strip("/")
        for method in METHODS:
            if method in item:
                groups.setdefault(group, []).append(_operation(path, method, item[method], schemas))
    for group, operations in groups.items():
        parts.append(f"## {group}\n")
        parts.extend(operations)
    return "\n".join(parts)
