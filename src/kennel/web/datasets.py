"""The dataset workspace's pages: a project's datasets, the records of any version (filtered, keyset
pages, compact or full), the version timeline with restore, the diff of two versions, export, clone
and the draft lock. One record's page and its edits are in web/dataset_records.py.

Every page calls the functions the API routes call (datasets/workspace_router.py and the Datadog
routes), and keeps its state in the URL: version, filter, view, cursor, diff versions and kind.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from kennel.auth import SessionDep
from kennel.datasets import diff, history, lifecycle, search, transfer, workspace
from kennel.datasets.models import Dataset
from kennel.datasets.records import check_version
from kennel.datasets.service import get_dataset, project_id_of
from kennel.errors import Invalid, KennelError
from kennel.jsonapi import decode_cursor, encode_cursor, int_param
from kennel.people.roles import Permission
from kennel.projects.service import get_project
from kennel.web.auth import Person, PersonDep
from kennel.web.json_view import one_line, pretty, tree
from kennel.web.router import FormDep, _text, render, templates

router = APIRouter(include_in_schema=False)
templates.env.filters["tojson_pretty"] = pretty
PAGE = 50
# Characters of a value shown in the compact view's cells, and in the full view before "show all".
COMPACT_CUT = 140
FULL_CUT = 600


def dataset_and_project(session: SessionDep, person: Person, dataset_id: str) -> tuple[Dataset, Any]:
    person.require(Permission.READ, "reading datasets")
    dataset = get_dataset(session, dataset_id=dataset_id)
    project = get_project(session, project_id=project_id_of(session, dataset))
    return dataset, project


def url_with(path: str, **params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def workspace_page(request: Request, name: str, person: Person, dataset: Dataset, project: Any, tab: str,
          status: int = 200, **context: Any) -> Response:
    return render(request, name, status, person=person, nav="projects", dataset=dataset, project=project, tab=tab,
                  may_write=person.may(Permission.WRITE), **context)


# A project's datasets ----------------------------------------------------------------------------------

@router.get("/projects/{project_id}/datasets")
def datasets_page(request: Request, session: SessionDep, person: PersonDep, project_id: str, q: str = "",
                  cursor: str | None = None) -> Response:
    person.require(Permission.READ, "reading datasets")
    project = get_project(session, project_id=project_id)
    before = decode_cursor(cursor, (int,), parameter="cursor")[0] if cursor else None
    rows = workspace.summaries(session, project_id=project_id, search=q or None, before_pk=before, limit=PAGE + 1)
    next_url = url_with(request.url.path, q=q, cursor=encode_cursor(rows[PAGE - 1].dataset.pk)) if len(rows) > PAGE \
        else None
    return render(request, "datasets.html", person=person, nav="projects", project=project, rows=rows[:PAGE], q=q,
                  next_url=next_url)


# Records of a version -----------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}")
def records_page(request: Request, session: SessionDep, person: PersonDep, dataset_id: str,
                 version: str | None = None, filter: str = "", view: str = "compact",
                 cursor: str | None = None, deleted: str = "", at: str = "", cloned: str = "") -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    view = "full" if view == "full" else "compact"
    v = check_version(dataset, int_param(version, "version"), parameter="version")
    after = decode_cursor(cursor, (int,), parameter="cursor")[0] if cursor else None
    error = None
    try:
        where = search.condition(session, search.parse(filter))
    except Invalid as exc:
        error, where = exc.detail, None
    rows: list[dict[str, Any]] = []
    next_url = None
    if where is not None:
        page = workspace.records_page(session, dataset=dataset, version=v, where=where, after_seq=after, limit=PAGE)
        rows = [_record_view(r, view) for r in page.rows]
        if page.next_seq is not None:
            next_url = url_with(request.url.path, version=version, filter=filter, view=view,
                            cursor=encode_cursor(page.next_seq))
    # A delete redirects here, and a clone to the copy: the page says what they did.
    done = {"deleted": deleted, "deleted_in": int(at)} if deleted and at.isdigit() and int(at) > 0 else {}
    return workspace_page(request, "dataset.html", person, dataset, project, "records", 400 if error else 200,
                 done=done, cloned=cloned, rows=rows,
                 version=v, version_param=version or "", filter=filter, view=view, error=error, next_url=next_url,
                 first_url=url_with(request.url.path, version=version, filter=filter, view=view) if cursor else None,
                 switch_url=url_with(request.url.path, version=version, filter=filter,
                                 view="compact" if view == "full" else "full"))


def _record_view(row: Any, view: str) -> dict[str, Any]:
    values = {name: orjson.loads(getattr(row, name)) if getattr(row, name) is not None else None
              for name in ("input", "expected_output", "metadata")}
    tags = orjson.loads(row.tags) if row.tags else []
    out: dict[str, Any] = {"id": row.record_id, "tags": tags, "version": row.valid_from}
    for name, value in values.items():
        out[name] = one_line(value, COMPACT_CUT) if view == "compact" else (
            tree(value, limit=FULL_CUT) if value is not None else None)
    return out


# Versions -------------------------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}/versions")
def versions_page(request: Request, session: SessionDep, person: PersonDep, dataset_id: str,
                  cursor: str | None = None, restored: str = "", imported: str = "") -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    below = decode_cursor(cursor, (int,), parameter="cursor")[0] if cursor else None
    rows, nxt = history.timeline(session, dataset, below=below)
    next_url = url_with(request.url.path, cursor=encode_cursor(nxt)) if nxt is not None else None
    def pair(text: str) -> list[int] | None:
        return [int(n) for n in text.split(":")] if re.fullmatch(r"[0-9]{1,12}:[0-9]{1,12}", text) else None

    return workspace_page(request, "dataset_versions.html", person, dataset, project, "versions", rows=rows,
                 next_url=next_url, restored=pair(restored), imported=pair(imported))


@router.post("/datasets/{dataset_id}/restore")
def restore(session: SessionDep, person: PersonDep, dataset_id: str, form: FormDep) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    dataset = get_dataset(session, dataset_id=dataset_id)
    version = int_param(_text(form, "version"), "version")
    if version is None:
        raise Invalid("say which version to restore", parameter="version")
    restored = lifecycle.restore_version(session, project_id=project_id_of(session, dataset), dataset_id=dataset_id,
                                         version=version, actor=person.actor)
    return RedirectResponse(url_with(f"/datasets/{dataset_id}/versions", restored=f"{version}:{restored.current_version}"),
                            status_code=303)


# Diff of two versions -----------------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}/diff")
def diff_page(request: Request, session: SessionDep, person: PersonDep, dataset_id: str,
              from_: Annotated[str | None, Query(alias="from")] = None, to: str | None = None, kind: str = "",
              cursor: str | None = None) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    a = int_param(from_, "from", default=max(dataset.current_version - 1, 0))
    b = int_param(to, "to", default=dataset.current_version)
    result = diff.compute(session, dataset, a, b)
    after = tuple(decode_cursor(cursor, (int, str), parameter="cursor")) if cursor else None
    changes, nxt = diff.page(session, result, kind=kind or None, after=after, limit=PAGE)
    shown = [{"change": c, "fields": diff.field_changes(c.before, c.after)} for c in changes]
    next_url = url_with(request.url.path, **{"from": a, "to": b, "kind": kind, "cursor": encode_cursor(*nxt)}) \
        if nxt else None
    return workspace_page(request, "dataset_diff.html", person, dataset, project, "diff", result=result, shown=shown,
                 kind=kind, next_url=next_url, a=a, b=b,
                 export_url=url_with(f"/datasets/{dataset_id}/diff.jsonl", **{"from": a, "to": b, "kind": kind}))


@router.get("/datasets/{dataset_id}/diff.jsonl")
def diff_export(request: Request, session: SessionDep, person: PersonDep, dataset_id: str,
                from_: Annotated[str | None, Query(alias="from")] = None, to: str | None = None,
                kind: str = "") -> Response:
    dataset, _ = dataset_and_project(session, person, dataset_id)
    result = diff.compute(session, dataset, int_param(from_, "from"), int_param(to, "to"))
    body = diff.jsonl(request.app.state.sessionmaker, result, kind or None)
    return StreamingResponse(body, media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="diff-v{result.from_version}-v{result.to_version}.jsonl"'})


# Export, clone, draft lock ---------------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}/export")
def export(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, version: str | None = None,
           format: str = "jsonl") -> Response:
    dataset, _ = dataset_and_project(session, person, dataset_id)
    if format not in transfer.FORMATS:
        raise Invalid(f"unknown format {format!r}; use csv or jsonl", parameter="format")
    v = check_version(dataset, int_param(version, "version"), parameter="version")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name)[:100] or "dataset"
    body = transfer.export_stream(request.app.state.sessionmaker, dataset=dataset, version=v, fmt=format)
    return StreamingResponse(body, media_type=transfer.EXPORT_MEDIA[format], headers={
        "Content-Disposition": f'attachment; filename="{safe}-v{v}.{format}"'})


@router.post("/datasets/{dataset_id}/clone")
def clone(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, form: FormDep) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    dataset = get_dataset(session, dataset_id=dataset_id)
    project_id = project_id_of(session, dataset)
    name = _text(form, "name")
    try:
        if not name:
            raise Invalid("give the copy a name", pointer="/data/attributes/name")
        copy = lifecycle.clone_dataset(session, project_id=project_id, dataset_id=dataset_id, name=name,
                                       description=None, description_given=False, actor=person.actor)
    except KennelError as exc:
        session.rollback()
        return render(request, "message.html", exc.status, person=person, heading="The dataset was not copied",
                      text=exc.detail, back=f"/datasets/{dataset_id}")
    return RedirectResponse(url_with(f"/datasets/{copy.id}", cloned=dataset.name), status_code=303)


@router.post("/datasets/{dataset_id}/lock")
def lock(session: SessionDep, person: PersonDep, dataset_id: str) -> Response:
    return _draft_lock(session, person, dataset_id, lifecycle.lock_draft)


@router.post("/datasets/{dataset_id}/unlock")
def unlock(session: SessionDep, person: PersonDep, dataset_id: str) -> Response:
    return _draft_lock(session, person, dataset_id, lifecycle.unlock_draft)


def _draft_lock(session: SessionDep, person: Person, dataset_id: str, change: Any) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    dataset = get_dataset(session, dataset_id=dataset_id)
    change(session, project_id=project_id_of(session, dataset), dataset_id=dataset_id, actor=person.actor)
    return RedirectResponse(f"/datasets/{dataset_id}", status_code=303)
