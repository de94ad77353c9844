"""The review API: every action of the reviewer's screen and the owner's review views, under Kennel's own
namespace beside the Datadog routes, with the same checks (they call the same functions in review.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from kennel.annotations import review, review_items, review_settings
from kennel.annotations.review_schemas import (
    DraftRequest,
    FlagRequest,
    NextRequest,
    OpenRequest,
    ReviewSettingsRequest,
    SubmitRequest,
)
from kennel.annotations.router import _body
from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.db.base import utcnow
from kennel.jsonapi import RawBody, decode_cursor, encode_cursor, iso, respond
from kennel.openapi import json_body

router = APIRouter(dependencies=[Depends(require_keys)], tags=["annotation review (Kennel)"])
BASE = "/api/kennel/v1/annotation-queues/{queue_id}"
ITEM = BASE + "/items/{interaction_id}"


def item_resource(queue_id: str, item: review.Item | None) -> dict[str, Any] | None:
    if item is None:
        return None
    i, state = item.interaction, item.state
    held = state is not None and state.lease_until is not None and state.lease_until > utcnow()
    others = None if item.others is None else [
        {**o, "modified_at": iso(o["modified_at"])} for o in item.others]
    return {"id": i.id, "type": "review_items", "attributes": {
        "queue_id": queue_id, "interaction_type": i.type, "content_id": i.content_id,
        "display_block": i.display_block, "status": item.status, "my_annotation": item.mine,
        "others": others, "others_hidden": item.others is None, "others_count": item.others_count,
        "draft": item.draft, "schema_changes": item.schema_changes, "schema_version": item.schema_version,
        "skipped": bool(state and state.skipped_seq is not None), "flagged": bool(state and state.flagged),
        "lease_until": iso(state.lease_until) if held and state else None,
        "progress": {"position": item.position, "total": item.total, "done_by_me": item.done_by_me,
                     "complete": item.complete, "percent": item.percent}}}


def _item(queue_id: str, item: review.Item | None) -> Response:
    return respond({"data": item_resource(queue_id, item)})


def _settings(queue_id: str, settings: review_settings.Settings) -> Response:
    return respond({"data": {"id": queue_id, "type": "review_settings", "attributes": settings.as_dict()}})


@router.get(BASE + "/review-settings")
def get_review_settings(queue_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return _settings(queue_id, review.owning(session, queue_id=queue_id, actor=actor).settings)


@router.patch(BASE + "/review-settings", openapi_extra=json_body(ReviewSettingsRequest))
def update_review_settings(queue_id: str, session: SessionDep, raw: RawBody) -> Response:
    attrs = _body(ReviewSettingsRequest, raw).data.attributes
    changes = {name: getattr(attrs, name) for name in attrs.model_fields_set}
    return _settings(queue_id, review_settings.update_settings(session, queue_id=queue_id, changes=changes))


@router.post(BASE + "/next", openapi_extra=json_body(NextRequest))
def next_item(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """My next item, held for me; `data: null` when my queue is empty."""
    after = _body(NextRequest, raw).data.attributes.after_interaction_id if raw.strip() else None
    return _item(queue_id, review.next_item(session, queue_id=queue_id, actor=actor, after_id=after))


@router.post(BASE + "/open", openapi_extra=json_body(OpenRequest))
def open_item(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """An item by id or number, or the one before or after it; held for me if it is still open for me."""
    attrs = _body(OpenRequest, raw).data.attributes
    return _item(queue_id, review.open_item(session, queue_id=queue_id, actor=actor,
                                            interaction_id=attrs.interaction_id, position=attrs.position,
                                            step=attrs.step))


@router.get(ITEM)
def get_item(queue_id: str, interaction_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return _item(queue_id, review.item(session, queue_id=queue_id, interaction_id=interaction_id, actor=actor))


@router.put(ITEM + "/annotation", openapi_extra=json_body(SubmitRequest))
def submit(queue_id: str, interaction_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """Store my annotation of this item (idempotent: it replaces my earlier one); with `next`, also hand me
    my next item (`meta.next`)."""
    attrs = _body(SubmitRequest, raw).data.attributes
    if attrs.next:
        saved, after = review.submit_and_next(session, queue_id=queue_id, interaction_id=interaction_id,
                                              values=attrs.label_values, actor=actor, version=attrs.schema_version)
    else:
        saved = review.submit(session, queue_id=queue_id, interaction_id=interaction_id, values=attrs.label_values,
                              actor=actor, version=attrs.schema_version)
    body: dict[str, Any] = {"data": {"id": saved["id"], "type": "annotations", "attributes": {
        "interaction_id": interaction_id, "label_values": saved["label_values"],
        "created_at": iso(saved["created_at"]), "modified_at": iso(saved["modified_at"])}}}
    if attrs.next:
        body["meta"] = {"next": item_resource(queue_id, after)}
    return respond(body)


@router.put(ITEM + "/draft", openapi_extra=json_body(DraftRequest))
def save_draft(queue_id: str, interaction_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = _body(DraftRequest, raw).data.attributes
    review.save_draft(session, queue_id=queue_id, interaction_id=interaction_id, values=attrs.label_values,
                      actor=actor, version=attrs.schema_version)
    return _item(queue_id, review.item(session, queue_id=queue_id, interaction_id=interaction_id, actor=actor))


@router.post(ITEM + "/skip")
def skip(queue_id: str, interaction_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Send the item to the end of my queue; answers my next item."""
    return _item(queue_id, review.skip(session, queue_id=queue_id, interaction_id=interaction_id, actor=actor))


@router.put(ITEM + "/flag", openapi_extra=json_body(FlagRequest))
def flag(queue_id: str, interaction_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    flagged = _body(FlagRequest, raw).data.attributes.flagged
    return _item(queue_id, review.flag(session, queue_id=queue_id, interaction_id=interaction_id, actor=actor,
                                       flagged=flagged))


@router.post(BASE + "/undo")
def undo(queue_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Take back my last submit or skip in this queue (409 when there is none); answers that item."""
    return _item(queue_id, review.undo(session, queue_id=queue_id, actor=actor))


@router.get(BASE + "/items")
def list_items(
    queue_id: str, session: SessionDep, actor: ActorDep,
    status: Annotated[str | None, Query(description=f"one of {', '.join(review_items.STATUSES)}")] = None,
    interaction_type: Annotated[str | None, Query(alias="type")] = None,
    label: Annotated[str | None, Query(description="a label's name, with `value`")] = None,
    value: Annotated[str | None, Query(description="a value some reviewer gave `label`")] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
) -> Response:
    """The queue's items with their reviewers' values, filtered; keyset pages in queue order."""
    after = decode_cursor(cursor, (int,))[0] if cursor else None
    _, rows, last = review_items.list_items(session, queue_id=queue_id, actor=actor, status=status or None,
                                            kind=interaction_type or None, label=label, value=value, after_pk=after)
    data = [{"id": r.interaction.id, "type": "review_items", "attributes": {
        "position": r.position, "interaction_type": r.interaction.type, "content_id": r.interaction.content_id,
        "reviewers": r.reviewers, "values": r.values, "skipped": r.skipped, "flagged": r.flagged,
        "done_by_me": r.mine, "complete": r.complete, "disagreement": r.disagreement}} for r in rows]
    return respond({"data": data, "meta": {"page": {"after": encode_cursor(last) if last is not None else None}}})


@router.get(BASE + "/progress")
def progress(queue_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """Per reviewer: done, skipped, median seconds per item and an estimate of the time left."""
    ctx, total, complete, reviewers = review_items.progress(session, queue_id=queue_id, actor=actor)
    return respond({"data": {"id": queue_id, "type": "review_progress", "attributes": {
        "items": total, "complete": complete, "settings": ctx.settings.as_dict(),
        "reviewers": [vars(r) for r in reviewers]}}})
