"""The queue owner's API: agreement, adjudications, export and hand-off to a dataset.

Kennel's own namespace, beside the Datadog routes (which answer exactly as before). Reading these needs
the `read` permission and changing them `write` (members and admins): an annotator is refused (403).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from kennel.annotations import handoff, owner, service
from kennel.annotations.agreement import LabelAgreement, round_or_none
from kennel.annotations.owner_schemas import AdjudicationRequest, ToDatasetRequest
from kennel.annotations.router import _body
from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.jsonapi import (
    RawBody,
    decode_cursor,
    encode_cursor,
    iso,
    no_content,
    page_limit,
    respond,
)
from kennel.openapi import integer, json_body
from kennel.people.roles import OWNER_QUEUE_PREFIX

router = APIRouter(dependencies=[Depends(require_keys)], tags=["annotation queues (Kennel)"])
BASE = OWNER_QUEUE_PREFIX  # every path below it is one of OWNER_QUEUE_PATHS (see people/roles.py)


def label_agreement_view(la: LabelAgreement, interaction_ids: dict[int, str] | None = None) -> dict[str, Any]:
    out = asdict(la)
    for key in ("alpha", "percent_agreement", "similarity"):
        out[key] = round_or_none(out[key], 4)
    for row in (*out["pairs"], *out["versus_consensus"]):
        for key in ("kappa", "agreement", "mean_abs_difference"):
            if key in row:
                row[key] = round_or_none(row[key], 4)
    ids = interaction_ids or {}
    out["most_different"] = [{"interaction_id": ids.get(d["item"], ""), "similarity": round_or_none(d["similarity"], 4),
                              "a": d["a"], "b": d["b"]} for d in la.most_different]
    out["defined"] = la.defined
    return out


def gold_view(labels: list[dict[str, Any]], gold: owner.Gold | None) -> dict[str, Any] | None:
    if gold is None:
        return None
    return {"label_values": _named(labels, gold.values), "adjudicated_by": gold.by, "modified_at": iso(gold.at)}


def _named(labels: list[dict[str, Any]], values: owner.Values) -> dict[str, Any]:
    names = {label["id"]: label["name"] for label in labels}
    return {str(names.get(lid, entry.get("name_when_saved", lid))):
            {k: entry[k] for k in ("value", "assessment", "reasoning") if k in entry}
            for lid, entry in values.items()}


def item_view(labels: list[dict[str, Any]], it: owner.Item) -> dict[str, Any]:
    names = {label["id"]: label["name"] for label in labels}
    return {"id": it.id, "type": "adjudication_items", "attributes": {
        "interaction_type": it.type, "content_id": it.content_id, "display_block": it.display_block,
        "reviews": [{"reviewer": who, "label_values": _named(labels, v)} for who, v in sorted(it.reviews.items())],
        "disagreeing_labels": [names.get(lid, lid) for lid in it.disagreeing],
        "gold": gold_view(labels, it.gold)}}


@router.get(BASE + "/agreement")
def get_agreement(queue_id: str, session: SessionDep) -> Response:
    found = owner.queue_agreement(session, queue_id=queue_id)
    return respond({"data": {"id": queue_id, "type": "queue_agreement", "attributes": {
        "items": found.items, "annotated_items": found.annotated_items, "reviewers": found.reviewers,
        "labels": [label_agreement_view(la, found.interaction_ids) for la in found.labels]}}})


@router.get(BASE + "/adjudications")
def list_adjudications(
    queue_id: str,
    session: SessionDep,
    status: Annotated[str, Query(description="open (not adjudicated), adjudicated, or all")] = "open",
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
    limit: Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 500))] = None,
) -> Response:
    """The items in disagreement, every reviewer's values side by side, and their gold value if any."""
    size = page_limit(limit, default=50, maximum=500)
    after = decode_cursor(cursor, (int,))[0] if cursor else 0
    items, next_pk = owner.disagreements(session, queue_id=queue_id, status=status, after=after, limit=size)
    queue, _ = service.get_queue(session, queue_id=queue_id)
    labels = list(queue.label_schemas or [])
    return respond({"data": [item_view(labels, it) for it in items],
                    "meta": {"after": encode_cursor(next_pk) if next_pk is not None else ""}})


@router.get(BASE + "/adjudications/{interaction_id}")
def get_adjudication(queue_id: str, interaction_id: str, session: SessionDep) -> Response:
    queue, it = owner.item(session, queue_id=queue_id, interaction_id=interaction_id)
    return respond({"data": item_view(list(queue.label_schemas or []), it)})


@router.put(BASE + "/adjudications/{interaction_id}", openapi_extra=json_body(AdjudicationRequest))
def put_adjudication(queue_id: str, interaction_id: str, session: SessionDep, actor: ActorDep,
                     raw: RawBody) -> Response:
    """Set the gold value of an item (replacing an earlier one): an authoritative annotation."""
    values = _body(AdjudicationRequest, raw).data.attributes.label_values
    owner.adjudicate(session, queue_id=queue_id, interaction_id=interaction_id, label_values=values, actor=actor)
    queue, it = owner.item(session, queue_id=queue_id, interaction_id=interaction_id)
    return respond({"data": item_view(list(queue.label_schemas or []), it)})


@router.delete(BASE + "/adjudications/{interaction_id}")
def delete_adjudication(queue_id: str, interaction_id: str, session: SessionDep) -> Response:
    owner.withdraw(session, queue_id=queue_id, interaction_id=interaction_id)
    return no_content()


@router.get(BASE + "/export", responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}})
def export(queue_id: str, session: SessionDep,
           format: Annotated[str, Query(description="csv or jsonl")] = "csv") -> Response:
    """The queue's annotations: CSV with one column per reviewer per label (and the gold value), or JSONL."""
    name, data = handoff.export(session, queue_id=queue_id, fmt=format)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post(BASE + "/to-dataset", openapi_extra=json_body(ToDatasetRequest))
def to_dataset(queue_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """Add the chosen items to a dataset as one new version (or, with preview, show the mapping only)."""
    attrs = _body(ToDatasetRequest, raw).data.attributes
    spec = handoff.HandOff(selection=attrs.items, reviewers_per_item=attrs.reviewers_per_item,
                           source=attrs.expected_output_from, label=attrs.label)
    if attrs.preview:
        queue, _ = service.get_queue(session, queue_id=queue_id)
        total, planned = handoff.plan(session, queue=queue, handoff=spec, limit=handoff.PREVIEW)
        return respond({"data": {"id": queue_id, "type": "to_dataset_preview", "attributes": {
            "items": total, "records": [{"interaction_id": iid, **handoff.record_view(r)} for iid, r in planned]}}})
    done = handoff.to_dataset(session, queue_id=queue_id, handoff=spec, dataset_id=attrs.dataset_id,
                              dataset_name=attrs.dataset_name, actor=actor)
    return respond({"data": {"id": done.dataset_id, "type": "to_dataset", "attributes": asdict(done)}}, status=201)
