"""Dataset lifecycle routes: restore, clone, export, file upload, draft lock (issue 4)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.datasets import lifecycle, transfer
from kennel.datasets.lifecycle_schemas import CloneRequest, RestoreRequest
from kennel.datasets.models import Dataset
from kennel.datasets.service import ensure_writable, get_dataset, get_version
from kennel.datasets.views import dataset_resource, version_resource
from kennel.errors import ClientClosedRequest, Invalid
from kennel.jsonapi import HangUpDep, RawBody, bool_param, comma_list, dual_route, int_param, iso, parse_body, respond
from kennel.openapi import BOOLEAN, integer

log = logging.getLogger("kennel")

router = APIRouter(dependencies=[Depends(require_keys)], tags=["datasets"])


def route(method: str, path: str,
          body: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return dual_route(router, method, path, body=body)


def _check_body_id(body_id: str | None, dataset_id: str) -> None:
    if body_id is not None and body_id != dataset_id:
        raise Invalid(f"data.id {body_id!r} does not match the dataset in the path ({dataset_id})", pointer="/data/id")


@route("POST", "/v1/{project_id}/datasets/{dataset_id}/restore", RestoreRequest)
def restore(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    data = parse_body(RestoreRequest, raw).data
    _check_body_id(data.id, dataset_id)
    dataset = lifecycle.restore_version(session, project_id=project_id, dataset_id=dataset_id,
                                        version=data.attributes.dataset_version, actor=actor)
    # The typed client expects no body; ddtrace-style callers get the dataset with its new version.
    return respond({"data": dataset_resource(dataset, project_id)})


@route("POST", "/v1/{project_id}/datasets/{dataset_id}/clone", CloneRequest)
def clone(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    data = parse_body(CloneRequest, raw).data
    _check_body_id(data.id, dataset_id)
    attrs = data.attributes
    dataset = lifecycle.clone_dataset(session, project_id=project_id, dataset_id=dataset_id, name=attrs.name,
                                      description=attrs.description,
                                      description_given="description" in attrs.model_fields_set, actor=actor)
    return respond({"data": dataset_resource(dataset, project_id)})


def _draft_state(dataset: Dataset) -> dict[str, Any]:
    """The typed model requires `drafting_since` and `user.id` even when nobody holds the lock.

    Unlocked, `locked` is false, `user.id` is "" and `drafting_since` is the dataset's last change
    (the draft as it stands dates from then). Locked, `user` is the key pair holding the lock.
    """
    if dataset.draft_holder_id is None:
        attrs = {"locked": False, "drafting_since": iso(dataset.updated_at), "user": {"id": "", "name": ""}}
    else:
        attrs = {"locked": True, "drafting_since": iso(dataset.drafting_since),
                 "user": {"id": dataset.draft_holder_id, "name": dataset.draft_holder_name or ""}}
    return {"data": {"id": dataset.id, "type": "draft_state_data", "attributes": attrs}}


@route("GET", "/v1/{project_id}/datasets/{dataset_id}/draft_state")
def get_draft_state(project_id: str, dataset_id: str, session: SessionDep) -> Response:
    return respond(_draft_state(lifecycle.get_draft_state(session, project_id=project_id, dataset_id=dataset_id)))


@route("PATCH", "/v1/{project_id}/datasets/{dataset_id}/draft_state/lock")
def lock_draft_state(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return respond(_draft_state(lifecycle.lock_draft(session, project_id=project_id, dataset_id=dataset_id,
                                                     actor=actor)))


@route("PATCH", "/v1/{project_id}/datasets/{dataset_id}/draft_state/unlock")
def unlock_draft_state(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return respond(_draft_state(lifecycle.unlock_draft(session, project_id=project_id, dataset_id=dataset_id,
                                                       actor=actor)))


# Export -----------------------------------------------------------------------------------------

@route("GET", "/v1/{project_id}/datasets/{dataset_id}/export")
def export(
    project_id: str,
    dataset_id: str,
    request: Request,
    session: SessionDep,
    format: Annotated[str | None, Query()] = None,
    version: Annotated[str | None, Query(json_schema_extra=integer(0))] = None,
) -> Response:
    out = transfer.start_export(session, request.app.state.sessionmaker, project_id=project_id,
                                dataset_id=dataset_id, fmt=format, version=int_param(version, "version"))
    return StreamingResponse(out.body, media_type=out.media_type, headers={
        "Content-Disposition": f'attachment; filename="{out.filename}"',
        "X-Record-Count": str(out.count), "X-Dataset-Version": str(out.version)})


# Upload -----------------------------------------------------------------------------------------

FileDep = Annotated[UploadFile, File(description="The records file (CSV or JSONL).")]


@dataclass(frozen=True)
class UploadOptions:
    """Query options of both upload routes; only the default of `deduplicate` differs between them."""

    deduplicate: str | None
    overwrite: bool
    tags: list[str]
    format: str | None

    def deduplicate_or(self, default: bool) -> bool:
        return bool_param(self.deduplicate, "deduplicate", default)


def upload_options(
    deduplicate: Annotated[str | None, Query(json_schema_extra=BOOLEAN)] = None,
    overwrite: Annotated[str | None, Query(json_schema_extra=BOOLEAN)] = None,
    tags: Annotated[list[str] | None, Query()] = None,
    format: Annotated[str | None, Query()] = None,
) -> UploadOptions:
    return UploadOptions(deduplicate, bool_param(overwrite, "overwrite", True), comma_list(tags, strip=True), format)


UploadOptionsDep = Annotated[UploadOptions, Depends(upload_options)]


def _read(file: UploadFile, fmt_param: str | None) -> tuple[str, bytes]:
    """The file's format and bytes (decoded as its rows are read: see transfer.iter_records)."""
    return transfer.detect_format(fmt_param, file.filename, file.content_type), file.file.read()


@route("POST", "/v2/{project_id}/datasets/{dataset_id}/records/upload")
def upload_records_file(
    project_id: str,
    dataset_id: str,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    file: FileDep,
    options: UploadOptionsDep,
) -> Response:
    """The typed route: the write streams as Server-Sent Events.

    The file is read once, as it is written. Problems in the header or the first chunk of rows are a
    400 before the stream starts; a later bad row ends the stream with an `error` event, and the
    write's transaction rolls back, so nothing of the file is stored either way.
    """
    dedupe = options.deduplicate_or(False)
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
    ensure_writable(dataset, actor)
    fmt, data = _read(file, options.format)
    records, total = transfer.start_records(data, fmt)
    stream = transfer.upload_events(request.app.state.sessionmaker, request.app.state.admission,
                                    project_id=project_id, dataset_id=dataset_id, actor=actor, records=records,
                                    total=total, deduplicate=dedupe, overwrite=options.overwrite, tags=options.tags)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _unless_gone(gone: threading.Event, dataset_id: str) -> None:
    if gone.is_set():
        log.warning("the client hung up before its upload into dataset %s was committed; rolled back, "
                    "nothing of the file was stored", dataset_id)
        raise ClientClosedRequest("the client closed the connection before the upload was committed; "
                                  "nothing was stored")


def upload_for_ddtrace(
    dataset_id: str,
    session: SessionDep,
    actor: ActorDep,
    file: FileDep,
    options: UploadOptionsDep,
    gone: HangUpDep,
) -> Response:
    """ddtrace's CSV upload: no project in the path, a plain 200 with the dataset version written.

    The file is checked while it is written, and a problem is a 400 after this request's transaction
    rolls back, so nothing of it is stored. A client that hangs up before the commit (ddtrace gives
    up after 60 s) would never learn the outcome, so it gets the same: the write stops at the next
    chunk, or just before the commit, and rolls back.
    """
    dataset = get_dataset(session, dataset_id=dataset_id, for_update=True)
    ensure_writable(dataset, actor)
    fmt, data = _read(file, options.format)
    for _ in transfer.write_upload(session, dataset=dataset, actor=actor, records=transfer.iter_records(data, fmt),
                                   total=0, deduplicate=options.deduplicate_or(True), overwrite=options.overwrite,
                                   tags=options.tags):
        _unless_gone(gone, dataset_id)
    row = get_version(session, dataset=dataset, version=dataset.current_version)
    _unless_gone(gone, dataset_id)
    return respond({"data": version_resource(row, dataset.id)})


route("POST", "/v1/datasets/{dataset_id}/records/upload")(upload_for_ddtrace)
