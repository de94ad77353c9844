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


NUL_QUERY_PARAMETERS = [
    ("{V1}/projects", "filter[id]"), ("{V1}/projects", "filter[name]"),
    ("{V1}/{pid}/datasets", "filter[id]"), ("{V1}/{pid}/datasets", "filter[name]"),
    ("{V1}/{pid}/datasets/{did}/records", "filter[tags]"),
    ("{V1}/experiments", "filter[id]"), ("{V1}/experiments", "filter[name]"),
    ("{V1}/experiments", "filter[project_id]"), ("{V1}/experiments", "filter[dataset_id]"),
    ("{V1}/experiments", "filter[experiment]"), ("{V1}/experiments", "filter[parent_experiment_id]"),
    ("{V1}/spans/events", "filter[ml_app]"), ("{V1}/spans/events", "filter[trace_id]"),
    ("{V1}/spans/events", "filter[span_name]"), ("{V1}/spans/events", "filter[tag][team]"),
    ("{V1}/spans/events", "filter[query]"),
    ("{QUEUES}", "queueIds"), ("{QUEUES}", "projectId"), ("{V1}/annotated-interactions", "contentIds"),
]


@pytest.mark.parametrize(("url", "name"), NUL_QUERY_PARAMETERS, ids=lambda p: p.split("/")[-1])
def test_nul_in_a_query_parameter_is_a_400_naming_it(http, ids, url, name):
    """SQLite compared and found nothing while PostgreSQL refused to bind the value, a 400 naming nothing."""
    url = url.format(V1=V1, QUEUES=QUEUES, pid=ids["project_id"], did=ids["dataset_id"])
    for value in ("a\x00b", "\x00", "ok,\x00"):
        _bad(http.get(url, params={name: value}), parameter=name, says="NUL")
    # In the parameter's name too: spans take any filter[tag][<key>].
    key = "filter[tag][te\x00am]"
    _bad(http.get(f"{V1}/spans/events", params={key: "x"}), parameter=key, says="NUL")


def test_escaped_nul_in_the_metadata_filter_is_a_400_naming_it(http):
    for raw in ('{"a": "x\\u0000"}', '{"a\\u0000": 1}', '{"tags": ["\\u0000"]}'):
        _bad(http.get(f"{V1}/experiments", params={"filter[metadata]": raw}), parameter="filter[metadata]",
             says="NUL")
    # A backslash followed by the text u0000 is no NUL.
    resp = http.get(f"{V1}/experiments", params={"filter[metadata]": '{"a": "\\\\u0000"}'})
    assert resp.status_code == 200 and resp.json()["data"] == [], resp.text[:300]


def test_nul_in_a_path_id_is_a_404_on_both_databases(http, ids):
    pid, did, eid = ids["project_id"], ids["dataset_id"], ids["experiment_id"]
    for url in (f"{V1}/a%00b/datasets", f"{V1}/{pid}/datasets/a%00b/records", f"{V1}/experiments/a%00b/events",
                "/api/v2/llm-obs/v3/experiments/a%00b/events", f"{V1}/{pid}/datasets/{did}/export?x=1".replace(
                    did, did + "%00"), f"{QUEUES}/a%00b/label-schema"):
        resp = http.get(url)
        assert resp.status_code == 404, (url, resp.text[:300])
        assert "NUL" in resp.json()["errors"][0]["detail"]
    resp = http.patch(f"{V1}/experiments/{eid}%00", json={"data": {"type": "experiments", "attributes": {}}})
    assert resp.status_code == 404, resp.text[:300]


def test_nul_in_stored_json_objects_is_refused_on_both_databases(http, ids):
    """SQLite stored these and PostgreSQL refused them with a 400 naming nothing."""
    pid, eid = ids["project_id"], ids["experiment_id"]
    attrs = {"type": "experiments", "attributes": {"project_id": pid, "name": unique("nul")}}
    cases = [
        ("POST", f"{V1}/{pid}/datasets", {"data": {"type": "datasets", "attributes": {
            "name": unique("nul"), "metadata": {"a": ["x\x00"]}}}}, "/data/attributes/metadata/a/0"),
        ("PATCH", f"{V1}/{pid}/datasets/{ids['dataset_id']}", {"data": {"type": "datasets", "attributes": {
            "metadata": {"k\x00": 1}}}}, "/data/attributes/metadata/k\x00"),
        ("POST", f"{V1}/experiments", {"data": {**attrs, "attributes": {**attrs["attributes"],
                                                                        "config": {"c": "\x00"}}}},
         "/data/attributes/config/c"),
        ("POST", f"{V1}/experiments/{eid}/events", {"data": {"type": "events", "attributes": {"spans": [
            {"trace_id": "t", "span_id": "s", "name": "n", "start_ns": 1, "duration": 1, "meta": {"x": "\x00"}}]}}},
         "/data/attributes/spans/0/meta/x"),
    ]
    for method, url, body, pointer in cases:
        _bad(http.request(method, url, json=body), pointer=pointer, says="NUL")
    # The text \u0000 (a backslash, then u0000) is kept as it was sent.
    resp = http.post(f"{V1}/{pid}/datasets", json={"data": {"type": "datasets", "attributes": {
        "name": unique("text"), "metadata": {"a": "\\u0000"}}}})
    assert resp.status_code == 200 and resp.json()["data"]["attributes"]["metadata"] == {"a": "\\u0000"}


def test_storage_checks_find_nul_characters():
    from kennel.jsonapi import storable, unstorable

    assert unstorable({"a": [1, "x\x00"]}) == ("/a/1", unstorable("\x00")[1])
    assert unstorable({"ok": 2**64, "k\x00": 1})[0] == "/ok"  # document order
    assert unstorable({"k\x00": {"deep": 1}})[0] == "/k\x00" and "key" in unstorable({"k\x00": 1})[1]
    for text in ("\\u0000", "\\\\u0000", "\\\\\\u0000x"):
        assert storable({"t": text}), text
    for text in ("\\\x00", "\\\\\x00", "a\n\x00"):
        assert not storable({"t": text}), text


NOT_INTEGERS = [" 5", "5 ", "1_0", "\u0663", "\uff15", "5\n", "+ 5", "0x5", "1e3", "--5"]


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_integer_parameters_take_ascii_digits_only(http, ids, value):
    """int() reads surrounding spaces, underscores and any script's digits; no HTTP client means those."""
    pid, did = ids["project_id"], ids["dataset_id"]
    records = f"{V1}/{pid}/datasets/{did}/records"
    by_content = f"{V1}/annotated-interactions"
    cases = [(records, "filter[version]", {}), (records, "page[limit]", {}),
             (f"{V1}/projects", "page[limit]", {}), (f"{V1}/{pid}/datasets", "page[limit]", {}),
             (f"{V1}/experiments", "page[limit]", {}),  # documented to clamp, but not to guess
             (f"{V1}/spans/events", "page[limit]", {}),
             (f"{V1}/{pid}/datasets/{did}/export", "version", {}),
             (by_content, "offset", {"contentIds": "x"}), (by_content, "limit", {"contentIds": "x"})]
    for url, name, extra in cases:
        _bad(http.get(url, params={**extra, name: value}), parameter=name, says="ASCII digits")


def test_integer_parameters_take_a_sign_and_leading_zeros(http, ids):
    for value in ("+2", "002", "+0002"):
        resp = http.get(f"{V1}/projects", params={"page[limit]": value})
        assert resp.status_code == 200 and len(resp.json()["data"]) <= 2, resp.text[:300]
    resp = http.get(f"{V1}/annotated-interactions", params={"contentIds": "x", "offset": "-0"})
    assert resp.status_code == 200, resp.text[:300]


@pytest.mark.parametrize("value", ["\u0663", "now-\u0663d", "\uff11\uff12\uff13", "now-\u0661h"], ids=repr)
def test_span_time_bounds_take_ascii_digits_only(http, value):
    _bad(http.get(f"{V1}/spans/events", params={"filter[from]": value}), parameter="filter[from]")
    body = {"data": {"type": "spans", "attributes": {"filter": {"from": value}}}}
    _bad(http.post(f"{V1}/spans/events/search", json=body), pointer="/data/attributes/filter/from")


def _upload(http, pid: str, did: str, body: bytes, filename: str):
    from tests.test_upload import upload

    return upload(http, pid, did, body, filename=filename, ctype="application/octet-stream")


@pytest.mark.parametrize("big", BIG, ids=str)
def test_uploads_refuse_integers_beyond_64_bits(http, big):
    """orjson read them as floats: the upload stored a changed number without a word."""
    from tests.test_dataset_lifecycle_helpers import dataset_attrs, make_dataset, make_project, ok_batch, records
    from tests.test_upload import csv_bytes

    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "keep", "input": 1}])
    n = str(big)
    files = [
        ("d.csv", csv_bytes([["a", "1", "", "", ""], ["b", f'{{"x": [1, {n}]}}', "", "", ""]]), "row 2", "/input/x/1"),
        ("d.csv", csv_bytes([["a", "1", "", f'{{"n": {n}}}', ""]]), "row 1", "/metadata/n"),
        ("d.csv", csv_bytes([["a", n, "", "", ""]]), "row 1", "/input"),
        # Every cell quoted, as some writers do: the quote opens a number here, not a JSON string.
        ("d.csv", b'"id","input"\r\n"a","%s"\r\n' % n.encode(), "row 1", "/input"),
        # Digits in a string make the whole file suspect; each row is still looked at on its own.
        ("d.csv", csv_bytes([["a", '"see 123456789012345678901234"', "", "", ""], ["b", f"[1, {n}]", "", "", ""]]),
         "row 2", "/input/1"),
        ("d.jsonl", b'{"input": 1}\n{"input": 1, "expected_output": {"a": %s}}\n' % n.encode(), "line 2",
         "/expected_output/a"),
        ("d.jsonl", b'{"input": [%s]}\n' % n.encode(), "line 1", "/input/0"),
    ]
    ddtrace = f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload"
    for filename, body, row, pointer in files:
        status, payload = _upload(http, pid, did, body, filename)
        assert status == 400, (filename, body, payload)
        detail = payload["errors"][0]["detail"]
        assert f"{row} " in detail or f"{row}:" in detail, detail
        assert pointer in detail and "64 bits" in detail, detail
        resp = http.post(ddtrace, files={"file": (filename, body, "application/octet-stream")})
        assert resp.status_code == 400, resp.text[:300]
        detail = resp.json()["errors"][0]["detail"]
        assert row in detail and pointer in detail and "64 bits" in detail, detail
    # Past the first chunk the typed route has started its stream: an `error` event names the row.
    late = csv_bytes([[f"r{i}", str(i), "", "", ""] for i in range(5000)] + [["z", f"[{n}]", "", "", ""]])
    status, events = _upload(http, pid, did, late, "d.csv")
    assert status == 200 and events[-1][0] == "error", events[-2:]
    assert "row 5001" in events[-1][1]["message"] and "64 bits" in events[-1][1]["message"], events[-1]
    assert set(records(http, pid, did)) == {"keep"}
    assert dataset_attrs(http, pid, did)["current_version"] == 1


def test_uploads_keep_integers_at_the_64_bit_edge_exactly(http):
    from tests.test_dataset_lifecycle_helpers import make_dataset, make_project, records
    from tests.test_upload import csv_bytes

    pid = make_project(http)
    hi, lo = EDGE
    text = "12345678901234567890123"  # digits in a string, not a number
    for filename, body in (
        ("d.csv", csv_bytes([["a", str(hi), f'"{text}"', f'{{"lo": {lo}}}', ""]])),
        ("d.jsonl", b'{"id": "a", "input": %d, "expected_output": "%s", "metadata": {"lo": %d}}\n' % (hi, text.encode(),
                                                                                                        lo)),
    ):
        did = make_dataset(http, pid)
        status, events = _upload(http, pid, did, body, filename)
        assert status == 200 and events[-1][0] == "completed", events[-2:]
        got = records(http, pid, did)["a"]
        assert (got["input"], got["expected_output"], got["metadata"]) == (hi, text, {"lo": lo}), got


def test_wide_integer_scan_sees_literals_across_its_blocks():
    from kennel.jsonapi import _SCAN_BLOCK, exact_loads, may_hold_wide_int

    for offset in range(-25, 3):
        pad = b"x" * (_SCAN_BLOCK + offset)
        assert may_hold_wide_int(pad + b",18446744073709551616,"), offset
        assert may_hold_wide_int(pad + b",-9223372036854775809,"), offset
        assert not may_hold_wide_int(pad + b',"18446744073709551616",1844674407370955161'), offset
    assert may_hold_wide_int(b"18446744073709551616") and exact_loads("18446744073709551616") == 2**64
    quoted = b'"id","input"\r\n"a","-9223372036854775809"\r\n'
    assert may_hold_wide_int(quoted, csv=True) and not may_hold_wide_int(quoted)
    assert exact_loads(b"[-9223372036854775809]") == [-2**63 - 1]
    with pytest.raises(orjson.JSONDecodeError):
        exact_loads("[NaN, 18446744073709551616]")
