"""/openapi.json describes every route's request body and query parameters, and every $ref in it
resolves: /docs shows and tries each route, and schema-driven tools (test_fuzz.py) can test them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from kennel import openapi

WRITE_METHODS = ("post", "patch", "put")
# The draft lock routes act on the path alone and read no body.
BODILESS = ("/draft_state/lock", "/draft_state/unlock", "/skip", "/undo")
UPLOADS = ("/records/upload", "/imports")


@pytest.fixture
def spec(http) -> dict[str, Any]:
    resp = http.get("/openapi.json")
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield method, path, op


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (no {part!r})"
        node = node[part]
    return node


def test_every_write_route_declares_its_body(spec):
    checked = 0
    for method, path, op in _operations(spec):
        if method not in WRITE_METHODS or not path.startswith("/api/"):
            continue
        if path.endswith(BODILESS):
            assert "requestBody" not in op, (method, path)
            continue
        body = op.get("requestBody")
        assert body and body.get("required"), (method, path, op)
        media = "multipart/form-data" if path.endswith(UPLOADS) else "application/json"
        assert list(body["content"]) == [media], (method, path, body)
        schema = body["content"][media]["schema"]
        target = _resolve(spec, schema["$ref"])
        assert target.get("properties") or target.get("anyOf"), (method, path, target)
        checked += 1
    assert checked >= 45, checked


def test_bodies_name_the_model_the_route_validates(spec):
    def body_ref(method: str, path: str) -> str:
        return spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]

    assert body_ref("post", "/api/v2/llm-obs/v1/projects") == "#/components/schemas/ProjectRequest"
    assert body_ref("post", "/api/unstable/llm-obs/v1/{project_id}/datasets/{dataset_id}/batch_update") == \
        "#/components/schemas/BatchUpdateRequest"
    assert body_ref("put", "/api/v2/llm-obs/v1/annotation-queues/{queue_id}/label-schema") == \
        "#/components/schemas/LabelSchemaUpdateRequest"
    assert body_ref("post", "/api/v2/llm-obs/v1/spans/events/search") == "#/components/schemas/SpanSearchRequest"
    request = spec["components"]["schemas"]["ProjectRequest"]
    assert request["required"] == ["data"]
    data = _resolve(spec, request["properties"]["data"]["$ref"])
    assert data["properties"]["type"]["const"] == "projects"


def test_every_ref_resolves(spec):
    refs = set(_refs(spec))
    assert len(refs) > 50, refs
    for ref in sorted(refs):
        _resolve(spec, ref)


def _query_names(spec: dict[str, Any], method: str, path: str) -> set[str]:
    return {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p["in"] == "query"}


@pytest.mark.parametrize("path", ["/api/v2/llm-obs/v1/experiments", "/api/unstable/llm-obs/v1/experiments"])
def test_experiment_list_declares_its_query_parameters(spec, path):
    assert _query_names(spec, "get", path) == {
        "page[limit]", "page[cursor]", "filter[project_id]", "filter[dataset_id]", "filter[id]", "filter[name]",
        "filter[experiment]", "filter[metadata]", "filter[parent_experiment_id]", "filter[is_deleted]",
        "include[dataset_names]"}


def test_span_list_declares_its_query_parameters(spec):
    path = "/api/v2/llm-obs/v1/spans/events"
    assert _query_names(spec, "get", path) == {
        "filter[from]", "filter[to]", "filter[query]", "filter[trace_id]", "filter[span_id]", "filter[span_kind]",
        "filter[span_name]", "filter[ml_app]", "filter[tag]", "page[limit]", "page[cursor]", "sort"}
    tag = next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "filter[tag]")
    assert tag["style"] == "deepObject" and tag["explode"] is True


def test_parameters_checked_by_hand_show_what_they_accept(spec):
    """Declared as strings (the handlers answer a bad value with a 400, not FastAPI's 422), but shown as
    the integers and booleans their checks accept."""
    def schema(path: str, name: str) -> dict[str, Any]:
        return next(p["schema"] for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name)

    assert schema("/api/v2/llm-obs/v1/spans/events", "page[limit]") == {
        "type": "integer", "minimum": 1, "maximum": 5000, "title": "Page[Limit]"}
    assert schema("/api/v2/llm-obs/v1/annotated-interactions", "offset")["type"] == "integer"
    assert schema("/api/v2/llm-obs/v1/experiments", "filter[is_deleted]")["type"] == "boolean"
    assert schema("/api/v2/llm-obs/v1/experiments", "filter[name]")["anyOf"] == [{"type": "string"}, {"type": "null"}]


def test_other_hand_read_query_parameters_are_declared(spec):
    assert _query_names(spec, "get", "/api/v2/llm-obs/v3/experiments/{experiment_id}/events") == {
        "page[limit]", "page[cursor]"}
    assert _query_names(spec, "get", "/api/unstable/llm-obs/v1/experiments/events") == {
        "filter[project_name]", "filter[experiment_name]"}


def test_declared_parameters_keep_their_400s(http):
    """Declared as FastAPI parameters, the hand checks still answer: a JSON:API 400 naming the parameter."""
    cases = [
        ("/api/v2/llm-obs/v1/experiments", {"page[limit]": "0"}, "page[limit]"),
        ("/api/v2/llm-obs/v1/experiments", {"filter[metadata]": "[1]"}, "filter[metadata]"),
        ("/api/v2/llm-obs/v1/experiments", {"filter[is_deleted]": "maybe"}, "filter[is_deleted]"),
        ("/api/v2/llm-obs/v1/experiments", {"include[dataset_names]": "maybe"}, "include[dataset_names]"),
        ("/api/v2/llm-obs/v1/spans/events", {"page[limit]": "x"}, "page[limit]"),
        ("/api/unstable/llm-obs/v1/experiments/events", {"filter[project_name]": "p"}, "filter[experiment_name]"),
    ]
    for path, params, name in cases:
        resp = http.get(path, params=params)
        assert resp.status_code == 400, (path, params, resp.text[:300])
        assert resp.json()["errors"][0]["source"] == {"parameter": name}, (path, params, resp.text[:300])


def test_two_request_models_cannot_share_a_name():
    first = type("SameName", (BaseModel,), {"__module__": "tests.first"})
    second = type("SameName", (BaseModel,), {"__module__": "tests.second"})
    openapi.json_body(first)
    try:
        with pytest.raises(RuntimeError, match="two request models are named SameName"):
            openapi.json_body(second)
    finally:
        openapi._models.pop("SameName", None)
