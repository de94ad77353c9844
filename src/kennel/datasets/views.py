"""Rows to wire dicts, shaped so that both real clients accept them (see COMPATIBILITY.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kennel.datasets.models import Dataset, DatasetVersion
from kennel.datasets.records import RecordState
from kennel.jsonapi import iso

# How long a soft-deleted record is kept in the hosted API; Kennel keeps history indefinitely but
# reports the field ddtrace's recordings show.
DELETED_TTL = int(timedelta(days=30).total_seconds())


def dataset_resource(d: Dataset, project_id: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "name": d.name,
        "description": d.description,
        "metadata": d.metadata_,
        "current_version": d.current_version,
        "project_id": project_id,
        "dataset_type": "user",
        "author": {"id": d.author_id},
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }
    if d.deleted_at is not None:
        attrs["deleted_at"] = iso(d.deleted_at)
    return {"id": d.id, "type": "datasets", "attributes": attrs}


def version_resource(v: DatasetVersion, dataset_id: str) -> dict[str, Any]:
    return {
        "id": v.id,
        "type": "dataset_version",
        "attributes": {"dataset_id": dataset_id, "version_number": v.version_number, "last_used": iso(v.last_used)},
    }


def record_resource(dataset_id: str, record_id: str, canonical_id: str, input_: Any, expected_output: Any,
                    metadata: Any, tags: list[str] | None, author_id: str | None, created_at: Any, updated_at: Any,
                    **extra: Any) -> dict[str, Any]:
    """A record in both shapes at once: flat fields for the typed client, `attributes` for ddtrace."""
    created, updated = iso(created_at), iso(updated_at)
    attrs = {
        "dataset_id": dataset_id,
        "input": input_,
        "expected_output": expected_output,
        "metadata": metadata,
        "tags": tags or [],
        "canonical_id": canonical_id,
        "author": {"id": author_id},
        "created_at": created,
        "updated_at": updated,
        **extra,
    }
    return {
        "id": record_id,
        "type": "datasets",
        "attributes": attrs,
        "dataset_id": dataset_id,
        "input": input_,
        "expected_output": expected_output,
        "metadata": metadata,
        "created_at": created,
        "updated_at": updated,
    }


def record_rows(dataset_id: str, rows: list[Any]) -> list[dict[str, Any]]:
    return [record_resource(dataset_id, r.record_id, r.canonical_id, r.input, r.expected_output, r.metadata,
                            r.tags, r.author_id, r.created_at, r.updated_at) for r in rows]


def mutation_item(dataset_id: str, s: RecordState, version: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"version": version}
    if s.deleted:
        extra["deleted_at"] = iso(s.deleted_at)
        extra["ttl"] = DELETED_TTL
    item = record_resource(dataset_id, s.record_id, s.canonical_id, s.input, s.expected_output, s.metadata,
                           s.tags, s.author_id, s.created_at, s.updated_at, **extra)
    # The typed client reads data[i].records[...] (flat records); ddtrace reads data[i].attributes.
    flat = {k: item[k] for k in ("id", "dataset_id", "input", "expected_output", "metadata", "created_at",
                                 "updated_at")}
    item["records"] = [flat]
    return item
