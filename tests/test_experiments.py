"""Experiments CRUD and events, with the typed client and ddtrace's wire shapes over HTTP."""

from __future__ import annotations

import time
import uuid

from datadog_api_client.v2.model.llm_obs_delete_experiments_data_attributes_request import (
    LLMObsDeleteExperimentsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_experiments_data_request import LLMObsDeleteExperimentsDataRequest
from datadog_api_client.v2.model.llm_obs_delete_experiments_request import LLMObsDeleteExperimentsRequest
from datadog_api_client.v2.model.llm_obs_event_type import LLMObsEventType
from datadog_api_client.v2.model.llm_obs_experiment_data_attributes_request import (
    LLMObsExperimentDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_experiment_data_request import LLMObsExperimentDataRequest
from datadog_api_client.v2.model.llm_obs_experiment_events_data_attributes_request import (
    LLMObsExperimentEventsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_experiment_events_data_request import LLMObsExperimentEventsDataRequest
from datadog_api_client.v2.model.llm_obs_experiment_events_request import LLMObsExperimentEventsRequest
from datadog_api_client.v2.model.llm_obs_experiment_metric import LLMObsExperimentMetric
from datadog_api_client.v2.model.llm_obs_experiment_request import LLMObsExperimentRequest
from datadog_api_client.v2.model.llm_obs_experiment_span import LLMObsExperimentSpan
from datadog_api_client.v2.model.llm_obs_experiment_span_meta import LLMObsExperimentSpanMeta
from datadog_api_client.v2.model.llm_obs_experiment_span_status import LLMObsExperimentSpanStatus
from datadog_api_client.v2.model.llm_obs_experiment_status import LLMObsExperimentStatus
from datadog_api_client.v2.model.llm_obs_experiment_type import LLMObsExperimentType
from datadog_api_client.v2.model.llm_obs_experiment_update_data_attributes_request import (
    LLMObsExperimentUpdateDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_experiment_update_data_request import LLMObsExperimentUpdateDataRequest
from datadog_api_client.v2.model.llm_obs_experiment_update_request import LLMObsExperimentUpdateRequest
from datadog_api_client.v2.model.llm_obs_metric_score_type import LLMObsMetricScoreType

from tests.conftest import unique

V1 = "/api/v2/llm-obs/v1/experiments"
UNSTABLE = "/api/unstable/llm-obs/v1/experiments"


def _project(http, name: str | None = None) -> str:
    r = http.post("/api/unstable/llm-obs/v1/projects",
                  json={"data": {"type": "projects", "attributes": {"name": name or unique("xp-proj")}}})
    assert r.status_code == 200, r.text
    return r.json()["data"]["id"]


def _typed_create(typed, project_id: str, name: str, **attrs):
    return typed.create_llm_obs_experiment(LLMObsExperimentRequest(data=LLMObsExperimentDataRequest(
        attributes=LLMObsExperimentDataAttributesRequest(name=name, project_id=project_id, **attrs),
        type=LLMObsExperimentType.EXPERIMENTS)))


def _dd_create(http, project_id: str, name: str, **extra) -> dict:
    attrs = {"name": name, "description": "", "project_id": project_id, "config": {},
             "metadata": {"tags": ["ddtrace.version:4.16.0"]}, "ensure_unique": True, "run_count": 1, **extra}
    r = http.post(UNSTABLE, json={"data": {"type": "experiments", "attributes": attrs}})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _update(typed, eid: str, **attrs):
    return typed.update_llm_obs_experiment(eid, LLMObsExperimentUpdateRequest(data=LLMObsExperimentUpdateDataRequest(
        attributes=LLMObsExperimentUpdateDataAttributesRequest(**attrs), type=LLMObsExperimentType.EXPERIMENTS)))


def test_typed_experiment_lifecycle(typed, http):
    pid = _project(http)
    before_ms = int(time.time() * 1000)
    created = _typed_create(typed, pid, "eval-suite", description="first", config={"model": "x"},
                            metadata={"team": "ml"}, run_count=2)
    exp = created.data
    assert exp.attributes.experiment == "eval-suite"
    run_name = exp.attributes.name
    assert run_name.startswith("eval-suite-")
    assert int(run_name.rsplit("-", 1)[1]) >= before_ms
    assert exp.attributes.project_id == pid
    assert exp.attributes.config == {"model": "x"}
    assert exp.attributes.run_count == 2

    same = _typed_create(typed, pid, "plain-name", ensure_unique=False)
    assert same.data.attributes.name == "plain-name"

    updated = _update(typed, exp.id, status=LLMObsExperimentStatus.FAILED, error="boom",
                      description="second", metadata={"team": "ml", "branch": "main"})
    attrs = updated.data.attributes
    assert (str(attrs.status), attrs.error, attrs.description) == ("failed", "boom", "second")
    assert attrs.metadata == {"team": "ml", "branch": "main"}
    assert attrs.name == run_name

    listed = typed.list_llm_obs_experiments(filter_id=exp.id)
    assert [e.id for e in listed.data] == [exp.id]
    assert str(listed.data[0].attributes.status) == "failed"

    typed.delete_llm_obs_experiments(LLMObsDeleteExperimentsRequest(data=LLMObsDeleteExperimentsDataRequest(
        attributes=LLMObsDeleteExperimentsDataAttributesRequest(experiment_ids=[exp.id]),
        type=LLMObsExperimentType.EXPERIMENTS)))
    assert typed.list_llm_obs_experiments(filter_id=exp.id).data == []
    deleted = typed.list_llm_obs_experiments(filter_id=exp.id, filter_is_deleted=True).data
    assert [e.id for e in deleted] == [exp.id]
    assert deleted[0].attributes.deleted_at is not None


def test_ddtrace_create_and_patch_answer_200_with_the_experiment(http):
    pid = _project(http)
    data = _dd_create(http, pid, "dd-exp")
    assert data["attributes"]["experiment"] == "dd-exp"
    assert data["attributes"]["name"].startswith("dd-exp-")
    for key in ("metadata", "dataset_version", "experiment", "description", "run_count", "name", "project_id",
                "dataset_id", "config", "created_at", "updated_at"):
        assert key in data["attributes"], key
    r = http.patch(f"{UNSTABLE}/{data['id']}", json={"data": {"type": "experiments",
                                                               "attributes": {"status": "running"}}})
    assert r.status_code == 200
    assert r.json()["data"]["attributes"]["status"] == "running"
    got = http.get(V1, params={"filter[id]": data["id"]}).json()["data"][0]["attributes"]
    assert got["status"] == "running" and got["metadata"]["tags"] == ["ddtrace.version:4.16.0"]


def test_list_filters_and_pagination(typed, http):
    pid = _project(http)
    other = _project(http)
    logical = unique("logical")
    a = _dd_create(http, pid, logical, metadata={"tags": ["git.commit.sha:abc", "team:ml"], "k": {"x": 1}})
    b = _dd_create(http, pid, logical, metadata={"tags": ["git.commit.sha:def", "team:ml"]})
    c = _dd_create(http, pid, unique("other"), parent_experiment_id=a["id"])
    d = _dd_create(http, other, logical, parent_experiment_id=b["id"])

    def ids(**params):
        out, cursor = [], None
        for _ in range(20):
            q = dict(params)
            if cursor:
                q["page[cursor]"] = cursor
            r = http.get(V1, params=q)
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(e["id"] for e in body["data"])
            cursor = body["meta"]["after"]
            if not cursor:
                assert cursor == ""
                return out
        raise AssertionError("pagination did not end")

    assert ids(**{"filter[project_id]": pid}) == [c["id"], b["id"], a["id"]], "newest first"
    assert ids(**{"filter[project_id]": pid, "page[limit]": "1"}) == [c["id"], b["id"], a["id"]]
    assert ids(**{"filter[experiment]": logical}) == [d["id"], b["id"], a["id"]]
    assert ids(**{"filter[name]": a["attributes"]["name"]}) == [a["id"]]
    assert ids(**{"filter[project_id]": pid, "filter[metadata]": '{"tags":["git.commit.sha:abc"]}'}) == [a["id"]]
    assert ids(**{"filter[project_id]": pid, "filter[metadata]": '{"tags":["team:ml"]}',
                  "page[limit]": "1"}) == [b["id"], a["id"]]
    assert ids(**{"filter[metadata]": '{"k":{"x":1}}', "filter[project_id]": pid}) == [a["id"]]
    assert ids(**{"filter[metadata]": '{"k":{"x":2}}', "filter[project_id]": pid}) == []
    r = http.get(V1 + f"?filter[parent_experiment_id]={a['id']}&filter[parent_experiment_id]={b['id']}")
    assert [e["id"] for e in r.json()["data"]] == [d["id"], c["id"]]
    assert ids(**{"filter[id]": f"{a['id']},{d['id']}"}) == [d["id"], a["id"]]
    typed_list = typed.list_llm_obs_experiments(filter_project_id=pid, filter_metadata='{"tags":["team:ml"]}',
                                                page_limit=1)
    assert [e.id for e in typed_list.data] == [b["id"]] and typed_list.meta.after
    assert [e.id for e in typed.list_llm_obs_experiments(filter_experiment=logical, filter_project_id=other).data] \
        == [d["id"]]
    assert ids(**{"filter[project_id]": pid, "filter[is_deleted]": "true"}) == []

    for params, name in (({"filter[metadata]": "{nope"}, "filter[metadata]"),
                         ({"filter[metadata]": "[1]"}, "filter[metadata]"),
                         ({"filter[is_deleted]": "maybe"}, "filter[is_deleted]"),
                         ({"page[cursor]": "garbage!"}, "page[cursor]"),
                         ({"page[limit]": "0"}, "page[limit]")):
        r = http.get(V1, params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["errors"][0]["source"]["parameter"] == name


def test_bad_requests_name_the_field(http):
    pid = _project(http)
    cases = [
        ({"data": {"type": "experiments", "attributes": {"project_id": pid}}}, 400, "/data/attributes/name"),
        ({"data": {"type": "nope", "attributes": {"name": "x", "project_id": pid}}}, 400, "/data/type"),
        ({"data": {"type": "experiments", "attributes": {"name": "x", "project_id": str(uuid.uuid4())}}}, 404,
         "/data/attributes/project_id"),
        ({"data": {"type": "experiments", "attributes": {"name": "x", "project_id": pid,
                                                         "dataset_id": str(uuid.uuid4())}}}, 404,
         "/data/attributes/dataset_id"),
        ({"data": {"type": "experiments", "attributes": {"name": "x", "project_id": pid, "run_count": 0}}}, 400,
         "/data/attributes/run_count"),
    ]
    for body, status, pointer in cases:
        r = http.post(V1, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["errors"][0]["source"]["pointer"] == pointer
    eid = _dd_create(http, pid, "x")["id"]
    r = http.patch(f"{V1}/{eid}", json={"data": {"type": "experiments", "attributes": {"status": "done"}}})
    assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/data/attributes/status"
    assert http.patch(f"{V1}/{uuid.uuid4()}", json={"data": {"type": "experiments",
                                                             "attributes": {"status": "running"}}}).status_code == 404
    r = http.post(f"{V1}/delete", json={"data": {"type": "experiments",
                                                 "attributes": {"experiment_ids": [eid, str(uuid.uuid4())]}}})
    assert r.status_code == 404
    assert http.get(V1, params={"filter[id]": eid}).json()["data"], "a failed delete deletes nothing"
    r = http.post(f"{V1}/delete", json={"data": {"type": "experiments", "attributes": {"experiment_ids": []}}})
    assert r.status_code == 400
    r = http.post(V1, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400


def _span(trace_id: str, span_id: str, start_ns: int, eid: str, record_id: str, **meta) -> dict:
    return {"trace_id": trace_id, "span_id": span_id, "parent_id": "undefined", "name": "task",
            "start_ns": start_ns, "duration": 1500, "status": "ok",
            "meta": {"span": {"kind": "experiment"}, "input": {"q": record_id}, "output": "out-" + record_id,
                     "expected_output": {"a": record_id}, "metadata": {"m": 1}, **meta},
            "metrics": {}, "tags": [f"experiment_id:{eid}", f"dataset_record_id:{record_id}", "ml_app:kennel-tests",
                                    "run_id:r1"],
            "_dd": {"scope": "experiments", "span_id": span_id, "trace_id": trace_id}}


def _dd_metric(eid, span_id, trace_id, label, metric_type, value, ts, **extra):
    return {"metric_source": "custom", "span_id": span_id, "trace_id": trace_id, "timestamp_ms": ts,
            "metric_type": metric_type, "label": label, f"{metric_type}_value": value, "error": None,
            "tags": [], "experiment_id": eid, "status": "OK", **extra}


def test_events_join_intake_spans_and_metrics_in_any_order(typed, http, server):
    pid = _project(http)
    eid = _dd_create(http, pid, "joined")["id"]
    now = time.time_ns()
    ts = int(now / 1e6)
    trace = uuid.uuid4().hex
    spans = [_span(trace, str(1000 + i), now + i, eid, f"rec-{i}") for i in range(3)]
    # Metrics first, for spans the server has not seen yet.
    metrics = [_dd_metric(eid, s["span_id"], trace, "exact", "boolean", i % 2 == 0, ts, reasoning="why")
               for i, s in enumerate(spans)]
    metrics.append(_dd_metric(eid, spans[0]["span_id"], trace, "score", "score", 4, ts, assessment="pass"))
    metrics.append(_dd_metric(eid, spans[1]["span_id"], trace, "cat", "categorical", "good", ts))
    metrics.append(_dd_metric(eid, spans[2]["span_id"], trace, "js", "json", {"k": [1]}, ts))
    body = {"data": {"type": "experiments", "attributes": {
        "scope": "experiments", "metrics": metrics, "tags": [f"experiment_id:{eid}", "run_id:r1"]}}}
    r = http.post(f"{UNSTABLE}/{eid}/events", json=body)
    assert r.status_code == 202, r.text
    summary = {"data": {"type": "experiments", "attributes": {"scope": "experiments", "tags": [], "metrics": [
        {"metric_source": "summary", "span_id": "", "trace_id": "", "timestamp_ms": ts, "metric_type": "score",
         "label": "avg", "score_value": 0.5, "error": None, "tags": [], "experiment_id": eid}]}}}
    assert http.post(f"{UNSTABLE}/{eid}/events", json=summary).status_code == 202
    # Then the spans, through the intake with the API key only (reverse order on the wire).
    intake = [{"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span", "spans": [s],
               "_dd.scope": "experiments"} for s in reversed(spans)]
    r = http.post("/api/v2/llmobs", json=intake, headers={"DD-APPLICATION-KEY": ""})
    assert r.status_code == 202, r.text

    pulled = http.get(f"{UNSTABLE}/{eid}/events?include[eval_metrics]=true")
    assert pulled.status_code == 200
    attrs = pulled.json()["data"]["attributes"]
    assert [s["span_id"] for s in attrs["spans"]] == ["1000", "1001", "1002"], "span (start) order"
    first = attrs["spans"][0]
    assert first["dataset_record_id"] == "rec-0"
    assert first["meta"]["input"] == {"q": "rec-0"} and first["meta"]["output"] == "out-rec-0"
    assert {m["label"]: m.get(f"{m['metric_type']}_value") for m in first["eval_metrics"]} == \
        {"exact": True, "score": 4.0}
    assert [m["label"] for m in attrs["summary_metrics"]] == ["avg"]

    v1 = typed.list_llm_obs_experiment_events_v1(eid)
    assert [s.attributes.span_id for s in v1.data] == ["1000", "1001", "1002"]
    v2 = typed.list_llm_obs_experiment_events_v2(eid)
    assert len(v2.data.attributes.spans) == 3 and v2.data.attributes.summary_metrics[0].score_value == 0.5
    seen, cursor = [], None
    for _ in range(5):
        kwargs = {"page_limit": 2}
        if cursor:
            kwargs["page_cursor"] = cursor
        page = typed.list_llm_obs_experiment_events(eid, **kwargs)
        seen.extend(s.span_id for s in page.data.attributes.spans)
        cursor = page.meta.after
        if not cursor:
            break
    assert seen == ["1000", "1001", "1002"]


def test_typed_events_push_with_inline_spans(typed, http):
    pid = _project(http)
    eid = _typed_create(typed, pid, "typed-events").data.id
    now = time.time_ns()
    trace = uuid.uuid4().hex
    span = LLMObsExperimentSpan(
        dataset_id=str(uuid.uuid4()), project_id=pid, span_id="77", trace_id=trace, name="inline",
        start_ns=now, duration=10, status=LLMObsExperimentSpanStatus.OK, tags=["dataset_record_id:r-77"],
        meta=LLMObsExperimentSpanMeta(input={"q": 1}, output={"a": 2}, expected_output={"a": 2}))
    metric = LLMObsExperimentMetric(label="acc", metric_type=LLMObsMetricScoreType.SCORE, score_value=0.75,
                                    span_id="77", timestamp_ms=int(now / 1e6))
    typed.create_llm_obs_experiment_events(eid, LLMObsExperimentEventsRequest(data=LLMObsExperimentEventsDataRequest(
        attributes=LLMObsExperimentEventsDataAttributesRequest(metrics=[metric], spans=[span]),
        type=LLMObsEventType.EVENTS)))
    got = typed.list_llm_obs_experiment_events_v2(eid).data.attributes
    assert [s.span_id for s in got.spans] == ["77"]
    assert got.spans[0].dataset_record_id == "r-77"
    assert got.spans[0].eval_metrics[0].score_value == 0.75


def test_events_errors(http):
    pid = _project(http)
    eid = _dd_create(http, pid, "bad-events")["id"]
    ok_metric = _dd_metric(eid, "1", "t", "x", "score", 1, int(time.time() * 1000))
    r = http.post(f"{UNSTABLE}/{uuid.uuid4()}/events",
                  json={"data": {"type": "experiments", "attributes": {"metrics": [ok_metric]}}})
    assert r.status_code == 404
    bad = dict(ok_metric, score_value="high")
    r = http.post(f"{UNSTABLE}/{eid}/events",
                  json={"data": {"type": "experiments", "attributes": {"metrics": [ok_metric, bad]}}})
    assert r.status_code == 400
    assert r.json()["errors"][0]["source"]["pointer"] == "/data/attributes/metrics/1/score_value"
    r = http.post(f"{UNSTABLE}/{eid}/events",
                  json={"data": {"type": "experiments", "attributes": {"metrics": [dict(ok_metric, metric_type="x")]}}})
    assert r.status_code == 400 and "metric_type" in r.json()["errors"][0]["detail"]
    doc = http.get(f"{UNSTABLE}/{eid}/events").json()["data"]["attributes"]
    assert doc == {"spans": [], "summary_metrics": []}, "a rejected push stores nothing"
    # Old timestamps are accepted (rerun_evaluators re-uses them): no 24 h rule here.
    old = _dd_metric(eid, "", "", "old", "score", 1, 1_000_000_000_000, metric_source="summary")
    assert http.post(f"{UNSTABLE}/{eid}/events",
                     json={"data": {"type": "experiments", "attributes": {"metrics": [old]}}}).status_code == 202
    assert http.get(f"{UNSTABLE}/{eid}/events").json()["data"]["attributes"]["summary_metrics"][0]["label"] == "old"
    assert http.get(f"{UNSTABLE}/{uuid.uuid4()}/events").status_code == 404


def test_dataset_reference_sets_version_and_last_used(typed, http, server):
    pid = _project(http)
    r = http.post(f"/api/unstable/llm-obs/v1/{pid}/datasets",
                  json={"data": {"type": "datasets", "attributes": {"name": unique("ds"), "description": ""}}})
    assert r.status_code == 200, r.text
    did = r.json()["data"]["id"]
    r = http.post(f"/api/v2/llm-obs/v1/{pid}/datasets/{did}/batch_update", json={"data": {
        "type": "datasets", "id": did, "attributes": {"insert_records": [{"input": {"q": 1}, "id": "r1"}],
                                                      "create_new_version": True, "deduplicate": True}}})
    assert r.status_code == 200, r.text
    exp = _typed_create(typed, pid, "with-ds", dataset_id=did).data
    assert exp.attributes.dataset_id == did and exp.attributes.dataset_version == 1
    r = http.post(V1, json={"data": {"type": "experiments", "attributes": {
        "name": "x", "project_id": pid, "dataset_id": did, "dataset_version": 7}}})
    assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/data/attributes/dataset_version"
    listed = http.get(V1, params={"filter[dataset_id]": did, "include[dataset_names]": "true"}).json()["data"]
    assert [e["id"] for e in listed] == [exp.id] and listed[0]["attributes"]["dataset_name"].startswith("ds-")

    from sqlalchemy import select

    from kennel.datasets.models import Dataset, DatasetVersion
    from kennel.db.engine import make_engine
    from kennel.db.session import make_sessionmaker, unit_of_work

    engine = make_engine(server.database_url)
    try:
        with unit_of_work(make_sessionmaker(engine), write=False) as session:
            last_used = session.scalar(select(DatasetVersion.last_used).join(
                Dataset, Dataset.pk == DatasetVersion.dataset_pk).where(Dataset.id == did,
                                                                         DatasetVersion.version_number == 1))
    finally:
        engine.dispose()
    assert last_used is not None
