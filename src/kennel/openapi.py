"""Request bodies in /openapi.json for routes that validate their body themselves.

Handlers read the raw body and validate it with jsonapi.parse_body, so that a bad body is a JSON:API
400 naming its field rather than FastAPI's 422; FastAPI therefore sees no body parameter and documents
none. A route passes `openapi_extra=json_body(Model)` (or `dual_route(..., body=Model)`) to name its
model, and `install(app)` puts the schemas those names refer to into components/schemas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"

_models: dict[str, type[BaseModel]] = {}


def json_body(model: type[BaseModel], media: str = "application/json") -> dict[str, Any]:
    """The `openapi_extra` of a route whose JSON body `model` validates (or whose `media` body, such as a
    multipart form the handler reads itself, `model` describes)."""
    name = model.__name__
    known = _models.setdefault(name, model)
    if known is not model:
        # Both would be components/schemas/<name>; one route would be documented with the other's body.
        raise RuntimeError(f"two request models are named {name}: {known.__module__} and {model.__module__}")
    return {"requestBody": {"required": True, "content": {
        media: {"schema": {"$ref": REF.format(model=name)}}}}}


def _schemas() -> dict[str, Any]:
    refs, top = models_json_schema([(m, "validation") for m in _models.values()], ref_template=REF)
    for (model, _), ref in refs.items():
        # pydantic renames models whose names clash; json_body's refs would then point elsewhere.
        if ref.get("$ref") != REF.format(model=model.__name__):
            raise RuntimeError(f"{model.__name__} would be documented as {ref}")
    return top.get("$defs", {})


# The names the typed client (datadog-api-client) gives the two headers.
SECURITY_SCHEMES = {
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "DD-API-KEY",
                   "description": "The API key of a pair made with `kennel keys create` (or in the web app)."},
    "appKeyAuth": {"type": "apiKey", "in": "header", "name": "DD-APPLICATION-KEY",
                   "description": "The application key of the same pair (not needed by the intake routes)."},
}


def _security(app: FastAPI) -> dict[tuple[str, str], list[dict[str, list[str]]]]:
    """What each documented operation needs, from the same dependencies the admission gate reads, so
    that Swagger UI's "Authorize" sends the right headers to each route."""
    from fastapi.routing import APIRoute

    from kennel.auth import require_api_key, require_keys
    from kennel.gate import _calls

    def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            # Newer FastAPI keeps an included router as one route holding the original router.
            elif getattr(route, "original_router", None) is not None:
                yield from api_routes(route.original_router.routes)

    needs: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        calls = _calls(route.dependant)
        security: list[dict[str, list[str]]]
        if require_keys in calls:
            security = [{"apiKeyAuth": [], "appKeyAuth": []}]
        elif require_api_key in calls:
            security = [{"apiKeyAuth": []}]
        else:
            continue
        for method in route.methods or ():
            needs[(route.path_format, method.lower())] = security
    return needs


def install(app: FastAPI) -> None:
    """Make `app.openapi()` include the schemas of every model named by json_body, and the key headers
    as security schemes."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    cache: dict[frozenset[str], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        doc = generate()
        key = frozenset(_models)
        if key not in cache:
            cache.clear()
            cache[key] = _schemas()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in cache[key].items():
            if schemas.setdefault(name, schema) != schema:
                raise RuntimeError(f"components/schemas/{name} is both a FastAPI schema and a request model's")
        doc["components"]["schemas"] = dict(sorted(schemas.items()))
        doc["components"]["securitySchemes"] = SECURITY_SCHEMES
        for (path, method), security in _security(app).items():
            operation = doc.get("paths", {}).get(path, {}).get(method)
            if operation is not None:
                operation["security"] = security
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def shown_as(**schema: Any) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a query parameter declared as a string and checked by the handler (so that
    a bad value is a JSON:API 400 naming it, not FastAPI's 422): /openapi.json shows what the check
    accepts, e.g. an integer in a range, rather than any string. Validation is unchanged."""
    def document(target: dict[str, Any]) -> None:
        target.pop("anyOf", None)
        target.update(schema)
    return document


BOOLEAN = shown_as(type="boolean")


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[dict[str, Any]], None]:
    bounds = {k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None}
    return shown_as(type="integer", **bounds)
