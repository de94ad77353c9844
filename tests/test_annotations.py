"""Annotation queues end to end: every operation through the typed client, malformed bodies over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_annotation_label_value import LLMObsAnnotationLabelValue
from datadog_api_client.v2.model.llm_obs_annotation_queue_data_attributes_request import (
    LLMObsAnnotationQueueDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_data_request import LLMObsAnnotationQueueDataRequest
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_data_attributes_request import (
    LLMObsAnnotationQueueInteractionsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_data_request import (
    LLMObsAnnotationQueueInteractionsDataRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_request import (
    LLMObsAnnotationQueueInteractionsRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_type import (
    LLMObsAnnotationQueueInteractionsType,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_label_schema_update_attributes import (
    LLMObsAnnotationQueueLabelSchemaUpdateAttributes,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_label_schema_update_data import (
    LLMObsAnnotationQueueLabelSchemaUpdateData,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_label_schema_update_request import (
    LLMObsAnnotationQueueLabelSchemaUpdateRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_request import LLMObsAnnotationQueueRequest
from datadog_api_client.v2.model.llm_obs_annotation_queue_type import LLMObsAnnotationQueueType
from datadog_api_client.v2.model.llm_obs_annotation_queue_update_data_attributes_request import (
    LLMObsAnnotationQueueUpdateDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_update_data_request import (
    LLMObsAnnotationQueueUpdateDataRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_update_request import LLMObsAnnotationQueueUpdateRequest
from datadog_api_client.v2.model.llm_obs_annotation_schema import LLMObsAnnotationSchema
from datadog_api_client.v2.model.llm_obs_annotations_data_attributes_request import (
    LLMObsAnnotationsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotations_data_request import LLMObsAnnotationsDataRequest
from datadog_api_client.v2.model.llm_obs_annotations_request import LLMObsAnnotationsRequest
from datadog_api_client.v2.model.llm_obs_annotations_type import LLMObsAnnotationsType
from datadog_api_client.v2.model.llm_obs_content_block import LLMObsContentBlock
from datadog_api_client.v2.model.llm_obs_content_block_header_level import LLMObsContentBlockHeaderLevel
from datadog_api_client.v2.model.llm_obs_content_block_type import LLMObsContentBlockType
from datadog_api_client.v2.model.llm_obs_delete_annotation_queue_interactions_data_attributes_request import (
    LLMObsDeleteAnnotationQueueInteractionsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotation_queue_interactions_data_request import (
    LLMObsDeleteAnnotationQueueInteractionsDataRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotation_queue_interactions_request import (
    LLMObsDeleteAnnotationQueueInteractionsRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotations_data_attributes_request import (
    LLMObsDeleteAnnotationsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotations_data_request import LLMObsDeleteAnnotationsDataRequest
from datadog_api_client.v2.model.llm_obs_delete_annotations_request import LLMObsDeleteAnnotationsRequest
from datadog_api_client.v2.model.llm_obs_display_block_interaction_item import LLMObsDisplayBlockInteractionItem
from datadog_api_client.v2.model.llm_obs_display_block_interaction_type import LLMObsDisplayBlockInteractionType
from datadog_api_client.v2.model.llm_obs_label_schema import LLMObsLabelSchema
from datadog_api_client.v2.model.llm_obs_label_schema_type import LLMObsLabelSchemaType
from datadog_api_client.v2.model.llm_obs_project_data_attributes_request import LLMObsProjectDataAttributesRequest
from datadog_api_client.v2.model.llm_obs_project_data_request import LLMObsProjectDataRequest
from datadog_api_client.v2.model.llm_obs_project_request import LLMObsProjectRequest
from datadog_api_client.v2.model.llm_obs_project_type import LLMObsProjectType
from datadog_api_client.v2.model.llm_obs_trace_interaction_item import LLMObsTraceInteractionItem
from datadog_api_client.v2.model.llm_obs_trace_interaction_type import LLMObsTraceInteractionType
from datadog_api_client.v2.model.llm_obs_upsert_annotation_item import LLMObsUpsertAnnotationItem

from tests.conftest import unique

QUEUES = "/api/v2/llm-obs/v1/annotation-queues"
SUITE_KEY = "test-suite"  # the name of the key the server fixture creates
T = LLMObsLabelSchemaType


# --- helpers: typed-client request builders ----------------------------------------------------


def parsed(resp: Any) -> Any:
    """The typed client silently keeps what it cannot deserialize; fail loudly instead."""
    assert not getattr(resp, "_unparsed", False), f"typed client could not parse: {resp}"
    return resp


def project(typed) -> str:
    return typed.create_llm_obs_project(LLMObsProjectRequest(data=LLMObsProjectDataRequest(
        attributes=LLMObsProjectDataAttributesRequest(name=unique("aq-proj")),
        type=LLMObsProjectType.PROJECTS))).data.id


def label(name: str, kind: LLMObsLabelSchemaType, **kw: Any) -> LLMObsLabelSchema:
    return LLMObsLabelSchema(name=name, type=kind, **kw)


def standard_labels() -> list[LLMObsLabelSchema]:
    return [
        label("quality", T.SCORE, min=1.0, max=5.0, is_integer=True, is_required=True),
        label("topic", T.CATEGORICAL, values=["billing", "shipping"]),
        label("correct", T.BOOLEAN, has_assessment=True, is_assessment=True, has_reasoning=True),
        label("notes", T.TEXT, description="free text"),
    ]


def create_queue(typed, project_id: str | None = None, labels: list[LLMObsLabelSchema] | None = None,
                 **kw: Any):
    attrs = LLMObsAnnotationQueueDataAttributesRequest(
        project_id=project_id or project(typed), name=kw.pop("name", unique("queue")), **kw)
    if labels is not None:
        attrs.annotation_schema = LLMObsAnnotationSchema(label_schemas=labels)
    return parsed(typed.create_llm_obs_annotation_queue(LLMObsAnnotationQueueRequest(
        data=LLMObsAnnotationQueueDataRequest(attributes=attrs, type=LLMObsAnnotationQueueType.QUEUES))))


def put_schema(typed, queue_id: str, labels: list[LLMObsLabelSchema]):
    return parsed(typed.update_llm_obs_annotation_queue_label_schema(
        queue_id, LLMObsAnnotationQueueLabelSchemaUpdateRequest(data=LLMObsAnnotationQueueLabelSchemaUpdateData(
            attributes=LLMObsAnnotationQueueLabelSchemaUpdateAttributes(
                annotation_schema=LLMObsAnnotationSchema(label_schemas=labels)),
            type=LLMObsAnnotationQueueType.QUEUES))))


def add(typed, queue_id: str, items: list[Any]):
    return parsed(typed.create_llm_obs_annotation_queue_interactions(
        queue_id, LLMObsAnnotationQueueInteractionsRequest(data=LLMObsAnnotationQueueInteractionsDataRequest(
            attributes=LLMObsAnnotationQueueInteractionsDataAttributesRequest(interactions=items),
            type=LLMObsAnnotationQueueInteractionsType.INTERACTIONS)))).data.attributes.interactions


def trace(content_id: str, kind: LLMObsTraceInteractionType = LLMObsTraceInteractionType.TRACE):
    return LLMObsTraceInteractionItem(content_id=content_id, type=kind)


def blocks(*items: LLMObsContentBlock) -> LLMObsDisplayBlockInteractionItem:
    return LLMObsDisplayBlockInteractionItem(display_block=list(items),
                                             type=LLMObsDisplayBlockInteractionType.DISPLAY_BLOCK)


def delete_interactions(typed, queue_id: str, ids: list[str]) -> None:
    typed.delete_llm_obs_annotation_queue_interactions(queue_id, LLMObsDeleteAnnotationQueueInteractionsRequest(
        data=LLMObsDeleteAnnotationQueueInteractionsDataRequest(
            attributes=LLMObsDeleteAnnotationQueueInteractionsDataAttributesRequest(interaction_ids=ids),
            type=LLMObsAnnotationQueueInteractionsType.INTERACTIONS)))


def values(**by_label_id: Any) -> list[LLMObsAnnotationLabelValue]:
    return [LLMObsAnnotationLabelValue(label_schema_id=k, value=v) for k, v in by_label_id.items()]


def upsert(typed, queue_id: str, items: list[tuple[str, list[LLMObsAnnotationLabelValue]]]):
    return parsed(typed.upsert_llm_obs_annotations(queue_id, LLMObsAnnotationsRequest(data=LLMObsAnnotationsDataRequest(
        attributes=LLMObsAnnotationsDataAttributesRequest(annotations=[
            LLMObsUpsertAnnotationItem(interaction_id=iid, label_values=lv) for iid, lv in items]),
        type=LLMObsAnnotationsType.ANNOTATIONS)))).data.attributes


def delete_annotations(typed, queue_id: str, ids: list[str]):
    return parsed(typed.delete_llm_obs_annotations(queue_id, LLMObsDeleteAnnotationsRequest(
        data=LLMObsDeleteAnnotationsDataRequest(
            attributes=LLMObsDeleteAnnotationsDataAttributesRequest(annotation_ids=ids),
            type=LLMObsAnnotationsType.ANNOTATIONS))))


def annotated(typed, queue_id: str) -> list[Any]:
    return parsed(typed.get_llm_obs_annotated_interactions(queue_id)).data.attributes.annotated_interactions


def ids_by_name(queue) -> dict[str, str]:
    return {lab.name: lab.id for lab in queue.data.attributes.annotation_schema.label_schemas}


def error_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict), body
    return body["errors"][0]


@pytest.fixture
def scored(typed):
    """A queue with the standard labels and two trace interactions."""
    queue = create_queue(typed, labels=standard_labels())
    qid = queue.data.id
    items = add(typed, qid, [trace(unique("trace")), trace(unique("trace"))])
    return qid, ids_by_name(queue), [i.id for i in items]


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
    expected = [(a.id, q.data.id, q.data.attributes.name) for a, q in zip(added, queues)]
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
    assert http.get(QUEUES, params={"queueIds": "a\x00b"}).json()["data"] == []
    found = http.get("/api/v2/llm-obs/v1/annotated-interactions", params={"contentIds": "a\x00b"})
    assert found.status_code == 200 and found.json()["data"]["attributes"]["total_count"] == 0
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
    import time
    import uuid

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
