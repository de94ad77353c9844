from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.responses import Response

from kennel.annotations import service, views
from kennel.annotations.schemas import (
    AnnotationsRequest,
    DeleteAnnotationsRequest,
    DeleteInteractionsRequest,
    InteractionsRequest,
    LabelSchemaUpdateRequest,
    QueueRequest,
    QueueUpdateRequest,
)
from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.errors import Invalid
from kennel.jsonapi import RawBody, comma_list, int_param, no_content, page_limit, parse_body, respond
from kennel.openapi import integer, json_body
from kennel.spans.service import spans_for_trace

router = APIRouter(dependencies=[Depends(require_keys)], tags=["annotation queues"])

M = TypeVar("M", bound=BaseModel)
BASE = "/api/v2/llm-obs/v1/annotation-queues"
TRACE_EVENT_TYPES = ("trace", "experiment_trace")


def _body(model: type[M], raw: bytes) -> M:
    # PostgreSQL cannot store NUL in text or JSONB; refuse it up front rather than fail on write.
    if b"\\u0000" in raw:
        raise Invalid("strings must not contain NUL characters (\\u0000)", pointer="")
    return parse_body(model, raw)


def _split(raw: list[str] | None) -> list[str]:
    """Repeated parameters and comma-separated values both work, and mix."""
    return comma_list(raw, strip=True)


@router.post(BASE, openapi_extra=json_body(QueueRequest))
def create_queue(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = _body(QueueRequest, raw).data.attributes
    queue, project_id = service.create_queue(session, attrs=attrs, actor=actor)
    return respond({"data": views.queue_resource(queue, project_id)}, status=201)


@router.get(BASE)
def list_queues(
    session: SessionDep,
    actor: ActorDep,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    queue_ids: Annotated[list[str] | None, Query(alias="queueIds")] = None,
) -> Response:
    ids = _split(queue_ids)
    if project_id and ids:
        raise Invalid("projectId and queueIds cannot be used together", parameter="queueIds")
    rows = service.list_queues(session, project_id=project_id or None, queue_ids=ids or None,
                               actor=actor)
    return respond({"data": [views.queue_resource(q, pid) for q, pid in rows]})


@router.patch(BASE + "/{queue_id}", openapi_extra=json_body(QueueUpdateRequest))
def update_queue(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = _body(QueueUpdateRequest, raw).data.attributes
    queue, project_id = service.update_queue(session, queue_id=queue_id, attrs=attrs, actor=actor)
    return respond({"data": views.queue_resource(queue, project_id)})


@router.delete(BASE + "/{queue_id}")
def delete_queue(queue_id: str, session: SessionDep) -> Response:
    service.delete_queue(session, queue_id=queue_id)
    return no_content()


@router.get(BASE + "/{queue_id}/label-schema")
def get_label_schema(queue_id: str, session: SessionDep, actor: ActorDep) -> Response:
    service.check_visible(session, queue_id=queue_id, actor=actor)
    queue, _ = service.get_queue(session, queue_id=queue_id)
    return respond({"data": views.label_schema_resource(queue)})


@router.put(BASE + "/{queue_id}/label-schema", openapi_extra=json_body(LabelSchemaUpdateRequest))
def update_label_schema(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    schema = _body(LabelSchemaUpdateRequest, raw).data.attributes.annotation_schema
    queue = service.replace_label_schema(session, queue_id=queue_id, schema=schema, actor=actor)
    return respond({"data": views.label_schema_resource(queue)})


@router.post(BASE + "/{queue_id}/interactions", openapi_extra=json_body(InteractionsRequest))
def add_interactions(queue_id: str, session: SessionDep, raw: RawBody) -> Response:
    items = _body(InteractionsRequest, raw).data.attributes.interactions
    added = service.add_interactions(session, queue_id=queue_id, items=items)
    return respond({"data": {"id": queue_id, "type": "interactions", "attributes": {
        "interactions": [views.added_interaction(row, existed) for row, existed in added]}}}, status=201)


@router.post(BASE + "/{queue_id}/interactions/delete", openapi_extra=json_body(DeleteInteractionsRequest))
def delete_interactions(queue_id: str, session: SessionDep, raw: RawBody) -> Response:
    ids = _body(DeleteInteractionsRequest, raw).data.attributes.interaction_ids
    service.delete_interactions(session, queue_id=queue_id, interaction_ids=ids)
    return no_content()


@router.post(BASE + "/{queue_id}/annotations", openapi_extra=json_body(AnnotationsRequest))
def upsert_annotations(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    items = _body(AnnotationsRequest, raw).data.attributes.annotations
    stored, errors = service.upsert_annotations(session, queue_id=queue_id, items=items, actor=actor)
    return respond({"data": {"id": queue_id, "type": "annotations", "attributes": {
        "annotations": [views.upserted_annotation(a) for a in stored], "errors": errors}}})


@router.post(BASE + "/{queue_id}/annotations/delete", openapi_extra=json_body(DeleteAnnotationsRequest))
def delete_annotations(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    ids = _body(DeleteAnnotationsRequest, raw).data.attributes.annotation_ids
    deleted, errors = service.delete_annotations(session, queue_id=queue_id, annotation_ids=ids, actor=actor)
    return respond({"data": {"id": queue_id, "type": "annotations",
                             "attributes": {"annotation_ids": deleted, "errors": errors}}})


@router.get(BASE + "/{queue_id}/annotated-interactions")
def get_annotated_interactions(queue_id: str, session: SessionDep, actor: ActorDep) -> Response:
    service.check_visible(session, queue_id=queue_id, actor=actor)
    interactions, annotations = service.annotated_interactions(session, queue_id=queue_id)
    return respond({"data": {"id": queue_id, "type": "annotated_interactions", "attributes": {
        "annotated_interactions": views.annotated_interaction_items(interactions, annotations)}}})


@router.get(BASE + "/{queue_id}/annotated-interactions/{interaction_id}")
def get_annotated_interaction(
    queue_id: str,
    interaction_id: str,
    session: SessionDep,
    actor: ActorDep,
    limit: Annotated[str | None, Query(json_schema_extra=integer(1, 1000))] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    size = page_limit(limit, default=10, maximum=1000, parameter="limit")
    service.check_visible(session, queue_id=queue_id, actor=actor)
    row, annotations = service.annotated_interaction(session, queue_id=queue_id,
                                                     interaction_id=interaction_id)
    spans: list[dict[str, Any]] = []
    next_cursor: str | None = None
    if row.type in TRACE_EVENT_TYPES:
        spans, next_cursor = spans_for_trace(session, trace_id=row.content_id, cursor=cursor or None, limit=size)
    attributes = {"annotated_interaction": views.annotated_interaction_item(row, annotations),
                  "events": [views.event(s) for s in spans], "interaction_type": row.type}
    if next_cursor:
        # The typed client wants a string or nothing: absent means the last page.
        attributes["next_cursor"] = next_cursor
    return respond({"data": {"id": row.id, "type": "annotated_interactions", "attributes": attributes}})


@router.get("/api/v2/llm-obs/v1/annotated-interactions")
def get_annotated_interactions_by_content(
    session: SessionDep,
    content_ids: Annotated[list[str] | None, Query(alias="contentIds")] = None,
    offset: Annotated[str | None, Query(json_schema_extra=integer(0))] = None,
    limit: Annotated[str | None, Query(json_schema_extra=integer(1, 1000))] = None,
) -> Response:
    ids = list(dict.fromkeys(_split(content_ids)))
    if not ids:
        raise Invalid("contentIds must name at least one content id", parameter="contentIds")
    if len(ids) > service.MAX_CONTENT_IDS:
        raise Invalid(f"at most {service.MAX_CONTENT_IDS} contentIds per request, got {len(ids)}",
                      parameter="contentIds")
    start = int_param(offset, "offset", default=0, minimum=0) or 0
    size = page_limit(limit, default=100, maximum=1000, parameter="limit")
    total, page, annotations = service.annotated_by_content_ids(session, content_ids=ids,
                                                                offset=start, limit=size)
    return respond({"data": {"id": views.by_content_response_id(ids), "type": "annotated_interactions_by_trace",
                             "attributes": {"annotated_interactions": views.by_content_items(page, annotations),
                                            "total_count": total}}})
