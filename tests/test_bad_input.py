"""Bad input never gets a 500: every write route is sent malformed and mistyped bodies, every list route
malformed query parameters, against real ids so the requests reach the body and parameter checks."""

from __future__ import annotations

import re

import pytest

from tests.conftest import unique

BAD_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b"not json",
    b"\xff\xfe\x00garbage",
    b'{"data": null}',
    b'{"data": []}',
    b'{"data": {"type": 5}}',
    b'{"data": {"type": "datasets", "attributes": []}}',
    b'{"data": {"type": "records", "attributes": {"records": [{"input": 1e999}]}}}',
    b'{"data": {"attributes": {"records": "x", "insert_records": {}, "record_ids": [1, 2]}}}',
    b'{"data": {"type": "projects", "attributes": {"name": "\\u0000", "description": 99999999999999999999999}}}',
    b'[' * 2000 + b']' * 2000,
]

BAD_QUERIES = [
    {"page[limit]": "-1"},
    {"page[limit]": "1e9"},
    {"page[cursor]": "%%%"},
    {"page[cursor]": "WzEsMiwzXQ"},  # a well-formed cursor of the wrong shape
    {"filter[version]": "abc"},
    {"filter[version]": "99999999999999999999"},
    {"filter[from]": "yesterday"},
    {"filter[metadata]": "{not json"},
    {"sort": "nonsense"},
    {"limit": "-5", "offset": "x"},
]


@pytest.fixture
def ids(http) -> dict[str, str]:
    def post(path: str, body: dict) -> dict:
        resp = http.post(path, json=body)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()["data"]

    project = post("/api/v2/llm-obs/v1/projects", {"data": {"type": "projects", "attributes": {"name": unique("bad")}}})
    pid = project["id"]
    dataset = post(f"/api/v2/llm-obs/v1/{pid}/datasets",
                   {"data": {"type": "datasets", "attributes": {"name": unique("bad")}}})
    queue = post("/api/v2/llm-obs/v1/annotation-queues", {"data": {"type": "queues", "attributes": {
        "project_id": pid, "name": unique("bad")}}})
    experiment = post("/api/v2/llm-obs/v1/experiments", {"data": {"type": "experiments", "attributes": {
        "project_id": pid, "dataset_id": dataset["id"], "name": unique("bad")}}})
    return {"project_id": pid, "dataset_id": dataset["id"], "queue_id": queue["id"],
            "experiment_id": experiment["id"], "interaction_id": "no-such-interaction"}


def _routes(server) -> list[tuple[str, str]]:
    spec = server.client().get("/openapi.json").json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "unknown-id"), path)


def test_no_route_answers_500(server, http, ids):
    routes = _routes(server)
    assert len(routes) > 40, routes
    checked = 0
    for method, path in routes:
        url = _fill(path, ids)
        if method in ("POST", "PATCH", "PUT"):
            for body in BAD_BODIES:
                resp = http.request(method, url, content=body, headers={"content-type": "application/json"})
                assert resp.status_code < 500, (method, path, body[:60], resp.text[:300])
                if resp.status_code >= 400:
                    assert resp.json()["errors"][0]["detail"], (method, path, resp.text[:300])
                checked += 1
        elif method == "GET":
            for params in BAD_QUERIES:
                resp = http.get(url, params=params)
                assert resp.status_code < 500, (method, path, params, resp.text[:300])
                checked += 1
    assert checked > 300


# Numbers JSON has no value for. pydantic's own parser reads them (as nan/inf), and stored they came
# back as null; each must be a 400 that changes nothing.
NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400", b"9" * 400 + b".0"]


@pytest.mark.parametrize("number", NON_FINITE, ids=lambda n: n.decode()[:12])
def test_non_finite_numbers_are_refused_and_change_nothing(http, ids, number):
    base = f"/api/v2/llm-obs/v1/{ids['project_id']}/datasets/{ids['dataset_id']}"
    datasets = f"/api/v2/llm-obs/v1/{ids['project_id']}/datasets"
    before = http.get(f"{base}/records").json()["data"], http.get(f"{base}/versions").json()["data"]
    bodies = [
        (f"{base}/records", b'{"data": {"type": "records", "attributes": {"records": [{"input": {"x": %s}}]}}}'),
        (f"{base}/batch_update", b'{"data": {"type": "datasets", "attributes": '
                                 b'{"insert_records": [{"input": "ok"}, {"input": "v", "metadata": {"m": [%s]}}]}}}'),
        (datasets, b'{"data": {"type": "datasets", "attributes": {"name": "non-finite", "metadata": {"m": %s}}}}'),
    ]
    for url, body in bodies:
        resp = http.post(url, content=body % number, headers={"content-type": "application/json"})
        assert resp.status_code == 400, (url, resp.text[:300])
        error = resp.json()["errors"][0]
        assert error["status"] == "400" and error["detail"].startswith("malformed JSON"), error
        assert "not JSON numbers" in error["detail"], error
    assert (http.get(f"{base}/records").json()["data"], http.get(f"{base}/versions").json()["data"]) == before
    assert http.get(datasets, params={"filter[name]": "non-finite"}).json()["data"] == []


def test_large_finite_numbers_are_kept_exactly(http, ids):
    base = f"/api/v2/llm-obs/v1/{ids['project_id']}/datasets/{ids['dataset_id']}"
    body = b'{"data": {"type": "records", "attributes": {"records": [{"input": {"big": 1e308, "small": -4.9e-324, ' \
           b'"int": 9223372036854775807}}]}}}'
    resp = http.post(f"{base}/records", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text[:300]
    stored = resp.json()["data"][0]["attributes"]["input"]
    assert stored == {"big": 1e308, "small": -4.9e-324, "int": 9223372036854775807}
