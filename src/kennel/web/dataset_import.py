"""Import a CSV or JSONL file into a dataset from the app: upload, preview the first rows and choose which
column is the input, expected output, metadata, tags or id, then write it as one new version while a
progress bar follows it.

Each step calls the import service (datasets/dataset_import.py), as the API does, so the file and the
write's progress live in the database and any server may answer any step. The upload is streamed
(gate.streamed_body): the session cookie is checked before the body is read, and the file goes to disk
and then into the database a chunk at a time.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from kennel.auth import SessionDep
from kennel.datasets import dataset_import as imports
from kennel.datasets.import_router import stage_upload
from kennel.db.session import unit_of_work
from kennel.errors import KennelError
from kennel.gate import streamed_body
from kennel.people.roles import Permission
from kennel.web.auth import PageForbidden, Person, PersonDep, SignInNeeded, signed_in
from kennel.web.dataset_records import locked_by_other
from kennel.web.datasets import dataset_and_project, workspace_page
from kennel.web.router import FormDep, _text

router = APIRouter(include_in_schema=False)


def _import_page(request: Request, session: Any, person: Person, dataset_id: str, status: int = 200,
                 **context: Any) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    return workspace_page(request, "dataset_import.html", person, dataset, project, "import", status,
                          roles=imports.ROLES, locked_by_other=locked_by_other(dataset, person.actor), **context)


def _mapping_page(request: Request, session: Any, person: Person, dataset_id: str, state: imports.ImportState,
                  status: int = 200, error: str | None = None, mapping: dict[str, str] | None = None) -> Response:
    columns = [(c, (mapping or {}).get(c, g)) for c, g in state.preview.columns]
    return _import_page(request, session, person, dataset_id, status, state=state, columns=columns,
                        rows=state.preview.rows, error=error or (state.row.error if state.row.status == "failed"
                                                                 else None))


@router.get("/datasets/{dataset_id}/import")
def import_form(request: Request, session: SessionDep, person: PersonDep, dataset_id: str) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    return _import_page(request, session, person, dataset_id)


def _person(request: Request) -> Person:
    """The signed-in person, from the cookie alone: checked before the upload's body is read."""
    with unit_of_work(request.app.state.sessionmaker, write=True) as session:
        signed = signed_in(request, session)
    if signed is None:
        raise SignInNeeded
    person = Person(signed.actor, signed.csrf_token)
    person.require(Permission.WRITE, "changing datasets")
    return person


def _refused(request: Request, person: Person, dataset_id: str, exc: KennelError) -> Response:
    with unit_of_work(request.app.state.sessionmaker, write=False) as session:
        return _import_page(request, session, person, dataset_id, exc.status, error=exc.detail)


@router.post("/datasets/{dataset_id}/import", dependencies=[Depends(streamed_body)])
async def upload(request: Request, dataset_id: str) -> Response:
    admission = request.app.state.admission
    async with admission.write_turn():
        person = await run_in_threadpool(_person, request)
    form = await request.form(max_files=1)
    try:
        csrf = form.get("csrf_token")
        if not (isinstance(csrf, str) and csrf == person.csrf_token):
            raise PageForbidden("This form has expired or did not come from Kennel (its CSRF token is missing or "
                                "wrong). Reload the page and try again.", person)
        try:
            state = await stage_upload(request, dataset_id=dataset_id, actor=person.actor, upload=form.get("file"))
        except KennelError as exc:
            return await run_in_threadpool(_refused, request, person, dataset_id, exc)
    finally:
        await form.close()
    return RedirectResponse(f"/datasets/{dataset_id}/import/{state.id}", status_code=303)


@router.get("/datasets/{dataset_id}/import/{import_id}")
def import_page(request: Request, session: SessionDep, person: PersonDep, dataset_id: str,
                import_id: str) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    state = imports.status(session, request.app.state.sessionmaker, dataset_id=dataset_id, import_id=import_id,
                           actor=person.actor)
    if state.row.status == "done":
        return RedirectResponse(f"/datasets/{dataset_id}/versions?imported={state.created}:{state.updated}",
                                status_code=303)
    return _mapping_page(request, session, person, dataset_id, state)


@router.get("/datasets/{dataset_id}/import/{import_id}/status")
def import_status(request: Request, session: SessionDep, person: PersonDep, dataset_id: str,
                  import_id: str) -> Response:
    """What the progress bar polls while the write runs (on whichever server)."""
    person.require(Permission.WRITE, "changing datasets")
    state = imports.status(session, request.app.state.sessionmaker, dataset_id=dataset_id, import_id=import_id,
                           actor=person.actor)
    return JSONResponse({k: v for k, v in state.as_dict().items() if k != "preview"})


@router.post("/datasets/{dataset_id}/import/{import_id}/write")
def write(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, import_id: str,
          form: FormDep) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    mapping = {str(form.get(f"column-{i}") or ""): _text(form, f"role-{i}") for i in range(imports.MAX_COLUMNS)
               if form.get(f"column-{i}") is not None}
    # The write runs its own transactions; on SQLite this request's would hold the write lock against them.
    session.commit()
    factory = request.app.state.sessionmaker
    try:
        done = imports.write(factory, dataset_id=dataset_id, import_id=import_id, actor=person.actor,
                             mapping=mapping, deduplicate=form.get("deduplicate") == "on")
    except KennelError as exc:
        with unit_of_work(factory, write=False) as again:
            # The file is still kept: the mapping as sent comes back, to be corrected.
            state = imports.status(again, factory, dataset_id=dataset_id, import_id=import_id, actor=person.actor)
            return _mapping_page(request, again, person, dataset_id, state, exc.status, exc.detail, mapping)
    return RedirectResponse(f"/datasets/{dataset_id}/versions?imported={done.created}:{done.updated}",
                            status_code=303)
