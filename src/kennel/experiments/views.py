"""Rows to wire dicts. Every field the typed client marks required is present (null if empty)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kennel.experiments.models import Experiment
from kennel.jsonapi import dumps, iso
from kennel.spans.intake import tag_value


def experiment_resource(e: Experiment, *, project_id: str, dataset_id: str | None,
                        dataset_name: str | None = None, with_dataset_name: bool = False) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "name": e.name,
        "experiment": e.experiment,
        "project_id": project_id,
        "dataset_id": dataset_id or "",
        "dataset_version": e.dataset_version if e.dataset_version is not None else 0,
        "description": e.description,
        "config": e.config,
        "metadata": e.metadata_ if e.metadata_ is not None else {},
        "run_count": e.run_count,
        "parent_experiment_id": e.parent_experiment_id,
        "error": e.error,
        "aggregate_data": None,
        "author": {"id": e.author_id} if e.author_id else {},
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
        "deleted_at": iso(e.deleted_at),
    }
    # `status` is an enum the typed model does not allow to be null; before the first PATCH it is absent.
    if e.status is not None:
        attrs["status"] = e.status
    if with_dataset_name:
        attrs["dataset_name"] = dataset_name
    return {"id": e.id, "type": "experiments", "attributes": attrs}


def span_with_evals(body: dict[str, Any], meta_text: str | None, evals: Sequence[bytes]) -> bytes:
    """An experiment span as JSON, as both ddtrace's pull parser and the typed LLMObsExperimentSpanWithEvals
    read it. `meta` (input, output, expected_output, metadata, error, ...) is spliced in as stored."""
    tags = body.get("tags") or []
    span_id = str(body.get("span_id"))
    span: dict[str, Any] = {
        "id": span_id,
        "span_id": span_id,
        "trace_id": str(body.get("trace_id")),
        "name": body.get("name"),
        "start_ns": body.get("start_ns"),
        "duration": body.get("duration"),
        "status": body.get("status", "ok"),
        "tags": tags,
        "metrics": body.get("metrics") or {},
        "dataset_record_id": tag_value(tags, "dataset_record_id"),
    }
    parent = body.get("parent_id")
    if parent not in (None, "", "undefined"):
        span["parent_id"] = str(parent)
    return b"".join((dumps(span)[:-1], b',"meta":', (meta_text or "{}").encode(),
                     b',"eval_metrics":[', b",".join(evals), b"]}"))


def join_json(pieces: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(pieces) + b"]"
