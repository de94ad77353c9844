"""Kennel's own routes for the dataset workspace: datasets with their figures, filtered record pages of
any version, the version timeline, diffs of two versions, a record's history, and a guarded record edit.
The web pages (web/datasets.py) call the same functions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from orjson import Fragment
from starlette.responses import Response, StreamingResponse

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.datasets import diff, history, search, workspace
from kennel.datasets.records import check_version
from kennel.datasets.service import get_dataset
from kennel.datasets.workspace_schemas import RecordSaveRequest, VersionListResponse
from kennel.errors import Invalid
from kennel.jsonapi import (
    RawBody,
    decode_cursor,
    encode_cursor,
    int_param,
    iso,
    list_meta,
    page_limit,
    parse_body,
    respond,
)
from kennel.openapi import integer, json_body

router = APIRouter(prefix="/api/kennel/v1", dependencies=[Depends(require_keys)], tags=["dataset workspace"])
VersionQuery = Annotated[str | None, Query(json_schema_extra=integer(0))]
CursorQuery = Annotated[str | None, Query(alias="page[cursor]")]
LimitQuery = Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 1000))]


def revision_resource(rev: workspace.Revision, version: int | None = None) -> dict[str, Any]:
    return {"id": rev.record_id, "type": "dataset_records", "attributes": {
        **rev.content, "revision": str(rev.pk), "opened_in_version": rev.valid_from, "closed_in_version": rev.valid_to,
        "author": {"id": rev.author_id}, "created_at": iso(rev.created_at), "updated_at": iso(rev.updated_at),
        **({"version": version} if version is not None else {})}}


@router.get("/datasets")
def list_datasets(session: SessionDep, project_id: str, search_text: Annotated[str | None, Query(alias="search")] = None,
                  cursor: CursorQuery = None, limit: LimitQuery = None) -> Response:
    """A project's datasets, newest first, with record count, current version, last author and draft lock."""
    size = page_limit(limit, default=50, maximum=1000)
    before = decode_cursor(cursor, (int,))[0] if cursor else None
    rows = workspace.summaries(session, project_id=project_id, search=search_text or None, before_pk=before,
                               limit=size + 1)
    after = encode_cursor(rows[size - 1].dataset.pk) if len(rows) > size else None
    return respond({"data": [{"id": s.dataset.id, "type": "datasets", "attributes": {
        "name": s.dataset.name, "record_count": s.record_count, "current_version": s.dataset.current_version,
        "updated_at": iso(s.dataset.updated_at), "last_author": s.last_author,
        "draft_lock": ({"user": s.dataset.draft_holder_name, "since": iso(s.dataset.drafting_since)}
                       if s.dataset.draft_holder_id else None)}} for s in rows[:size]], "meta": list_meta(after)})


@router.get("/datasets/{dataset_id}/records")
def list_records(dataset_id: str, session: SessionDep, version: VersionQuery = None,
                 filter: Annotated[str | None, Query(description="e.g. @input.country:France tag:lang:fr")] = None,
                 cursor: CursorQuery = None, limit: LimitQuery = None) -> Response:
    """Records of a version (default: current), newest first, filtered (see README, "The dataset workspace")."""
    size = page_limit(limit, default=50, maximum=1000)
    dataset = get_dataset(session, dataset_id=dataset_id)
    after = None
    if cursor:
        after, v = decode_cursor(cursor, (int, int))
        v = check_version(dataset, v, parameter="page[cursor]")
    else:
        v = check_version(dataset, int_param(version, "version"), parameter="version")
    where = search.condition(session, search.parse(filter or ""))
    page = workspace.records_page(session, dataset=dataset, version=v, where=where, after_seq=after, limit=size)
    items = []
    for row in page.rows:
        items.append({"id": row.record_id, "type": "dataset_records", "attributes": {
            "input": _raw(row.input), "expected_output": _raw(row.expected_output), "metadata": _raw(row.metadata),
            "tags": _raw(row.tags) or [], "revision": str(row.pk), "opened_in_version": row.valid_from}})
    nxt = encode_cursor(page.next_seq, v) if page.next_seq is not None else None
    return respond({"data": items, "meta": {**list_meta(nxt), "version": v}})


def _raw(text: str | None) -> Any:
    return None if text is None else Fragment(text)


@router.get("/datasets/{dataset_id}/record")
def get_record(dataset_id: str, session: SessionDep, id: Annotated[str, Query(min_length=1)],
               version: VersionQuery = None) -> Response:
    """One record as it was at a version (default: current), with the revision to edit it on."""
    dataset = get_dataset(session, dataset_id=dataset_id)
    v = check_version(dataset, int_param(version, "version"), parameter="version")
    return respond({"data": revision_resource(workspace.record_at(session, dataset, id, v), v)})


@router.get("/datasets/{dataset_id}/versions", responses={200: {"model": VersionListResponse}})
def versions(dataset_id: str, session: SessionDep, cursor: CursorQuery = None) -> Response:
    """Every version, newest first, with how many records it added, changed and deleted, how many it
    holds, who and when (200 a page)."""
    dataset = get_dataset(session, dataset_id=dataset_id)
    below = decode_cursor(cursor, (int,))[0] if cursor else None
    rows, nxt = history.timeline(session, dataset, below=below)
    return respond({"data": [{"id": str(r.number), "type": "dataset_versions", "attributes": {
        "version": r.number, "created_at": iso(r.created_at), "last_used": iso(r.last_used), "added": r.added,
        "changed": r.changed, "deleted": r.deleted, "record_count": r.record_count, "author": r.author,
        "author_id": r.author_id}} for r in rows],
        "meta": {**list_meta(encode_cursor(nxt) if nxt is not None else None),
                 "current_version": dataset.current_version}})


@router.get("/datasets/{dataset_id}/diff")
def version_diff(dataset_id: str, request: Request, session: SessionDep,
                 from_: Annotated[str | None, Query(alias="from", json_schema_extra=integer(0))] = None,
                 to: VersionQuery = None, kind: Annotated[str | None, Query()] = None,
                 format: Annotated[str | None, Query(description="json (default) or jsonl")] = None,
                 cursor: CursorQuery = None, limit: LimitQuery = None) -> Response:
    """What changed from version `from` to version `to`: counts, then a page of changed records, each with
    its field-level changes. `format=jsonl` gives every change (of `kind`, if given) as JSON lines."""
    size = page_limit(limit, default=50, maximum=1000)
    dataset = get_dataset(session, dataset_id=dataset_id)
    result = diff.compute(session, dataset, int_param(from_, "from"), int_param(to, "to"))
    if format == "jsonl":
        body = diff.jsonl(request.app.state.sessionmaker, result, kind or None)
        return StreamingResponse(body, media_type="application/x-ndjson", headers={
            "Content-Disposition": f'attachment; filename="diff-v{result.from_version}-v{result.to_version}.jsonl"'})
    if format not in (None, "", "json"):
        raise Invalid(f"unknown format {format!r}; use json or jsonl", parameter="format")
    after = tuple(decode_cursor(cursor, (int, str))) if cursor else None
    changes, nxt = diff.page(session, result, kind=kind or None, after=after, limit=size)
    return respond({"data": [{"id": c.record_id, "type": "dataset_record_changes", "attributes": diff.change_dict(c)}
                             for c in changes],
                    "meta": {**list_meta(encode_cursor(*nxt) if nxt else None), "from": result.from_version,
                             "to": result.to_version, "counts": result.counts}})


@router.get("/datasets/{dataset_id}/history")
def record_history(dataset_id: str, session: SessionDep, record_id: Annotated[str, Query(min_length=1)]) -> Response:
    """The versions that changed a record (and what they changed), and the experiments that ran on it."""
    dataset = get_dataset(session, dataset_id=dataset_id)
    found = history.record_history(session, dataset, record_id)
    return respond({"data": {"id": record_id, "type": "dataset_record_history", "attributes": {
        "steps": [{"version": s.version, "kind": s.kind, "author": s.author,
                   "revision": str(s.revision.pk) if s.revision else None,
                   "fields": [f.as_dict() for f in s.fields]} for s in found.steps],
        "experiments": [{"id": e.id, "name": e.name, "dataset_version": e.dataset_version, "status": e.status,
                         "created_at": iso(e.created_at), "output": e.output,
                         "scores": [{"label": label, "value": value} for label, value in e.scores]}
                        for e in found.experiments]}}})


@router.post("/datasets/{dataset_id}/records/save", openapi_extra=json_body(RecordSaveRequest))
def save_record(dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """Replace one record's content as one new version. With `base_revision`, refused (409, nothing saved)
    if the record changed since that revision; the error's meta holds the record as it is now."""
    attrs = parse_body(RecordSaveRequest, raw).data.attributes
    edit = workspace.RecordEdit(attrs.input, attrs.expected_output, attrs.metadata, list(attrs.tags))
    try:
        dataset, result = workspace.save_record(
            session, dataset_id=dataset_id, record_id=attrs.id, edit=edit, actor=actor,
            base_revision=int(attrs.base_revision) if attrs.base_revision else None)
    except workspace.EditConflict as exc:
        if exc.current is not None:
            exc.meta = {**(exc.meta or {}), "current": revision_resource(exc.current)}
        raise
    saved = workspace.record_at(session, dataset, attrs.id, result.version)
    return respond({"data": revision_resource(saved, result.version),
                    "meta": {"version": result.version, "new_version": result.changed}})
