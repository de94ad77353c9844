"""Span list and search with the typed client and ddtrace's get_spans; spans_for_trace for annotations."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_search_spans_request import LLMObsSearchSpansRequest
from datadog_api_client.v2.model.llm_obs_search_spans_request_attributes import LLMObsSearchSpansRequestAttributes
from datadog_api_client.v2.model.llm_obs_search_spans_request_data import LLMObsSearchSpansRequestData
from datadog_api_client.v2.model.llm_obs_search_spans_request_type import LLMObsSearchSpansRequestType
from datadog_api_client.v2.model.llm_obs_span_filter import LLMObsSpanFilter
from datadog_api_client.v2.model.llm_obs_span_page_query import LLMObsSpanPageQuery

from tests.conftest import run_ddtrace, unique
from tests.test_intake import INTAKE, event, make_span


def _seed(http):
    app = unique("app")
    trace = uuid.uuid4().hex
    base = time.time_ns() - 5 * 10**9
    spans = [
        make_span(app, trace_id=trace, span_id="11", name="root", kind="workflow", start_ns=base),
        make_span(app, trace_id=trace, span_id="12", name="call", kind="llm", start_ns=base + 1000,
                  parent_id="11", tags=["user:alice"]),
        make_span(app, trace_id=trace, span_id="13", name="tool", kind="tool", start_ns=base + 2000,
                  parent_id="11", tags=["user:bob"]),
        make_span(app, span_id="14", name="call", kind="llm", start_ns=base + 3000, tags=["user:alice"]),
        # Two days old: outside the default window, inside now-7d.
        make_span(app, span_id="15", name="old", kind="llm", start_ns=time.time_ns() - 2 * 86400 * 10**9),
    ]
    assert http.post(INTAKE, json=[event(s) for s in spans]).status_code == 202
    return app, trace


def _search(typed, **flt):
    page = flt.pop("page", None)
    sort = flt.pop("sort", None)
    attrs = LLMObsSearchSpansRequestAttributes(filter=LLMObsSpanFilter(**flt))
    if page:
        attrs.page = page
    if sort:
        attrs.sort = sort
    return typed.search_llm_obs_spans(LLMObsSearchSpansRequest(data=LLMObsSearchSpansRequestData(
        attributes=attrs, type=LLMObsSearchSpansRequestType.SPANS)))


def test_typed_list_and_search_filters(typed, http):
    app, trace = _seed(http)
    ids = lambda resp: [s.attributes.span_id for s in resp.data]  # noqa: E731
    assert ids(typed.list_llm_obs_spans(filter_ml_app=app, sort="timestamp")) == ["11", "12", "13", "14"]
    assert ids(typed.list_llm_obs_spans(filter_ml_app=app)) == ["14", "13", "12", "11"], "newest first by default"
    assert ids(typed.list_llm_obs_spans(filter_ml_app=app, filter_from="now-7d", sort="timestamp"))[0] == "15"
    assert ids(typed.list_llm_obs_spans(filter_trace_id=trace, sort="timestamp")) == ["11", "12", "13"]
    assert ids(typed.list_llm_obs_spans(filter_span_id="13", filter_ml_app=app)) == ["13"]
    assert ids(typed.list_llm_obs_spans(filter_ml_app=app, filter_span_kind="llm")) == ["14", "12"]
    assert ids(typed.list_llm_obs_spans(filter_ml_app=app, filter_span_name="tool")) == ["13"]
    iso_from = (datetime.now(UTC) - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    iso_to = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(typed.list_llm_obs_spans(filter_ml_app=app, filter_from=iso_from, filter_to=iso_to)) == ["15"]
    q = f"@ml_app:{app} user:alice"
    assert ids(typed.list_llm_obs_spans(filter_query=q)) == ["14", "12"]
    assert ids(typed.list_llm_obs_spans(filter_query=f"@ml_app:{app} @meta.span.kind:llm -user:alice")) == []
    assert ids(typed.list_llm_obs_spans(filter_query=f"@ml_app:{app} user:b*")) == ["13"]

    span = typed.list_llm_obs_spans(filter_span_id="12", filter_ml_app=app).data[0].attributes
    assert span.ml_app == app and span.span_kind == "llm" and span.parent_id == "11"
    assert span.input.messages[0].content == "hi" and span.output.value == "hello"

    assert ids(_search(typed, ml_app=app, span_kind="llm")) == ["14", "12"]
    assert ids(_search(typed, query=f"@trace_id:{trace} @name:call")) == ["12"]
    assert ids(_search(typed, ml_app=app, tags={"user": "bob"})) == ["13"]

    seen, cursor = [], None
    for _ in range(10):
        page = LLMObsSpanPageQuery(limit=2)
        if cursor:
            page.cursor = cursor
        resp = _search(typed, ml_app=app, _from="now-7d", page=page, sort="timestamp")
        seen.extend(ids(resp))
        cursor = getattr(resp.meta.page, "after", None)
        if not cursor:
            break
    assert seen == ["15", "11", "12", "13", "14"]


def test_bad_filters_are_400(typed, http):
    for params, name in (({"filter[from]": "yesterday-ish"}, "filter[from]"), ({"filter[to]": "now-3x"}, "filter[to]"),
                         ({"sort": "duration"}, "sort"), ({"filter[query]": "@nope:1"}, "filter[query]"),
                         ({"filter[query]": "freetext"}, "filter[query]"), ({"page[limit]": "0"}, "page[limit]"),
                         ({"page[cursor]": "!!"}, "page[cursor]")):
        r = http.get("/api/v2/llm-obs/v1/spans/events", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["errors"][0]["source"]["parameter"] == name
    try:
        _search(typed, _from="not a time")
    except ApiException as exc:
        assert exc.status == 400
    else:
        raise AssertionError("expected a 400")
    r = http.post("/api/v2/llm-obs/v1/spans/events/search",
                  json={"data": {"type": "spans", "attributes": {"sort": "-size"}}})
    assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/data/attributes/sort"


def test_ddtrace_get_spans(server, http):
    app = unique("ddapp")
    out = run_ddtrace(server, """
with LLMObs.workflow(name="outer") as wf:
    LLMObs.annotate(span=wf, input_data="question", output_data="answer", tags={"utterance_id": "u-1"})
    with LLMObs.llm(model_name="gpt", model_provider="openai", name="inner") as llm:
        LLMObs.annotate(span=llm, input_data=[{"role": "user", "content": "hi"}],
                        output_data=[{"role": "assistant", "content": "hello"}])
LLMObs.flush()
import time
for _ in range(50):
    spans = LLMObs.get_spans(limit=1)
    if len(spans) >= 2:
        break
    time.sleep(0.2)
tagged = LLMObs.get_spans(tags={"utterance_id": "u-1"})
print(json.dumps({"names": sorted(s["name"] for s in spans), "tagged": [s["name"] for s in tagged],
                  "kinds": sorted(s["span_kind"] for s in spans)}))
""", ml_app=app)
    assert out["names"] == ["inner", "outer"]
    assert out["kinds"] == ["llm", "workflow"]
    assert out["tagged"] == ["outer"]


def test_spans_for_trace(server, http):
    from kennel.db.engine import make_engine
    from kennel.db.session import make_sessionmaker, unit_of_work
    from kennel.spans.service import spans_for_trace

    _, trace = _seed(http)
    engine = make_engine(server.database_url)
    try:
        with unit_of_work(make_sessionmaker(engine), write=False) as session:
            first, cursor = spans_for_trace(session, trace_id=trace, limit=2)
            rest, end = spans_for_trace(session, trace_id=trace, cursor=cursor, limit=2)
            none, _ = spans_for_trace(session, trace_id="f" * 32)
    finally:
        engine.dispose()
    assert [e["id"] for e in first] == ["11", "12"] and cursor
    assert [e["id"] for e in rest] == ["13"] and end is None
    assert none == []
    assert first[0]["type"] == "span" and first[0]["attributes"]["trace_id"] == trace
