"""Span and evaluation-metric intake: API-key auth, partial acceptance, idempotent retries."""

from __future__ import annotations

import time
import uuid

from tests.conftest import unique

INTAKE = "/api/v2/llmobs"
EVAL = "/api/intake/llm-obs/v2/eval-metric"


def make_span(ml_app: str, *, trace_id: str | None = None, span_id: str | None = None, name: str = "op",
              kind: str = "llm", start_ns: int | None = None, tags: list[str] | None = None,
              parent_id: str = "undefined") -> dict:
    span_id = span_id or str(uuid.uuid4().int >> 65)
    return {"trace_id": trace_id or uuid.uuid4().hex, "span_id": span_id, "parent_id": parent_id, "name": name,
            "start_ns": start_ns or time.time_ns(), "duration": 1234, "status": "ok",
            "meta": {"span": {"kind": kind}, "input": {"messages": [{"role": "user", "content": "hi"}]},
                     "output": {"value": "hello"}, "metadata": {"temperature": 0.1}, "model_name": "m",
                     "model_provider": "p"},
            "metrics": {"input_tokens": 3}, "tags": [f"ml_app:{ml_app}", "env:test", *(tags or [])],
            "_dd": {"span_id": span_id}}


def event(*spans: dict, scope: str | None = None) -> dict:
    e = {"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span", "spans": list(spans)}
    if scope:
        e["_dd.scope"] = scope
    return e


def find(http, **params) -> list[dict]:
    r = http.get("/api/v2/llm-obs/v1/spans/events", params={"filter[from]": "now-1h", "page[limit]": "100", **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_intake_needs_only_the_api_key(server, http):
    app = unique("app")
    payload = [event(make_span(app))]
    import httpx

    with httpx.Client(base_url=server.base_url) as anon:
        assert anon.post(INTAKE, json=payload).status_code == 403
        assert anon.post(INTAKE, json=payload, headers={"DD-API-KEY": "nope"}).status_code == 403
        r = anon.post(INTAKE, json=payload, headers={"DD-API-KEY": server.api_key})
        assert r.status_code == 202, r.text
        assert r.json()["meta"] == {"accepted": 1, "rejected": 0}
    assert len(find(http, **{"filter[ml_app]": app})) == 1


def test_partial_acceptance_and_bad_payloads(http):
    app = unique("app")
    good = make_span(app)
    bad = dict(make_span(app), start_ns="yesterday")
    no_trace = make_span(app)
    del no_trace["trace_id"]
    r = http.post(INTAKE, json=[event(good), event(bad), event(no_trace), {"spans": "nope"}])
    assert r.status_code == 202, r.text
    meta = r.json()["meta"]
    assert (meta["accepted"], meta["rejected"]) == (1, 3)
    assert [e["source"]["pointer"] for e in meta["errors"]] == ["/1/spans/0/start_ns", "/2/spans/0/trace_id",
                                                                "/3/spans"]
    assert [s["id"] for s in find(http, **{"filter[ml_app]": app})] == [good["span_id"]]

    r = http.post(INTAKE, json=[event(bad)])
    assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/0/spans/0/start_ns"
    assert http.post(INTAKE, content=b"[{oops", headers={"content-type": "application/json"}).status_code == 400
    assert http.post(INTAKE, content=b"", headers={"content-type": "application/json"}).status_code == 400
    r = http.post(INTAKE, json=event(make_span(app)))
    assert r.status_code == 202, "a single event object is accepted too"


def test_retried_payload_is_stored_once(http):
    app = unique("app")
    payload = [event(make_span(app), make_span(app), scope="experiments")]
    assert http.post(INTAKE, json=payload).status_code == 202
    assert http.post(INTAKE, json=payload).status_code == 202
    assert len(find(http, **{"filter[ml_app]": app})) == 2


def test_eval_metric_intake_attaches_to_span(http):
    app = unique("app")
    span = make_span(app)
    assert http.post(INTAKE, json=[event(span)]).status_code == 202
    now = int(time.time() * 1000)

    def metric(label, mtype, value, ts=now):
        return {"join_on": {"span": {"span_id": span["span_id"], "trace_id": span["trace_id"]}}, "label": label,
                "metric_type": mtype, f"{mtype}_value": value, "ml_app": app, "timestamp_ms": ts,
                "tags": ["ddtrace.version:4.16.0"], "eval_scope": "span", "event_kind": "evaluation"}

    body = {"data": {"type": "evaluation_metric", "attributes": {"metrics": [
        metric("quality", "score", 0.5, now - 10), metric("quality", "score", 0.9), metric("ok", "boolean", True),
        metric("tone", "categorical", 1)]}}}
    r = http.post(EVAL, json=body)
    assert r.status_code == 202, r.text
    assert r.json()["meta"]["rejected"] == 1
    assert r.json()["meta"]["errors"][0]["source"]["pointer"] == "/data/attributes/metrics/3/categorical_value"
    got = find(http, **{"filter[span_id]": span["span_id"]})[0]["attributes"]["evaluation"]
    assert got["quality"]["value"] == 0.9 and got["ok"]["value"] is True
    r = http.post(EVAL, json={"data": {"type": "wrong", "attributes": {"metrics": []}}})
    assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/data/type"


def test_values_the_database_refuses_fail_alone(http):
    app = unique("app")
    good = make_span(app)
    nul = make_span(app)
    nul["meta"]["input"] = {"value": "bad\u0000byte"}
    huge = dict(make_span(app), start_ns=2**64)
    r = http.post(INTAKE, json=[event(good, nul, huge)])
    assert r.status_code == 202, r.text
    meta = r.json()["meta"]
    assert (meta["accepted"], [e["source"]["pointer"] for e in meta["errors"]]) == \
        (1, ["/0/spans/1", "/0/spans/2/start_ns"])
    assert [s["id"] for s in find(http, **{"filter[ml_app]": app})] == [good["span_id"]]
