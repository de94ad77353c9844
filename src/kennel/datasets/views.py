"""Rows to wire dicts, shaped so that both real clients accept them (see COMPATIBILITY.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from orjson import Fragment

from kennel.datasets.models import Dataset, DatasetVersion
from kennel.datasets.plan import RecordState
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


def _stamp_formatter() -> Callable[[Any], Any]:
    """Render stored timestamps once per distinct value: a page's rows share few of them."""
    seen: dict[Any, Any] = {}

    def render(value: Any) -> Any:
        out = seen.get(value)
        if out is None:
            if isinstance(value, str):  # SQLite text "YYYY-MM-DD HH:MM:SS.ffffff", UTC
                out = f"{value[:10]}T{value[11:]}Z"
            else:  # PostgreSQL datetime: orjson writes it itself
                out = value
            seen[value] = out
        return out

    return render


def _fragment(raw: str | None) -> Any:
    return None if raw is None else Fragment(raw)


def record_rows(dataset_id: str, rows: list[Any]) -> list[dict[str, Any]]:
    """A read page in both shapes, with the stored JSON passed through without parsing it."""
    stamp = _stamp_formatter()
    out = []
    # Unpacked by position (store.PAGE_FIELDS, the columns of RecordStore.page): a page is 1,000 rows,
    # and named access on a Row goes through a Python-level lookup per field.
    for record_id, canonical_id, _seq, input_raw, expected_raw, metadata_raw, tags_raw, author_id, \
            created_raw, updated_raw in rows:
        input_, expected, metadata = _fragment(input_raw), _fragment(expected_raw), _fragment(metadata_raw)
        created, updated = stamp(created_raw), stamp(updated_raw)
        out.append({
            "id": record_id,
            "type": "datasets",
            "attributes": {
                "dataset_id": dataset_id, "input": input_, "expected_output": expected, "metadata": metadata,
                "tags": _fragment(tags_raw) or [], "canonical_id": canonical_id, "author": {"id": author_id},
                "created_at": created, "updated_at": updated,
            },
            "dataset_id": dataset_id, "input": input_, "expected_output": expected, "metadata": metadata,
            "created_at": created, "updated_at": updated,
        })
    return out


def mutation_items(dataset_id: str, states: list[RecordState], version: int) -> list[dict[str, Any]]:
    """Changed records: `attributes` for ddtrace, `records: [flat record]` for the typed client."""
    stamps: dict[Any, str | None] = {}

    def stamp(value: Any) -> str | None:
        if value not in stamps:
            stamps[value] = iso(value)
        return stamps[value]

    items = []
    for s in states:
        created, updated = stamp(s.created_at), stamp(s.updated_at)
        attrs: dict[str, Any] = {
            "dataset_id": dataset_id, "input": s.input, "expected_output": s.expected_output,
            "metadata": s.metadata, "tags": s.tags, "canonical_id": s.canonical_id,
            "author": {"id": s.author_id}, "created_at": created, "updated_at": updated, "version": version,
        }
        if s.deleted:
            attrs["deleted_at"] = stamp(s.deleted_at)
            attrs["ttl"] = DELETED_TTL
        items.append({
            "id": s.record_id,
            "type": "datasets",
            "attributes": attrs,
            "records": [{"id": s.record_id, "dataset_id": dataset_id, "input": s.input,
                         "expected_output": s.expected_output, "metadata": s.metadata,
                         "created_at": created, "updated_at": updated}],
        })
    return items
