"""Annotation queues end to end, part two: annotations (upsert, per-item errors, the seed's delete),
cascades and reads, through the typed client."""

from __future__ import annotations

import time
import uuid

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_annotation_label_value import LLMObsAnnotationLabelValue
from datadog_api_client.v2.model.llm_obs_content_block import LLMObsContentBlock
from datadog_api_client.v2.model.llm_obs_content_block_type import LLMObsContentBlockType
from datadog_api_client.v2.model.llm_obs_trace_interaction_type import LLMObsTraceInteractionType

from tests.conftest import unique
from tests.test_annotations_helpers import (  # noqa: F401 (scored is a fixture)
    QUEUES,
    SUITE_KEY,
    T,
    add,
    annotated,
    blocks,
    create_queue,
    delete_annotations,
    ids_by_name,
    label,
    parsed,
    scored,
    standard_labels,
    trace,
    upsert,
    values,
)

# --- annotations --------------------------------------------------------------------------------


def test_upsert_annotations_validates_each_item(typed, server):
    queue = create_queue(typed, labels=standard_labels())
    qid, ids = queue.data.id, ids_by_name(queue)
    traces = [i.id for i in add(typed, qid, [trace(unique("t")) for _ in range(9)])]
    q, topic, correct, notes = ids["quality"], ids["topic"], ids["correct"], ids["notes"]
    cases = [
        (traces[0], values(**{q: 4.0, topic: "billing", correct: True, notes: "fine"}), None),
        (traces[1], values(**{q: 4.0, "no-such-label": 1.0}), "unknown label"),
        (traces[2], values(**{q: 4.0, topic: "returns"}), "'topic': categorical value 'returns' is not one of"),
        (traces[3], values(**{q: 6.0}), "'quality': score 6 is outside [1, 5]"),
        (traces[4], values(**{q: 3.5}), "'quality': score 3.5 is not an integer"),
        (traces[5], values(**{q: 2.0, correct: "yes"}), "'correct': a boolean label needs true or false"),
        (traces[6], values(**{topic: "billing"}), "'quality': missing, and the label is required"),
        (traces[7], values(**{q: 0.0}), "'quality': score 0 is outside"),
        ("00000000-0000-0000-0000-000000000000", values(**{q: 1.0}), "not found in queue"),
    ]
    result = upsert(typed, qid, [(iid, lv) for iid, lv, _ in cases])
    assert [a.interaction_id for a in result.annotations] == [traces[0]]
    stored = result.annotations[0]
    assert stored.created_by == stored.modified_by == SUITE_KEY
    assert {lv.label_schema_id: lv.value for lv in stored.label_values} == {
        q: 4.0, topic: "billing", correct: True, notes: "fine"}
    assert {lv.name_when_saved for lv in stored.label_values} == {"quality", "topic", "correct", "notes"}
    errors = {e.interaction_id: e.error for e in result.errors}
    assert len(result.errors) == len(cases) - 1
    for iid, _, expected in cases[1:]:
        assert expected in errors[iid], (expected, errors[iid])

    shown = {i.id: i for i in annotated(typed, qid)}
    assert [len(shown[t].annotations) for t in traces[:8]] == [1, 0, 0, 0, 0, 0, 0, 0], "rejected items store nothing"
    read = shown[traces[0]].annotations[0]
    assert read.id == stored.id and read.interaction_id == traces[0]
    assert read.label_values[q]["value"] == 4.0 and read.label_values[topic]["name_when_saved"] == "topic"


def test_assessment_and_reasoning_follow_the_label(typed, scored):
    qid, labels, (first, second) = scored
    with_extras = [LLMObsAnnotationLabelValue(label_schema_id=labels["quality"], value=5.0),
                   LLMObsAnnotationLabelValue(label_schema_id=labels["correct"], value=False, assessment="fail",
                                              reasoning="wrong total")]
    not_allowed = [LLMObsAnnotationLabelValue(label_schema_id=labels["quality"], value=5.0, assessment="pass")]
    result = upsert(typed, qid, [(first, with_extras), (second, not_allowed)])
    assert len(result.annotations) == 1
    saved = {lv.label_schema_id: lv for lv in result.annotations[0].label_values}
    assert (str(saved[labels["correct"]].assessment), saved[labels["correct"]].reasoning) == ("fail", "wrong total")
    assert "'quality'" in result.errors[0].error and "has_assessment" in result.errors[0].error


def test_second_upsert_by_same_key_updates(typed, server, scored):
    qid, labels, (first, _) = scored
    q = labels["quality"]
    created = upsert(typed, qid, [(first, values(**{q: 2.0}))]).annotations[0]
    updated = upsert(typed, qid, [(first, values(**{q: 5.0, labels["notes"]: "changed my mind"}))]).annotations[0]
    assert updated.id == created.id and updated.created_at == created.created_at
    assert updated.modified_at >= created.modified_at
    assert {lv.label_schema_id: lv.value for lv in updated.label_values} == {q: 5.0, labels["notes"]: "changed my mind"}

    name = unique("second-reviewer")
    api_key, app_key = server.new_key(name)
    with server.client(headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as other:
        resp = other.post(f"{QUEUES}/{qid}/annotations", json={"data": {"type": "annotations", "attributes": {
            "annotations": [{"interaction_id": first, "label_values": [{"label_schema_id": q, "value": 1}]}]}}})
    assert resp.status_code == 200, resp.text
    theirs = resp.json()["data"]["attributes"]["annotations"][0]
    assert theirs["id"] != created.id and theirs["created_by"] == name
    shown = {i.id: i for i in annotated(typed, qid)}[first].annotations
    assert sorted(a.created_by for a in shown) == sorted([SUITE_KEY, name])


def test_upsert_rejections_for_the_whole_request(typed, http, scored):
    qid, labels, (first, _) = scored
    url = f"{QUEUES}/{qid}/annotations"
    resp = http.post(url, json={"data": {"type": "annotations", "attributes": {"annotations": []}}})
    assert resp.status_code == 400 and resp.json()["errors"][0]["source"]["pointer"] == "/data/attributes/annotations"
    resp = http.post(url, json={"data": {"type": "annotations", "attributes": {"annotations": [
        {"interaction_id": first}]}}})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["source"]["pointer"] == "/data/attributes/annotations/0/label_values"
    dup = [{"interaction_id": first, "label_values": [{"label_schema_id": labels["quality"], "value": v}]}
           for v in (1, 2)]
    body = http.post(url, json={"data": {"type": "annotations", "attributes": {"annotations": dup}}}).json()
    assert len(body["data"]["attributes"]["annotations"]) == 1 and "more than once" in body["data"]["attributes"][
        "errors"][0]["error"]
    with pytest.raises(ApiException) as exc:
        upsert(typed, "00000000-0000-0000-0000-000000000000", [(first, values(**{labels["quality"]: 1.0}))])
    assert exc.value.status == 404


def test_delete_annotations_as_the_seed_says(typed, http, scored):
    qid, labels, (first, second) = scored
    stored = upsert(typed, qid, [(first, values(**{labels["quality"]: 3.0})),
                                 (second, values(**{labels["quality"]: 4.0}))]).annotations
    unknown = "00000000-0000-0000-0000-000000000001"
    resp = delete_annotations(typed, qid, [stored[0].id, unknown])
    assert resp.data.id == qid and str(resp.data.type) == "annotations"
    assert resp.data.attributes.annotation_ids == [stored[0].id]
    assert [(e.annotation_id, bool(e.error)) for e in resp.data.attributes.errors] == [(unknown, True)]
    left = {i.id: [a.id for a in i.annotations] for i in annotated(typed, qid)}
    assert left == {first: [], second: [stored[1].id]}, "the deleted annotation is really gone"

    raw = http.post(f"{QUEUES}/{qid}/annotations/delete",
                    json={"data": {"type": "annotations", "attributes": {"annotation_ids": [stored[1].id]}}})
    assert raw.status_code == 200 and raw.json()["data"]["attributes"] == {"annotation_ids": [stored[1].id],
                                                                            "errors": []}
    for ids, status in (([], 400), ([unknown, unknown], 400)):
        resp = http.post(f"{QUEUES}/{qid}/annotations/delete",
                         json={"data": {"type": "annotations", "attributes": {"annotation_ids": ids}}})
        assert resp.status_code == status, resp.text
        assert resp.json()["errors"][0]["source"]["pointer"].startswith("/data/attributes/annotation_ids")
    with pytest.raises(ApiException) as exc:
        delete_annotations(typed, "00000000-0000-0000-0000-000000000000", [stored[1].id])
    assert exc.value.status == 404


def test_annotation_of_another_queue_is_not_deleted(typed, scored):
    qid, labels, (first, _) = scored
    stored = upsert(typed, qid, [(first, values(**{labels["quality"]: 3.0}))]).annotations[0]
    other = create_queue(typed).data.id
    resp = delete_annotations(typed, other, [stored.id]).data.attributes
    assert resp.annotation_ids == [] and resp.errors[0].annotation_id == stored.id
    assert len({i.id: i for i in annotated(typed, qid)}[first].annotations) == 1


def test_delete_queue_cascades(typed, http, scored):
    qid, labels, (first, _) = scored
    content = {i.id: i.content_id for i in annotated(typed, qid)}[first]
    upsert(typed, qid, [(first, values(**{labels["quality"]: 3.0}))])
    assert parsed(typed.get_llm_obs_annotated_interactions_by_trace_i_ds([content])).data.attributes.total_count == 1
    typed.delete_llm_obs_annotation_queue(qid)
    found = parsed(typed.get_llm_obs_annotated_interactions_by_trace_i_ds([content])).data.attributes
    assert found.total_count == 0 and found.annotated_interactions == []
    with pytest.raises(ApiException) as exc:
        typed.get_llm_obs_annotated_interactions(qid)
    assert exc.value.status == 404


# --- reads --------------------------------------------------------------------------------------


def test_annotated_interaction_reads(typed, http, scored):
    qid, labels, (first, second) = scored
    upsert(typed, qid, [(first, values(**{labels["quality"]: 5.0, labels["topic"]: "shipping"}))])
    display = add(typed, qid, [blocks(LLMObsContentBlock(type=LLMObsContentBlockType.MARKDOWN, content="# hi"))])[0]

    items = annotated(typed, qid)
    assert [i.id for i in items] == [first, second, display.id]
    assert [len(i.annotations) for i in items] == [1, 0, 0]
    assert items[2].display_block[0].content == "# hi" and items[0].can_annotate is True

    one = parsed(typed.get_llm_obs_annotated_interaction(qid, first, limit=5)).data
    assert one.id == first and str(one.type) == "annotated_interactions"
    assert str(one.attributes.interaction_type) == "trace" and one.attributes.events == []
    assert "next_cursor" not in one.attributes.to_dict(), "no next page: the cursor is absent"
    assert one.attributes.annotated_interaction.annotations[0].label_values[labels["topic"]]["value"] == "shipping"
    block = parsed(typed.get_llm_obs_annotated_interaction(qid, display.id)).data.attributes
    assert str(block.interaction_type) == "display_block"
    assert block.annotated_interaction.content_id == display.content_id
    assert list(typed.get_llm_obs_annotated_interaction_with_pagination(qid, first)) == []

    other = create_queue(typed).data.id
    for call in (lambda: typed.get_llm_obs_annotated_interaction(other, first),
                 lambda: typed.get_llm_obs_annotated_interaction(qid, "00000000-0000-0000-0000-000000000000"),
                 lambda: typed.get_llm_obs_annotated_interactions("00000000-0000-0000-0000-000000000000")):
        with pytest.raises(ApiException) as exc:
            call()
        assert exc.value.status == 404
    assert http.get(f"{QUEUES}/{qid}/annotated-interactions/{first}", params={"limit": "0"}).status_code == 400


def test_annotated_interactions_by_content_ids(typed, http):
    shared, alone = unique("shared"), unique("alone")
    queues = [create_queue(typed, labels=[label("ok", T.BOOLEAN)], name=unique("byc")) for _ in range(3)]
    added = [add(typed, q.data.id, [trace(shared)])[0] for q in queues]
    lone = add(typed, queues[0].data.id, [trace(alone, LLMObsTraceInteractionType.SESSION)])[0]
    q0 = queues[0].data.id
    upsert(typed, q0, [(added[0].id, values(**{ids_by_name(queues[0])["ok"]: True}))])

    everything = parsed(typed.get_llm_obs_annotated_interactions_by_trace_i_ds([shared, alone])).data
    assert str(everything.type) == "annotated_interactions_by_trace" and everything.id
    found = everything.attributes
    assert found.total_count == 4
    expected = [(a.id, q.data.id, q.data.attributes.name) for a, q in zip(added, queues, strict=True)]
    expected.append((lone.id, q0, queues[0].data.attributes.name))
    assert [(i.id, i.queue_id, i.queue_name) for i in found.annotated_interactions] == expected
    assert [len(i.annotations) for i in found.annotated_interactions] == [1, 0, 0, 0]
    assert str(found.annotated_interactions[3].type) == "session"

    page = parsed(typed.get_llm_obs_annotated_interactions_by_trace_i_ds([shared, alone], offset=1, limit=2)).data
    assert page.attributes.total_count == 4
    assert [i.id for i in page.attributes.annotated_interactions] == [added[1].id, added[2].id]

    comma = http.get("/api/v2/llm-obs/v1/annotated-interactions", params={"contentIds": f"{shared},{alone}"})
    assert comma.status_code == 200 and comma.json()["data"]["attributes"]["total_count"] == 4
    for params in ({}, {"contentIds": ""}, {"contentIds": shared, "offset": "-1"},
                   {"contentIds": shared, "limit": "0"}, {"contentIds": shared, "limit": "many"}):
        resp = http.get("/api/v2/llm-obs/v1/annotated-interactions", params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["errors"][0]["source"]["parameter"] in ("contentIds", "offset", "limit")


def test_keys_are_required(server):
    with server.client(headers={"DD-API-KEY": "", "DD-APPLICATION-KEY": ""}) as anon:
        assert anon.get(QUEUES).status_code == 403
        assert anon.get("/api/v2/llm-obs/v1/annotated-interactions", params={"contentIds": "x"}).status_code == 403


def test_hostile_input_is_a_400_or_404_never_a_500(http, typed, scored):
    qid, labels, (first, _) = scored
    url = f"{QUEUES}/{qid}"
    nul = {"data": {"type": "queues", "attributes": {"name": "a\u0000b"}}}
    assert http.patch(url, json=nul).status_code == 400
    assert http.get(f"{QUEUES}/a%00b/label-schema").status_code == 404
    assert http.get(f"{url}/annotated-interactions/x%00y").status_code == 404
    # As every query parameter: a NUL is a 400 naming the parameter (see test_hostile_input).
    assert http.get(QUEUES, params={"queueIds": "a\x00b"}).status_code == 400
    found = http.get("/api/v2/llm-obs/v1/annotated-interactions", params={"contentIds": "a\x00b"})
    assert found.status_code == 400 and found.json()["errors"][0]["source"] == {"parameter": "contentIds"}
    huge = 10 ** 30
    resp = http.post(f"{url}/annotations", json={"data": {"type": "annotations", "attributes": {"annotations": [
        {"interaction_id": first, "label_values": [{"label_schema_id": labels["quality"], "value": huge}]}]}}})
    assert resp.status_code == 200 and "'quality'" in resp.json()["data"]["attributes"]["errors"][0]["error"]
    resp = http.post(f"{url}/interactions", json={"data": {"type": "interactions", "attributes": {"interactions": [
        {"type": "display_block", "display_block": [{"type": "json", "content": huge}]}]}}})
    assert resp.status_code == 400 and "too large" in resp.json()["errors"][0]["detail"]
    resp = http.post(f"{url}/interactions", json={"data": {"type": "interactions", "attributes": {"interactions": [
        1, "x"]}}})
    assert resp.status_code == 400


def test_trace_interaction_events_are_its_spans(typed, http):
    trace_id = uuid.uuid4().hex
    base = time.time_ns() - 10**9
    spans = [{"trace_id": trace_id, "span_id": str(900 + i), "parent_id": "undefined" if i == 0 else "900",
              "name": f"step-{i}", "start_ns": base + i * 1000, "duration": 1000, "status": "ok",
              "meta": {"span": {"kind": "llm"}, "input": {"value": "q"}, "output": {"value": "a"}},
              "metrics": {}, "tags": ["ml_app:annotation-tests"]} for i in range(3)]
    intake = [{"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span", "spans": spans}]
    assert http.post("/api/v2/llmobs", json=intake).status_code == 202
    qid = create_queue(typed).data.id
    trace_item, session_item = add(typed, qid, [trace(trace_id), trace(trace_id, LLMObsTraceInteractionType.SESSION)])

    first = parsed(typed.get_llm_obs_annotated_interaction(qid, trace_item.id, limit=2)).data.attributes
    assert [e.id for e in first.events] == ["900", "901"] and first.next_cursor
    rest = parsed(typed.get_llm_obs_annotated_interaction(qid, trace_item.id, limit=2,
                                                          cursor=first.next_cursor)).data.attributes
    assert [e.id for e in rest.events] == ["902"] and "next_cursor" not in rest.to_dict()
    every = list(typed.get_llm_obs_annotated_interaction_with_pagination(qid, trace_item.id, limit=2))
    assert [e.id for e in every] == ["900", "901", "902"]
    assert parsed(typed.get_llm_obs_annotated_interaction(qid, session_item.id)).data.attributes.events == []
    bad = http.get(f"{QUEUES}/{qid}/annotated-interactions/{trace_item.id}", params={"cursor": "!!"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["source"]["parameter"] == "cursor"


def test_concurrent_writers_share_one_interaction_and_one_annotation(server, typed, scored):
    from concurrent.futures import ThreadPoolExecutor

    qid, labels, (first, _) = scored
    content = unique("raced")
    add_body = {"data": {"type": "interactions", "attributes": {"interactions": [
        {"type": "trace", "content_id": content}]}}}
    upsert_body = {"data": {"type": "annotations", "attributes": {"annotations": [
        {"interaction_id": first, "label_values": [{"label_schema_id": labels["quality"], "value": 3}]}]}}}

    def post(path_body):
        path, body = path_body
        with server.client() as c:
            return c.post(path, json=body)

    jobs = [(f"{QUEUES}/{qid}/interactions", add_body), (f"{QUEUES}/{qid}/annotations", upsert_body)] * 6
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, jobs))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    added = {r.json()["data"]["attributes"]["interactions"][0]["id"] for r in responses[0::2]}
    annotation_ids = {r.json()["data"]["attributes"]["annotations"][0]["id"] for r in responses[1::2]}
    assert len(added) == 1 and len(annotation_ids) == 1
    shown = {i.id: i for i in annotated(typed, qid)}
    assert len(shown[first].annotations) == 1 and added <= set(shown)
