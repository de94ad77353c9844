"""Kennel's routes for importing a file into a dataset in steps any server may answer (dataset_import):
stage the file and get its preview, read the import's status and progress, write it with a mapping.
The app's import page (web/dataset_import.py) calls the same functions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.datasets import dataset_import
from kennel.datasets.import_schemas import ImportUpload, ImportWriteRequest
from kennel.db.session import unit_of_work
from kennel.errors import Invalid
from kennel.gate import streamed_body
from kennel.jsonapi import RawBody, parse_body, respond
from kennel.keys.service import Actor
from kennel.openapi import json_body

router = APIRouter(prefix="/api/kennel/v1", dependencies=[Depends(require_keys)], tags=["dataset imports"])

def import_resource(state: dataset_import.ImportState) -> dict[str, Any]:
    return {"id": state.id, "type": "dataset_imports",
            "attributes": {"dataset_id": state.dataset_id, **state.as_dict()}}


async def stage_upload(request: Request, *, dataset_id: str, actor: Actor, upload: Any) -> dataset_import.ImportState:
    """Stage the multipart file `upload` (already spooled by Starlette) in a write turn of its own."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise Invalid("send the file (CSV or JSONL) as the multipart field `file`", parameter="file")
    factory = request.app.state.sessionmaker

    def work() -> dataset_import.ImportState:
        with unit_of_work(factory, write=True) as session:
            return dataset_import.stage(session, dataset_id=dataset_id, actor=actor, filename=upload.filename or "",
                                        content_type=upload.content_type, file=upload.file)

    async with request.app.state.admission.write_turn():
        return await run_in_threadpool(work)


@router.post("/datasets/{dataset_id}/imports", status_code=201, dependencies=[Depends(streamed_body)],
             openapi_extra=json_body(ImportUpload, "multipart/form-data"))
async def create_import(dataset_id: str, request: Request, actor: ActorDep) -> Response:
    """Stage a CSV or JSONL file for import: answers the import's id, with a preview of its first rows and a
    guess of which column is the input, expected output, metadata, tags and id. Nothing is written to the
    dataset yet. The file is kept for an hour, in the database, so any server can go on with it."""
    # Read here, not by a File() parameter: FastAPI would answer the gate's 413 or 408 as a 400.
    form = await request.form(max_files=1)
    try:
        state = await stage_upload(request, dataset_id=dataset_id, actor=actor, upload=form.get("file"))
    finally:
        await form.close()
    return respond({"data": import_resource(state)}, 201)


@router.get("/datasets/{dataset_id}/imports/{import_id}")
def get_import(dataset_id: str, import_id: str, request: Request, session: SessionDep, actor: ActorDep) -> Response:
    """An import's status (staged, writing, done or failed), its progress while it is written, the error
    of a failed write, and its preview. Only whoever sent the file may read it (409 otherwise)."""
    state = dataset_import.status(session, request.app.state.sessionmaker, dataset_id=dataset_id,
                                  import_id=import_id, actor=actor)
    return respond({"data": import_resource(state)})


@router.post("/datasets/{dataset_id}/imports/{import_id}/write", openapi_extra=json_body(ImportWriteRequest))
def write_import(dataset_id: str, import_id: str, request: Request, actor: ActorDep, raw: RawBody) -> Response:
    """Write the staged file as one new version, its columns mapped to record fields (`mapping`: column ->
    input, expected_output, metadata, tags, id or ignore). Answers when the write is done; meanwhile any
    server shows its progress (GET the import). All or nothing: a bad row is a 400 naming it."""
    attrs = parse_body(ImportWriteRequest, raw).data.attributes
    factory = request.app.state.sessionmaker
    dataset_import.write(factory, dataset_id=dataset_id, import_id=import_id, actor=actor, mapping=attrs.mapping,
                         deduplicate=attrs.deduplicate)
    with unit_of_work(factory, write=False) as session:
        state = dataset_import.status(session, factory, dataset_id=dataset_id, import_id=import_id, actor=actor)
    return respond({"data": import_resource(state)})


