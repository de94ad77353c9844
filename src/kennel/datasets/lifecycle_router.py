"""Dataset lifecycle routes: restore, clone, export, file upload, draft lock (issue 4)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response, StreamingResponse

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.datasets import lifecycle, transfer
from kennel.datasets.lifecycle_schemas import CloneRequest, RestoreRequest
from kennel.datasets.models import Dataset
from kennel.datasets.records import NewRecord, check_version
from kennel.datasets.service import ensure_writable, get_dataset, get_version
from kennel.datasets.views import dataset_resource, version_resource
from kennel.db.session import unit_of_work
from kennel.errors import ClientClosedRequest, Invalid, KennelError, out_of_space
from kennel.gate import Admission
from kennel.jsonapi import RawBody, bool_param, dual_route, int_param, iso, parse_body, respond
from kennel.keys.service import Actor
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
    fmt = (format or "csv").strip().lower()
    if fmt not in transfer.FORMATS:
        raise Invalid(f"unknown format {format!r}; use csv or jsonl", parameter="format")
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
    v = check_version(dataset, int_param(version, "version"), parameter="version")
    count = transfer.count_records(session, dataset=dataset, version=v)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name)[:100] or "dataset"
    # The body is read page by page in its own short transactions, after this request's session closed.
    body = transfer.export_stream(request.app.state.sessionmaker, dataset=dataset, version=v, fmt=fmt)
    return StreamingResponse(body, media_type=transfer.EXPORT_MEDIA[fmt], headers={
        "Content-Disposition": f'attachment; filename="{safe}-v{v}.{fmt}"',
        "X-Record-Count": str(count), "X-Dataset-Version": str(v)})


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
    return UploadOptions(deduplicate, bool_param(overwrite, "overwrite", True), _tags(tags), format)


UploadOptionsDep = Annotated[UploadOptions, Depends(upload_options)]


def _read(file: UploadFile, fmt_param: str | None) -> tuple[str, bytes]:
    """The file's format and bytes (decoded as its rows are read: see transfer.iter_records)."""
    return transfer.detect_format(fmt_param, file.filename, file.content_type), file.file.read()


def _tags(values: list[str] | None) -> list[str]:
    return [t.strip() for raw in values or [] for t in raw.split(",") if t.strip()]


class _Cancelled(Exception):
    """The client went away: abandon the write so its transaction rolls back."""


async def _sse_upload(factory: sessionmaker[Session], admission: Admission, *, project_id: str, dataset_id: str,
                      actor: Actor, records: Iterable[NewRecord], total: int, deduplicate: bool, overwrite: bool,
                      tags: list[str]) -> AsyncIterator[bytes]:
    """Write the file in one transaction on a worker thread, relaying its progress as events.

    The transaction lives on the worker, never across a `yield`: a client that hangs up cancels this
    generator, which tells the worker to stop; it raises between chunks and rolls back, so nothing
    of the file is stored and no lock outlives the request.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
    cancel = threading.Event()

    def post(item: tuple[str, dict[str, Any]] | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            with unit_of_work(factory, write=True) as session:
                dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
                progress = transfer.Progress(total=total, version=dataset.current_version)
                for progress in transfer.write_upload(session, dataset=dataset, actor=actor, records=records,
                                                      total=total, deduplicate=deduplicate, overwrite=overwrite,
                                                      tags=tags):
                    if cancel.is_set():
                        raise _Cancelled
                    post(("progress", progress.counts()))
                if cancel.is_set():
                    raise _Cancelled
                # The total was counted from the file's lines; the rows read are the exact figure.
                progress.total = progress.processed
                done = {**progress.counts(), "dataset_id": dataset.id}
            post(("completed", done))
        except _Cancelled:
            pass
        except KennelError as exc:
            post(("error", {"message": exc.detail, "status": exc.status}))
        except Exception as exc:  # noqa: BLE001 - the stream has started; only an event can tell the client
            full = out_of_space(exc)
            if full is not None:
                log.error("out of disk space in the upload into dataset %s: %s", dataset_id, full.detail)
                post(("error", {"message": full.detail, "status": full.status}))
                return
            log.exception("upload into dataset %s failed", dataset_id)
            post(("error", {"message": "the upload failed on the server and nothing was stored; "
                                       "see the server log", "status": 500}))
        finally:
            post(None)

    yield transfer.sse("progress", transfer.Progress(total=total).counts())
    try:
        # The answer has started, so the gate's write turn is over: the write waits for one of its own.
        async with admission.write_turn():
            worker = loop.run_in_executor(None, work)
            try:
                while (item := await queue.get()) is not None:
                    yield transfer.sse(*item)
            finally:
                cancel.set()
            await worker
    except KennelError as exc:
        yield transfer.sse("error", {"message": exc.detail, "status": exc.status})


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
    stream = _sse_upload(request.app.state.sessionmaker, request.app.state.admission, project_id=project_id,
                         dataset_id=dataset_id, actor=actor, records=records, total=total, deduplicate=dedupe,
                         overwrite=options.overwrite, tags=options.tags)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def client_hang_up(request: Request) -> AsyncIterator[threading.Event]:
    """An event set when the client hangs up, for a sync route to check from its worker thread.

    Dependencies run once the body has been read, so the one message left to receive is the
    disconnect; receiving also lets the server read the connection's end while the route works.
    """
    gone = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        watcher.cancel()


HangUpDep = Annotated[threading.Event, Depends(client_hang_up, scope="function")]


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
