"""Hostile values that are well-formed JSON or well-formed query strings but cannot be queried or stored:
forged cursor parts, integers beyond 64 bits, time bounds outside the representable range, and JSON
nested deeper than can be written. Each is a 400 naming the parameter or pointer, never a 500."""

from __future__ import annotations

import base64
import json
import time
import uuid

import orjson
import pytest

from tests.conftest import unique
from tests.test_intake import EVAL, INTAKE, event, make_span

V1 = "/api/v2/llm-obs/v1"
QUEUES = f"{V1}/annotation-queues"
BIG = [2**64, -2**63 - 1, 10**30]
EDGE = [2**64 - 1, -2**63]  # the widest integers both backends store exactly


def _cursor(parts) -> str:
    # The standard library, not orjson: a forged cursor may hold integers beyond 64 bits.
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _nest(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_json(depth: int) -> bytes:
    # Written by hand: neither orjson nor the standard library writes JSON this deep.
    return b'{"a":' * depth + b"1" + b"}" * depth


def _post_raw(http, url: str, body: bytes):
    return http.post(url, content=body, headers={"content-type": "application/json"})


def _bad(resp, *, parameter: str | None = None, pointer: str | None = None, says: str = "") -> dict:
    assert resp.status_code == 400, resp.text[:500]
    error = resp.json()["errors"][0]
    if parameter is not None:
        assert error["source"] == {"parameter": parameter}, error
    if pointer is not None:
        assert error["source"] == {"pointer": pointer}, error
    assert says in error["detail"], error
    return error


@pytest.fixture
def ids(http) -> dict[str, str]:
    def post(path: str, body: dict) -> dict:
        resp = http.post(path, json=body)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()["data"]

    pid = post(f"{V1}/projects", {"data": {"type": "projects", "attributes": {"name": unique("hostile")}}})["id"]
    did = post(f"{V1}/{pid}/datasets", {"data": {"type": "datasets", "attributes": {"name": unique("d")}}})["id"]
    eid = post(f"{V1}/experiments", {"data": {"type": "experiments", "attributes": {
        "project_id": pid, "dataset_id": did, "name": unique("e")}}})["id"]
    qid = post(QUEUES, {"data": {"type": "queues", "attributes": {"project_id": pid, "name": unique("q")}}})["id"]
    trace = uuid.uuid4().hex
    span = make_span(unique("app"), trace_id=trace)
    assert http.post(INTAKE, json=[event(span)]).status_code == 202
    added = post(f"{QUEUES}/{qid}/interactions", {"data": {"type": "interactions", "attributes": {
        "interactions": [{"type": "trace", "content_id": trace}]}}})
    return {"project_id": pid, "dataset_id": did, "experiment_id": eid, "queue_id": qid,
            "interaction_id": added["attributes"]["interactions"][0]["id"]}


FORGED_PARTS = [{}, True, "x", 1.5, None, [1], 2**64, 2**63, -2**63 - 1]


@pytest.mark.parametrize("part", FORGED_PARTS, ids=repr)
def test_forged_cursor_parts_are_refused_on_every_cursor_route(http, ids, part):
    pid, did, eid = ids["project_id"], ids["dataset_id"], ids["experiment_id"]
    one = [part]
    two = [[part, 1], [1, part]]
    gets = [(f"{V1}/projects", "page[cursor]", [one]),
            (f"{V1}/{pid}/datasets", "page[cursor]", [one]),
            (f"{V1}/experiments", "page[cursor]", [one]),
            (f"{V1}/{pid}/datasets/{did}/records", "page[cursor]", two),
            (f"/api/v2/llm-obs/v3/experiments/{eid}/events", "page[cursor]", two),
            (f"{V1}/spans/events", "page[cursor]", [["-timestamp", *p] for p in two]),
            (f"{QUEUES}/{ids['queue_id']}/annotated-interactions/{ids['interaction_id']}", "cursor", two)]
    for url, name, cursors in gets:
        for parts in cursors:
            _bad(http.get(url, params={name: _cursor(parts)}), parameter=name, says="cursor")
    for parts in [["-timestamp", *p] for p in two]:
        body = {"data": {"type": "spans", "attributes": {"page": {"cursor": _cursor(parts)}}}}
        _bad(http.post(f"{V1}/spans/events/search", json=body), pointer="/data/attributes/page/cursor")


@pytest.mark.parametrize("value", ["99999999999999999999999", "9223372036854775808", "-9223372036854775809"])
def test_integer_parameters_beyond_64_bits_are_refused(http, ids, value):
    by_content = f"{V1}/annotated-interactions"
    _bad(http.get(by_content, params={"contentIds": "x", "offset": value}), parameter="offset")
    _bad(http.get(by_content, params={"contentIds": "x", "limit": value}), parameter="limit")
    records = f"{V1}/{ids['project_id']}/datasets/{ids['dataset_id']}/records"
    _bad(http.get(records, params={"filter[version]": value}), parameter="filter[version]")
    _bad(http.get(f"{V1}/projects", params={"page[limit]": value}), parameter="page[limit]")


def test_integer_parameters_at_the_64_bit_edge_are_answered(http):
    resp = http.get(f"{V1}/annotated-interactions", params={"contentIds": "x", "offset": str(2**63 - 1)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["attributes"]["annotated_interactions"] == []


def test_experiment_page_limit_above_maximum_is_still_clamped(http):
    for value in ("5001", "99999999999999999999999"):
        assert http.get(f"{V1}/experiments", params={"page[limit]": value}).status_code == 200
    _bad(http.get(f"{V1}/experiments", params={"page[limit]": "\u00b2"}), parameter="page[limit]")


FAR_PAST = ["0001-01-01T00:00:00Z", "now-1000000000d", "now-99999999999999999999y"]
FAR_FUTURE = ["9999-12-31T23:59:59Z", "99999999999999999999", "9999999999999"]


def test_span_time_bounds_beyond_64_bits_are_clamped(http):
    app = unique("app")
    assert http.post(INTAKE, json=[event(make_span(app))]).status_code == 202

    def listed(**bounds) -> int:
        params = {"filter[ml_app]": app, **{f"filter[{k}]": v for k, v in bounds.items()}}
        resp = http.get(f"{V1}/spans/events", params=params)
        assert resp.status_code == 200, resp.text[:300]
        found = len(resp.json()["data"])
        body = {"data": {"type": "spans", "attributes": {"filter": {"ml_app": app, **bounds}}}}
        resp = http.post(f"{V1}/spans/events/search", json=body)
        assert resp.status_code == 200, resp.text[:300]
        assert len(resp.json()["data"]) == found, (bounds, resp.text[:300])
        return found

    for past in FAR_PAST:
        for future in FAR_FUTURE:
            # A far bound means no bound on that side; the other way round nothing can match.
            assert listed(**{"from": past, "to": future}) == 1, (past, future)
            assert listed(**{"from": future, "to": past}) == 0, (past, future)
            assert listed(**{"from": past}) == 1 and listed(**{"to": future, "from": "now-1h"}) == 1
            assert listed(**{"from": future}) == 0 and listed(**{"to": past}) == 0
    for offset in (2**40, 2**64, -2**64):
        body = {"data": {"type": "spans", "attributes": {"filter": {"ml_app": app},
                                                         "options": {"time_offset": offset}}}}
        resp = http.post(f"{V1}/spans/events/search", json=body)
        assert resp.status_code == 200, resp.text[:300]


def test_span_time_bounds_that_are_not_numbers_are_refused(http):
    for value in ("now-" + "9" * 5000 + "d", "9" * 5000, "\u00b2\u00b3"):
        _bad(http.get(f"{V1}/spans/events", params={"filter[from]": value}), parameter="filter[from]")


def _meta_span(app: str, meta: dict, **extra) -> dict:
    span = make_span(app)
    span["meta"] = meta
    span.update(extra)
    return span


def test_span_intake_refuses_nesting_too_deep_for_storage(http):
    app = unique("app")
    deep = orjson.dumps([event(_meta_span(app, {"deep": "here"}))])
    for depth in (254, 300, 1000):
        resp = _post_raw(http, INTAKE, deep.replace(b'"here"', _deep_json(depth)))
        error = _bad(resp, says="nested too deep")
        assert error["source"]["pointer"].startswith("/0/spans/0/meta/deep/a/a/"), error
    # One span too deep is refused alone; its neighbour is kept.
    resp = http.post(INTAKE, json=[event(_meta_span(app, _nest(240)), make_span(app))])
    assert resp.status_code == 202, resp.text[:300]
    meta = resp.json()["meta"]
    assert (meta["accepted"], meta["rejected"]) == (1, 1)
    assert meta["errors"][0]["source"]["pointer"].startswith("/0/spans/0/meta/")
    # What is accepted can be read back, inside the deepest response envelope too.
    kept = _meta_span(app, {"metadata": _nest(150), "input": {"messages": [{"role": "u", "content": _nest(150)}]}})
    assert http.post(INTAKE, json=[event(kept)]).status_code == 202
    listed = http.get(f"{V1}/spans/events", params={"filter[ml_app]": app, "filter[from]": "now-1h"})
    assert listed.status_code == 200 and len(listed.json()["data"]) == 2, listed.text[:300]


def test_experiment_metadata_filter_nested_too_deep_is_refused(http):
    for depth in (300, 1000):
        raw = _deep_json(depth).decode()
        _bad(http.get(f"{V1}/experiments", params={"filter[metadata]": raw}), parameter="filter[metadata]",
             says="nested too deep")
    assert http.get(f"{V1}/experiments", params={"filter[metadata]": orjson.dumps(_nest(50)).decode()}
                    ).status_code == 200


@pytest.mark.parametrize("big", BIG, ids=str)
def test_integers_beyond_64_bits_in_stored_metadata_are_refused(http, ids, big):
    pid, did, eid = ids["project_id"], ids["dataset_id"], ids["experiment_id"]
    n = str(big).encode()

    def send(method: str, url: str, body: bytes):
        return http.request(method, url, content=body, headers={"content-type": "application/json"})

    cases = [
        ("POST", f"{V1}/{pid}/datasets",
         b'{"data": {"type": "datasets", "attributes": {"name": "big-int", "metadata": {"m": [0, %s]}}}}',
         "/data/attributes/metadata/m/1"),
        ("PATCH", f"{V1}/{pid}/datasets/{did}",
         b'{"data": {"type": "datasets", "attributes": {"metadata": {"m": %s}}}}', "/data/attributes/metadata/m"),
        ("POST", f"{V1}/experiments",
         b'{"data": {"type": "experiments", "attributes": {"project_id": "' + pid.encode()
         + b'", "name": "big-int", "metadata": {"a/b": {"~": %s}}}}}', "/data/attributes/metadata/a~1b/~0"),
        ("POST", f"{V1}/experiments",
         b'{"data": {"type": "experiments", "attributes": {"project_id": "' + pid.encode()
         + b'", "name": "big-int", "config": {"c": %s}}}}', "/data/attributes/config/c"),
        ("PATCH", f"{V1}/experiments/{eid}",
         b'{"data": {"type": "experiments", "attributes": {"metadata": {"m": %s}}}}', "/data/attributes/metadata/m"),
        ("POST", f"{V1}/experiments/{eid}/events",
         b'{"data": {"type": "events", "attributes": {"spans": [{"trace_id": "t", "span_id": "s", "name": "n", '
         b'"start_ns": 1, "duration": 1, "meta": {"x": %s}}]}}}', "/data/attributes/spans/0/meta/x"),
        ("POST", f"{V1}/experiments/{eid}/events",
         b'{"data": {"type": "events", "attributes": {"metrics": [{"span_id": "s", "trace_id": "t", "label": "l", '
         b'"metric_type": "score", "score_value": 1, "timestamp_ms": 1, "metadata": {"m": %s}}]}}}',
         "/data/attributes/metrics/0/metadata/m"),
    ]
    for method, url, body, pointer in cases:
        _bad(send(method, url, body % n), pointer=pointer, says="64 bits")
    assert http.get(f"{V1}/{pid}/datasets", params={"filter[name]": "big-int"}).json()["data"] == []
    assert http.get(f"{V1}/experiments", params={"filter[project_id]": pid, "filter[name]": "big-int"}
                    ).json()["data"] == []


def test_integers_at_the_64_bit_edge_in_metadata_are_kept(http, ids):
    pid = ids["project_id"]
    metadata = {"hi": EDGE[0], "lo": EDGE[1]}
    resp = http.post(f"{V1}/{pid}/datasets", json={"data": {"type": "datasets", "attributes": {
        "name": unique("edge"), "metadata": metadata}}})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["data"]["attributes"]["metadata"] == metadata
    resp = http.post(f"{V1}/experiments", json={"data": {"type": "experiments", "attributes": {
        "project_id": pid, "name": unique("edge"), "metadata": metadata, "config": metadata}}})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["data"]["attributes"]["metadata"] == metadata


@pytest.mark.parametrize("big", BIG, ids=str)
def test_span_intake_refuses_integers_beyond_64_bits(http, big):
    app = unique("app")
    n = str(big).encode()
    good = orjson.dumps(make_span(app))
    bad = orjson.dumps(_meta_span(app, {"metadata": {"n": 0}})).replace(b'"n":0', b'"n":' + n)
    resp = _post_raw(http, INTAKE, b'[{"spans": [' + bad + b"]}]")
    _bad(resp, pointer="/0/spans/0/meta/metadata/n", says="64 bits")
    resp = _post_raw(http, INTAKE, b'{"spans": [' + good + b"," + bad + b"]}")
    assert resp.status_code == 202, resp.text[:300]
    meta = resp.json()["meta"]
    assert (meta["accepted"], meta["rejected"]) == (1, 1)
    assert meta["errors"][0]["source"]["pointer"] == "/spans/1/meta/metadata/n"
    metric = {"join_on": {"span": {"span_id": "1", "trace_id": "t"}}, "label": "l", "metric_type": "json",
              "json_value": {"v": 0}, "timestamp_ms": int(time.time() * 1000)}
    body = orjson.dumps({"data": {"type": "evaluation_metric", "attributes": {"metrics": [metric]}}})
    resp = _post_raw(http, EVAL, body.replace(b'{"v":0}', b'{"v":' + n + b"}"))
    _bad(resp, pointer="/data/attributes/metrics/0/json_value/v", says="64 bits")


def test_span_intake_keeps_integers_at_the_64_bit_edge(http):
    app = unique("app")
    span = make_span(app)
    span["metrics"] = {"hi": EDGE[0], "lo": EDGE[1]}
    assert http.post(INTAKE, json=[event(span)]).status_code == 202
    listed = http.get(f"{V1}/spans/events", params={"filter[ml_app]": app, "filter[from]": "now-1h"})
    assert listed.json()["data"][0]["attributes"]["metrics"] == {"hi": EDGE[0], "lo": EDGE[1]}


def test_storage_checks_match_orjsons_limits():
    from kennel.jsonapi import JSON_INT_MAX, JSON_INT_MIN, ORJSON_MAX_DEPTH, storable, unstorable

    # The checks lean on orjson refusing exactly these; a new orjson that changed them must fail here.
    orjson.dumps(_nest(ORJSON_MAX_DEPTH))
    orjson.dumps([JSON_INT_MIN, JSON_INT_MAX])
    for beyond in (_nest(ORJSON_MAX_DEPTH + 1), JSON_INT_MAX + 1, JSON_INT_MIN - 1):
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(beyond)
    assert storable(_nest(200)) and not storable(_nest(201))
    assert storable(_nest(ORJSON_MAX_DEPTH), max_depth=ORJSON_MAX_DEPTH)
    assert unstorable({"x": [{"a/b~": [1, JSON_INT_MAX + 1]}]})[0] == "/x/0/a~1b~0/1"
    assert unstorable([[1]], max_depth=1)[0] == "/0"
    assert unstorable({"k": True, "n": JSON_INT_MIN}) is None


def test_display_block_integers_beyond_64_bits_are_refused_where_they_are(http, ids):
    body = b'{"data": {"type": "interactions", "attributes": {"interactions": [{"type": "display_block", ' \
           b'"display_block": [{"type": "json", "content": {"x": [%s]}}]}]}}}' % str(2**64).encode()
    resp = _post_raw(http, f"{QUEUES}/{ids['queue_id']}/interactions", body)
    _bad(resp, pointer="/data/attributes/interactions/0/display_block/0/content/x/0", says="64 bits")


def test_experiment_dataset_version_beyond_64_bits_is_refused(http) -> None:
    """Found by the fuzzer: SQLite could not store 2^63 and answered 500."""
    project = http.post("/api/v2/llm-obs/v1/projects", json={"data": {"type": "projects", "attributes": {
        "name": "version-overflow"}}}).json()["data"]["id"]
    for path in ("/api/v2/llm-obs/v1/experiments", "/api/unstable/llm-obs/v1/experiments"):
        r = http.post(path, json={"data": {"type": "experiments", "attributes": {
            "name": "overflow", "project_id": project,
            "dataset_version": 2**63}}})
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["source"]["pointer"] == "/data/attributes/dataset_version"
