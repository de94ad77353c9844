"""Rows to wire dicts. Every field the typed client marks required is present; a non-nullable string
with no value is "" (queue `description`), and optional fields with no value are left out."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from kennel.annotations.models import AnnotationQueue
from kennel.jsonapi import iso


def queue_resource(queue: AnnotationQueue, project_id: str) -> dict[str, Any]:
    return {
        "id": queue.id,
        "type": "queues",
        "attributes": {
            "project_id": project_id,
            "name": queue.name,
            "description": queue.description or "",
            "annotation_schema": {"label_schemas": queue.label_schemas},
            "reviewer_emails": queue.reviewer_emails,
            "restrict_to_assignees": queue.restrict_to_assignees,
            "restrict_to_reviewers": queue.restrict_to_reviewers,
            # Any valid key pair may manage any queue: keys are the only principals here.
            "can_manage_access": True,
            "created_by": queue.created_by,
            "modified_by": queue.modified_by,
            "owned_by": queue.owned_by,
            "created_at": iso(queue.created_at),
            "modified_at": iso(queue.modified_at),
        },
    }


def label_schema_resource(queue: AnnotationQueue) -> dict[str, Any]:
    return {"id": queue.id, "type": "queues",
            "attributes": {"annotation_schema": {"label_schemas": queue.label_schemas}}}


def _interaction_fields(row: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "type": row.type,
        "content_id": row.content_id,
        "created_at": iso(row.created_at),
        "modified_at": iso(row.modified_at),
    }
    if row.display_block is not None:
        item["display_block"] = row.display_block
    return item


def added_interaction(row: Any, already_existed: bool) -> dict[str, Any]:
    return {**_interaction_fields(row), "already_existed": already_existed}


def upserted_annotation(a: dict[str, Any]) -> dict[str, Any]:
    return {**a, "created_at": iso(a["created_at"]), "modified_at": iso(a["modified_at"])}


def _read_annotation(a: Any, interaction_id: str) -> dict[str, Any]:
    # Reads show label values keyed by label id, each with its value and what it was saved as.
    values = {lv["label_schema_id"]: {k: v for k, v in lv.items() if k != "label_schema_id"}
              for lv in a.label_values}
    return {
        "id": a.id,
        "interaction_id": interaction_id,
        "label_values": values,
        "created_by": a.created_by,
        "modified_by": a.modified_by,
        "created_at": iso(a.created_at),
        "modified_at": iso(a.modified_at),
    }


def annotated_interaction_item(row: Any, annotations: Sequence[Any]) -> dict[str, Any]:
    return {**_interaction_fields(row), "can_annotate": True,
            "annotations": [_read_annotation(a, row.id) for a in annotations]}


def by_content_item(row: Any, annotations: Sequence[Any]) -> dict[str, Any]:
    return {**annotated_interaction_item(row, annotations), "queue_id": row.queue_id, "queue_name": row.queue_name}


def event(span: dict[str, Any]) -> dict[str, Any]:
    """A span as an interaction event: JSON:API spans pass through, bare span dicts get wrapped."""
    if "attributes" in span and "id" in span:
        return {"id": str(span["id"]), "type": str(span.get("type") or "spans"), "attributes": span["attributes"]}
    span_id = span.get("span_id") or span.get("id") or ""
    return {"id": str(span_id), "type": "spans", "attributes": span}


def by_content_response_id(content_ids: Sequence[str]) -> str:
    # Opaque but stable: the same question gets the same id.
    return hashlib.sha256("\n".join(sorted(set(content_ids))).encode()).hexdigest()[:32]
