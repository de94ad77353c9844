"""Rows to wire dicts. Every field the typed client marks required is present; a non-nullable string
with no value is "" (queue `description`), and optional fields with no value are left out."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

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


def added_interaction(row: Any, already_existed: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "type": row.type,
        "content_id": row.content_id,
        "created_at": iso(row.created_at),
        "modified_at": iso(row.modified_at),
        "already_existed": already_existed,
    }
    if row.display_block is not None:
        item["display_block"] = row.display_block
    return item


def upserted_annotation(a: dict[str, Any]) -> dict[str, Any]:
    # Requests and upsert responses list label values; storage and reads key them by label id.
    values = [{"label_schema_id": label_id, **entry} for label_id, entry in a["label_values"].items()]
    return {**a, "label_values": values, "created_at": iso(a["created_at"]), "modified_at": iso(a["modified_at"])}


# Reads serialise their items here: stored JSON text goes through as a Fragment (no parse and
# re-encode), and orjson formats the plain UTC datetimes the read queries return.
_READ_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def _read_item(row: Sequence[Any], annotations: Sequence[Sequence[Any]]) -> dict[str, Any]:
    # Rows are plain tuples in the column order of service._READ_INTERACTION / _READ_ANNOTATION:
    # positional access is several times cheaper than named access, and a queue read is 10^4 rows.
    _pk, interaction_id, kind, content_id, blocks, created_at, modified_at = row[:7]
    item: dict[str, Any] = {
        "id": interaction_id,
        "type": kind,
        "content_id": content_id,
        "created_at": created_at,
        "modified_at": modified_at,
        "can_annotate": True,
        "annotations": [{
            "id": a_id,
            "interaction_id": interaction_id,
            "label_values": orjson.Fragment(label_values),
            "created_by": created_by,
            "modified_by": modified_by,
            "created_at": a_created,
            "modified_at": a_modified,
        } for _ipk, a_id, label_values, created_by, modified_by, a_created, a_modified in annotations],
    }
    if blocks is not None:
        item["display_block"] = orjson.Fragment(blocks)
    return item


def annotated_interaction_item(row: Any, annotations: Sequence[Any]) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(_read_item(row, annotations), option=_READ_OPTIONS))


def annotated_interaction_items(rows: Sequence[Any], grouped: dict[int, list[Any]]) -> orjson.Fragment:
    items = [_read_item(row, grouped.get(row[0], ())) for row in rows]
    return orjson.Fragment(orjson.dumps(items, option=_READ_OPTIONS))


def by_content_items(rows: Sequence[Any], grouped: dict[int, list[Any]]) -> orjson.Fragment:
    items = []
    for row in rows:
        item = _read_item(row, grouped.get(row[0], ()))
        item["queue_id"], item["queue_name"] = row[7], row[8]
        items.append(item)
    return orjson.Fragment(orjson.dumps(items, option=_READ_OPTIONS))


def event(span: dict[str, Any]) -> dict[str, Any]:
    """A span as an interaction event: JSON:API spans pass through, bare span dicts get wrapped."""
    if "attributes" in span and "id" in span:
        return {"id": str(span["id"]), "type": str(span.get("type") or "spans"), "attributes": span["attributes"]}
    span_id = span.get("span_id") or span.get("id") or ""
    return {"id": str(span_id), "type": "spans", "attributes": span}


def by_content_response_id(content_ids: Sequence[str]) -> str:
    # Opaque but stable: the same question gets the same id.
    return hashlib.sha256("\n".join(sorted(set(content_ids))).encode()).hexdigest()[:32]
