"""Annotation queues end to end, part one: queues, label schemas and interactions, through the
typed client (malformed bodies over HTTP). Annotations and reads are in test_annotations_reads.py."""

from __future__ import annotations

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_annotation_queue_type import LLMObsAnnotationQueueType
from datadog_api_client.v2.model.llm_obs_annotation_queue_update_data_attributes_request import (
    LLMObsAnnotationQueueUpdateDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_update_data_request import (
    LLMObsAnnotationQueueUpdateDataRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_update_request import LLMObsAnnotationQueueUpdateRequest
from datadog_api_client.v2.model.llm_obs_content_block import LLMObsContentBlock
from datadog_api_client.v2.model.llm_obs_content_block_header_level import LLMObsContentBlockHeaderLevel
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
    delete_interactions,
    error_of,
    ids_by_name,
    label,
    parsed,
    project,
    put_schema,
    scored,
    standard_labels,
    trace,
    upsert,
    values,
)

# --- queues -------------------------------------------------------------------------------------


def test_queue_lifecycle(typed, http):
    pid = project(typed)
    queue = create_queue(typed, pid, standard_labels(), description="weekly review",
                         reviewer_emails=["ann@example.com"], restrict_to_reviewers=True)
    a = queue.data.attributes
    assert str(queue.data.type) == "queues"
    assert (a.project_id, a.description, a.reviewer_emails) == (pid, "weekly review", ["ann@example.com"])
    assert (a.restrict_to_reviewers, a.restrict_to_assignees, a.can_manage_access) == (True, False, True)
    assert a.created_by == a.modified_by == a.owned_by == SUITE_KEY
    labels = a.annotation_schema.label_schemas
    assert [lab.name for lab in labels] == ["quality", "topic", "correct", "notes"]
    assert all(lab.id for lab in labels) and len({lab.id for lab in labels}) == 4
    assert (labels[0].min, labels[0].max, labels[0].is_integer) == (1.0, 5.0, True)
    assert labels[1].values == ["billing", "shipping"]
    qid = queue.data.id

    other = create_queue(typed, pid)
    assert other.data.attributes.description == "", "a queue without a description says so with an empty string"
    assert other.data.attributes.annotation_schema.label_schemas == []
    elsewhere = create_queue(typed)

    by_project = parsed(typed.list_llm_obs_annotation_queues(project_id=pid)).data
    assert {q.id for q in by_project} == {qid, other.data.id}
    by_ids = parsed(typed.list_llm_obs_annotation_queues(queue_ids=[qid, elsewhere.data.id])).data
    assert {q.id for q in by_ids} == {qid, elsewhere.data.id}
    comma = http.get(QUEUES, params={"queueIds": f"{qid},{elsewhere.data.id}"})
    assert comma.status_code == 200 and comma.headers["content-type"] == "application/vnd.api+json"
    assert {q["id"] for q in comma.json()["data"]} == {qid, elsewhere.data.id}
    assert http.get(QUEUES, params={"projectId": pid, "queueIds": qid}).status_code == 400

    updated = parsed(typed.update_llm_obs_annotation_queue(qid, LLMObsAnnotationQueueUpdateRequest(
        data=LLMObsAnnotationQueueUpdateDataRequest(attributes=LLMObsAnnotationQueueUpdateDataAttributesRequest(
            name="renamed", description="monthly", reviewer_emails=["bo@example.com"], restrict_to_assignees=True),
            type=LLMObsAnnotationQueueType.QUEUES)))).data.attributes
    assert (updated.name, updated.description, updated.reviewer_emails) == ("renamed", "monthly", ["bo@example.com"])
    assert updated.restrict_to_assignees is True and updated.restrict_to_reviewers is True
    assert [lab.id for lab in updated.annotation_schema.label_schemas] == [lab.id for lab in labels]
    assert updated.modified_at >= a.modified_at

    schema = parsed(typed.get_llm_obs_annotation_queue_label_schema(qid)).data
    assert schema.id == qid and [lab.id for lab in schema.attributes.annotation_schema.label_schemas] == [
        lab.id for lab in labels]

    assert typed.delete_llm_obs_annotation_queue(qid) is None
    assert http.delete(f"{QUEUES}/{other.data.id}").status_code == 204
    assert parsed(typed.list_llm_obs_annotation_queues(project_id=pid)).data == []
    for call in (lambda: typed.get_llm_obs_annotation_queue_label_schema(qid),
                 lambda: typed.delete_llm_obs_annotation_queue(qid)):
        with pytest.raises(ApiException) as exc:
            call()
        assert exc.value.status == 404


def test_queue_keys_are_named_per_actor(server, typed, http):
    qid = create_queue(typed).data.id
    name = unique("reviewer")
    api_key, app_key = server.new_key(name)
    with server.client(headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as other:
        resp = other.patch(f"{QUEUES}/{qid}", json={"data": {"type": "queues", "attributes": {"name": "x"}}})
    assert resp.status_code == 200
    attrs = resp.json()["data"]["attributes"]
    assert (attrs["created_by"], attrs["owned_by"], attrs["modified_by"]) == (SUITE_KEY, SUITE_KEY, name)


def test_create_queue_rejections(typed, http):
    pid = project(typed)
    with pytest.raises(ApiException) as exc:
        create_queue(typed, "00000000-0000-0000-0000-000000000000")
    assert exc.value.status == 404 and error_of(exc)["source"]["pointer"] == "/data/attributes/project_id"
    cases = [
        ({"type": "queues", "attributes": {"project_id": pid}}, "/data/attributes/name"),
        ({"type": "queue", "attributes": {"project_id": pid, "name": "q"}}, "/data/type"),
        ({"type": "queues", "attributes": {"project_id": pid, "name": "q", "reviewer_emails": ["nope"]}},
         "/data/attributes/reviewer_emails/0"),
        ({"type": "queues", "attributes": {"project_id": pid, "name": "q", "restrict_to_reviewers": "maybe"}},
         "/data/attributes/restrict_to_reviewers"),
    ]
    for body, pointer in cases:
        resp = http.post(QUEUES, json={"data": body})
        assert resp.status_code == 400, resp.text
        assert resp.json()["errors"][0]["source"]["pointer"] == pointer
    resp = http.post(QUEUES, content=b'{"data": ', headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["errors"][0]["detail"]
    assert parsed(typed.list_llm_obs_annotation_queues(project_id=pid)).data == [], "nothing was created"


# --- label schema -------------------------------------------------------------------------------


SCHEMA_RULES = [
    ([label("bad name", T.TEXT)], "bad name", "^[a-zA-Z0-9_-]+$", "/0/name"),
    ([label("dup", T.TEXT), label("dup", T.BOOLEAN)], "dup", "not unique", "/1/name"),
    ([label("cat", T.CATEGORICAL)], "cat", "at least one value", "/0/values"),
    ([label("cat", T.CATEGORICAL, values=[])], "cat", "at least one value", "/0/values"),
    ([label("cat", T.CATEGORICAL, values=["a", " "])], "cat", "non-empty", "/0/values/1"),
    ([label("cat", T.CATEGORICAL, values=["a", "b", "a"])], "cat", "unique", "/0/values/2"),
    ([label("score", T.SCORE, min=5.0, max=5.0)], "score", "must be less than `max`", "/0/min"),
    ([label("score", T.SCORE, min=6.0, max=1.0)], "score", "must be less than `max`", "/0/min"),
    ([label("flag", T.BOOLEAN, is_assessment=True)], "flag", "requires `has_assessment`", "/0/is_assessment"),
    ([label("txt", T.TEXT, values=["a"])], "txt", "categorical labels only", "/0/values"),
    ([label("flag", T.BOOLEAN, min=0.0)], "flag", "score labels only", "/0/min"),
]


@pytest.mark.parametrize("labels, name, rule, where", SCHEMA_RULES)
def test_label_schema_rules(typed, labels, name, rule, where):
    queue = create_queue(typed, labels=standard_labels())
    qid = queue.data.id
    before = parsed(typed.get_llm_obs_annotation_queue_label_schema(qid)).data.attributes.to_dict()
    for attempt in ("put", "create"):
        with pytest.raises(ApiException) as exc:
            if attempt == "put":
                put_schema(typed, qid, labels)
            else:
                create_queue(typed, queue.data.attributes.project_id, labels)
        assert exc.value.status == 400
        err = error_of(exc)
        assert repr(name) in err["detail"] and rule in err["detail"], err
        assert err["source"]["pointer"] == "/data/attributes/annotation_schema/label_schemas" + where
    after = parsed(typed.get_llm_obs_annotation_queue_label_schema(qid)).data.attributes.to_dict()
    assert after == before, "a rejected schema changes nothing"


def test_label_type_must_be_known(http, typed):
    qid = create_queue(typed).data.id
    resp = http.put(f"{QUEUES}/{qid}/label-schema", json={"data": {"type": "queues", "attributes": {
        "annotation_schema": {"label_schemas": [{"name": "x", "type": "rating"}]}}}})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["source"]["pointer"] == "/data/attributes/annotation_schema/label_schemas/0/type"


def test_every_schema_problem_is_reported(http, typed):
    qid = create_queue(typed).data.id
    resp = http.put(f"{QUEUES}/{qid}/label-schema", json={"data": {"type": "queues", "attributes": {
        "annotation_schema": {"label_schemas": [{"name": "a b", "type": "text"},
                                                {"name": "c", "type": "categorical"}]}}}})
    assert resp.status_code == 400
    assert [e["source"]["pointer"].rsplit("/", 2)[-2:] for e in resp.json()["errors"]] == [["0", "name"],
                                                                                          ["1", "values"]]


def test_label_ids_are_stable_across_updates(typed):
    queue = create_queue(typed, labels=standard_labels())
    qid, ids = queue.data.id, ids_by_name(queue)
    new = put_schema(typed, qid, [
        label("notes", T.TEXT),                                    # kept by name
        label("grade", T.SCORE, id=ids["quality"], min=0.0),       # renamed, sent back with its id
        label("fresh", T.BOOLEAN),                                 # new
    ]).data.attributes.annotation_schema.label_schemas
    got = {lab.name: lab.id for lab in new}
    assert got["notes"] == ids["notes"]
    assert got["grade"] == ids["quality"]
    assert got["fresh"] not in ids.values()
    again = put_schema(typed, qid, [label("fresh", T.BOOLEAN), label("notes", T.TEXT, is_required=True)])
    assert {lab.name: lab.id for lab in again.data.attributes.annotation_schema.label_schemas} == {
        "fresh": got["fresh"], "notes": ids["notes"]}
    with pytest.raises(ApiException) as exc:
        put_schema(typed, "00000000-0000-0000-0000-000000000000", [label("x", T.TEXT)])
    assert exc.value.status == 404


def test_update_queue_with_bad_schema_changes_nothing(typed, http):
    queue = create_queue(typed, labels=standard_labels())
    qid, name = queue.data.id, queue.data.attributes.name
    resp = http.patch(f"{QUEUES}/{qid}", json={"data": {"type": "queues", "attributes": {
        "name": "should-not-stick", "annotation_schema": {"label_schemas": [
            {"name": "s", "type": "score", "min": 3, "max": 2}]}}}})
    assert resp.status_code == 400 and "'s'" in resp.json()["errors"][0]["detail"]
    listed = parsed(typed.list_llm_obs_annotation_queues(queue_ids=[qid])).data[0].attributes
    assert listed.name == name
    assert [lab.name for lab in listed.annotation_schema.label_schemas] == ["quality", "topic", "correct", "notes"]


# --- interactions -------------------------------------------------------------------------------


def test_add_interactions_of_every_type(typed):
    qid = create_queue(typed).data.id
    content = unique("trace")
    header = LLMObsContentBlock(type=LLMObsContentBlockType.HEADER, content="Question",
                                level=LLMObsContentBlockHeaderLevel.LG)
    image = LLMObsContentBlock(type=LLMObsContentBlockType.IMAGE, url="https://example.com/a.png", alt="a")
    items = add(typed, qid, [
        trace(content),
        trace(unique("session"), LLMObsTraceInteractionType.SESSION),
        trace(unique("exp"), LLMObsTraceInteractionType.EXPERIMENT_TRACE),
        blocks(header, image, LLMObsContentBlock(type=LLMObsContentBlockType.JSON, content={"k": [1, 2]}),
               LLMObsContentBlock(type=LLMObsContentBlockType.FRONTEND, code="<b>hi</b>", label="html", height=200),
               LLMObsContentBlock(type=LLMObsContentBlockType.LLMOBS_TRACE, trace_id="abc")),
    ])
    assert [str(i.type) for i in items] == ["trace", "session", "experiment_trace", "display_block"]
    assert [i.already_existed for i in items] == [False] * 4
    assert items[0].content_id == content
    display = items[3]
    assert len(display.content_id) == 64 and str(display.display_block[0].level) == "lg"

    again = add(typed, qid, [trace(content), blocks(header, image, LLMObsContentBlock(
        type=LLMObsContentBlockType.JSON, content={"k": [1, 2]}), LLMObsContentBlock(
        type=LLMObsContentBlockType.FRONTEND, code="<b>hi</b>", label="html", height=200), LLMObsContentBlock(
        type=LLMObsContentBlockType.LLMOBS_TRACE, trace_id="abc")), blocks(header)])
    assert [(i.id, i.already_existed) for i in again[:2]] == [(items[0].id, True), (display.id, True)]
    assert again[1].content_id == display.content_id, "the content id of blocks is deterministic"
    assert again[2].already_existed is False and again[2].content_id != display.content_id
    assert len(annotated(typed, qid)) == 5

    twice = add(typed, qid, [trace("same-in-one-request"), trace("same-in-one-request")])
    assert twice[0].id == twice[1].id and [t.already_existed for t in twice] == [False, True]


DISPLAY_BLOCK_RULES = [
    ({"type": "image"}, "/0/url", "`url` is required"),
    ({"type": "image", "url": ""}, "/0/url", "non-empty"),
    ({"type": "frontend"}, "/0/code", "`code` is required"),
    ({"type": "header", "content": "h", "level": "huge"}, "/0/level", "`level` must be one of"),
    ({"type": "markdown", "content": {"not": "a string"}}, "/0/content", "must be a string"),
    ({"type": "json"}, "/0/content", "`content` is required"),
    ({"type": "widget"}, "/0/tileDef", "`tileDef` is required"),
    ({"type": "llmobs_trace"}, "/0/traceId", "`traceId` is required"),
    ({"type": "llmobs_trace", "traceId": "t", "interactionType": "session"}, "/0/interactionType", "trace or"),
    ({"type": "text", "content": "x", "height": 0}, "/0/height", "positive"),
    ({"type": "text", "content": "x", "timeFrame": {"start": 1}}, "/0/timeFrame", "start"),
    ({"type": "video"}, "/0/type", "must be one of"),
]


@pytest.mark.parametrize("block, where, rule", DISPLAY_BLOCK_RULES)
def test_display_block_rules(http, typed, block, where, rule):
    qid = create_queue(typed).data.id
    body = {"data": {"type": "interactions", "attributes": {"interactions": [
        {"type": "trace", "content_id": unique("ok")}, {"type": "display_block", "display_block": [block]}]}}}
    resp = http.post(f"{QUEUES}/{qid}/interactions", json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["errors"][0]
    assert rule in err["detail"] and block["type"] in err["detail"], err
    assert err["source"]["pointer"] == "/data/attributes/interactions/1/display_block" + where
    assert annotated(typed, qid) == [], "the valid item of a rejected request is not added either"


@pytest.mark.parametrize("items, pointer", [
    ([], "/data/attributes/interactions"),
    ([{"type": "trace"}], "/data/attributes/interactions/0/content_id"),
    ([{"type": "trace", "content_id": ""}], "/data/attributes/interactions/0/content_id"),
    ([{"type": "span", "content_id": "x"}], "/data/attributes/interactions/0/type"),
    ([{"type": "display_block", "display_block": []}], "/data/attributes/interactions/0/display_block"),
    ([{"type": "display_block", "content_id": "mine",
       "display_block": [{"type": "text", "content": "x"}]}], "/data/attributes/interactions/0/content_id"),
])
def test_bad_interactions(http, typed, items, pointer):
    qid = create_queue(typed).data.id
    resp = http.post(f"{QUEUES}/{qid}/interactions",
                     json={"data": {"type": "interactions", "attributes": {"interactions": items}}})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"][0]["source"]["pointer"] == pointer


def test_interactions_of_unknown_queue(typed):
    with pytest.raises(ApiException) as exc:
        add(typed, "00000000-0000-0000-0000-000000000000", [trace("t")])
    assert exc.value.status == 404


def test_delete_interactions_cascades_to_annotations(typed, http, scored):
    qid, labels, (first, second) = scored
    stored = upsert(typed, qid, [(first, values(**{labels["quality"]: 3.0})),
                                 (second, values(**{labels["quality"]: 4.0}))]).annotations
    for ids, status in (([first, "nope"], 404), ([first, first], 400), ([], 400)):
        resp = http.post(f"{QUEUES}/{qid}/interactions/delete",
                         json={"data": {"type": "interactions", "attributes": {"interaction_ids": ids}}})
        assert resp.status_code == status, resp.text
    assert len(annotated(typed, qid)) == 2, "a rejected delete deletes nothing"

    assert delete_interactions(typed, qid, [first]) is None
    left = annotated(typed, qid)
    assert [i.id for i in left] == [second]
    gone = delete_annotations(typed, qid, [stored[0].id]).data.attributes
    assert gone.annotation_ids == [] and gone.errors[0].annotation_id == stored[0].id, "its annotation went too"
    with pytest.raises(ApiException) as exc:
        typed.get_llm_obs_annotated_interaction(qid, first)
    assert exc.value.status == 404
