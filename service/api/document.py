"""The OpenAPI document: what FastAPI generates, made to state every rule the server enforces.

FastAPI writes the document from the routes and schemas; this module rewrites
it once, when it is first asked for, for every route alike:

- every error is problem+json (FastAPI documents its own validation schema);
- ``x-setting: GMM_X`` on a schema becomes its ``maximum`` (``maxItems`` for an
  array) from the live settings, so the document served says what this
  process enforces (the committed ``openapi/openapi.json`` holds the defaults);
- the ``x-rules`` of everything an operation reads (its parameters and request
  bodies, through ``$ref``) are gathered on the operation as
  ``x-also-checked: {"status": 422, "rules": [...]}`` and listed in its
  description: the rules JSON Schema cannot state (a rectangular matrix, a
  weight per row, ...), which a schema-valid request can still break.

A new route gets all of this by using the shared types (``Matrix``, ``limit``,
``rules``, ``exactly_one_of`` in ``schemas.py``; ``IdempotencyKeyHeader``,
``CursorQuery`` in ``deps.py``; ``NPY_BODY`` in ``bodies.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from ..config import Settings

__all__ = [
    "BODY_SCHEMAS",
    "DocumentedPath",
    "documented_path",
    "install_document",
    "register_body_schema",
]

# Request bodies that routes read themselves and reference by name (see bodies.py).
BODY_SCHEMAS: list[type[BaseModel]] = []

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_INVALID = (
    "The request is invalid; `errors` names each field at fault. A body that is not "
    "well-formed (not JSON, CSV or .npy as its Content-Type says) is a 422 of `#/`."
)

_REPLAY_GONE = "What this Idempotency-Key created has been deleted since; use a new key."


def register_body_schema(model: type[BaseModel]) -> type[BaseModel]:
    """Put ``model``'s schema in the document's components (for hand-written request bodies)."""
    if model not in BODY_SCHEMAS:
        BODY_SCHEMAS.append(model)
    return model


def install_document(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` return the rewritten document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        _register_bodies(document)
        _fill_limits(document, settings)
        for operation in _operations(document):
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {"description": _INVALID, "content": _PROBLEM}
            _gather_rules(document, operation)
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                responses.setdefault("409", {"description": _REPLAY_GONE, "content": _PROBLEM})
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _register_bodies(document: dict[str, Any]) -> None:
    from .schemas import Problem

    components = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, *BODY_SCHEMAS):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(components[model.__name__].pop("$defs", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in document.get("paths", {}).values():
        for method, operation in path.items():
            if method in _METHODS:
                yield operation


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def _fill_limits(document: dict[str, Any], settings: Settings) -> None:
    for node in _nodes(document):
        setting = node.get("x-setting")
        if not isinstance(setting, str) or not setting.startswith("GMM_"):
            continue
        value = getattr(settings, setting.removeprefix("GMM_").lower())
        node["maxItems" if node.get("type") == "array" else "maximum"] = value


def _gather_rules(document: dict[str, Any], operation: dict[str, Any]) -> None:
    found: list[str] = []
    seen_refs: set[str] = set()

    def visit(value: Any) -> None:
        for node in _nodes(value):
            for rule in node.get("x-rules", ()):
                if rule not in found:
                    found.append(rule)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and ref not in seen_refs:
                seen_refs.add(ref)
                target: Any = document
                for part in ref[2:].split("/"):
                    target = target.get(part, {}) if isinstance(target, dict) else {}
                visit(target)

    visit(operation.get("parameters", []))
    visit(operation.get("requestBody", {}))
    if not found:
        return
    operation["x-also-checked"] = {"status": 422, "rules": found}
    listed = "\n".join(f"- {rule}" for rule in found)
    note = f"Also checked (a 422 naming the field when broken):\n\n{listed}"
    description = operation.get("description")
    operation["description"] = f"{description}\n\n{note}" if description else note


# --- the document as the server's rule book ---------------------------------------------


@dataclass(frozen=True)
class DocumentedPath:
    template: str
    pattern: re.Pattern[str]
    query: dict[str, frozenset[str]]  # method (upper case) -> the query parameters it documents


def documented_path(app: FastAPI, path: str) -> DocumentedPath | None:
    """The document's path template that ``path`` is an instance of, if any."""
    index = getattr(app.state, "documented_paths", None)
    if index is None:
        index = app.state.documented_paths = _index(app.openapi())
    for candidate in index.get(path.count("/"), ()):
        if candidate.pattern.fullmatch(path):
            return candidate
    return None


def _index(document: dict[str, Any]) -> dict[int, list[DocumentedPath]]:
    index: dict[int, list[DocumentedPath]] = {}
    for template, item in document.get("paths", {}).items():
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        query = {
            method.upper(): frozenset(
                p["name"]
                for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                if p.get("in") == "query"
            )
            for method, operation in item.items()
            if method in _METHODS
        }
        entry = DocumentedPath(template, re.compile(regex), query)
        index.setdefault(template.count("/"), []).append(entry)
    return index
