"""One record of a dataset: its content at a version, its history and the experiments that ran on it, and
the editor (save, add, delete). A record is named by a query parameter (`?id=`), since record ids may hold
any character, `/` included.

The editor checks its JSON here and points at the line and column where it stops being JSON. It carries
the revision it was opened on: if someone saved the record since, the save is refused and the page
shows both versions (workspace.save_record), so nobody overwrites a change they have not seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from kennel.auth import SessionDep
from kennel.datasets import history, workspace
from kennel.datasets.models import Dataset
from kennel.datasets.records import check_version
from kennel.datasets.service import get_dataset
from kennel.errors import KennelError
from kennel.jsonapi import int_param
from kennel.keys.service import Actor
from kennel.people.roles import Permission
from kennel.web.auth import Person, PersonDep
from kennel.web.datasets import dataset_and_project, url_with, workspace_page
from kennel.web.json_view import JsonError, parse_json, pretty, tree
from kennel.web.router import FormDep, _text

router = APIRouter(include_in_schema=False)
# The record page shows this much of a value, and the rest behind "show all" up to INLINE_MAX.
RECORD_CUT = 5_000
INLINE_MAX = 500_000
FIELDS = ("input", "expected_output", "metadata")


@dataclass
class Draft:
    """The editor's text, as shown or as sent back."""

    input: str = ""
    expected_output: str = ""
    metadata: str = ""
    tags: str = ""
    base_revision: str = ""
    errors: list[JsonError] = field(default_factory=list)
    problem: str = ""

    @classmethod
    def of(cls, rev: workspace.Revision) -> Draft:
        text = {name: pretty(getattr(rev, name)) if getattr(rev, name) is not None else "" for name in FIELDS}
        return cls(text["input"], text["expected_output"], text["metadata"], "\n".join(rev.tags), str(rev.pk))

    @classmethod
    def from_form(cls, form: Any) -> Draft:
        text = {name: str(form.get(name) or "") for name in (*FIELDS, "tags", "base_revision")}
        return cls(text["input"], text["expected_output"], text["metadata"], text["tags"], text["base_revision"])

    def error_of(self, name: str) -> JsonError | None:
        return next((e for e in self.errors if e.field == name), None)

    def edit(self) -> workspace.RecordEdit | None:
        """The content to save, or None with `errors` saying where the text is not what it must be."""
        values = {}
        for name in FIELDS:
            value, error = parse_json(name, getattr(self, name))
            if error is not None:
                self.errors.append(error)
            values[name] = value
        if not self.errors and values["input"] is None:
            self.errors.append(JsonError("input", 1, 1, "a record needs an input"))
        if not self.errors and values["metadata"] is not None and not isinstance(values["metadata"], dict):
            self.errors.append(JsonError("metadata", 1, 1, "metadata must be a JSON object (or left empty)"))
        if self.errors:
            return None
        tags = [t.strip() for t in self.tags.splitlines() if t.strip()]
        return workspace.RecordEdit(values["input"], values["expected_output"], values["metadata"], tags)


def _record_page(request: Request, session: SessionDep, person: Person, dataset: Dataset, project: Any,
                 record_id: str, version: int, *, show_all: bool = False, draft: Draft | None = None,
                 theirs: workspace.Revision | None = None, status: int = 200, flash: str = "") -> Response:
    rev = workspace.record_at(session, dataset, record_id, version)
    found = history.record_history(session, dataset, record_id)
    current = version == dataset.current_version
    limit = INLINE_MAX if show_all else RECORD_CUT
    content = {name: tree(getattr(rev, name), limit=limit, inline_max=INLINE_MAX) if getattr(rev, name) is not None
               else None for name in FIELDS}
    return workspace_page(request, "dataset_record.html", person, dataset, project, "records", status, record=rev,
                 record_id=record_id, version=version, content=content, history=found, current=current,
                 draft=draft or (Draft.of(rev) if current else None), theirs=theirs, show_all=show_all,
                 theirs_text=Draft.of(theirs) if theirs is not None else None, flashes=[flash] if flash else [],
                 locked_by_other=locked_by_other(dataset, person.actor),
                 all_url=url_with(request.url.path, id=record_id, version=version, all=1))


def locked_by_other(dataset: Dataset, actor: Actor) -> str | None:
    if dataset.draft_holder_id is not None and dataset.draft_holder_id != actor.id:
        return dataset.draft_holder_name or "someone else"
    return None


@router.get("/datasets/{dataset_id}/record")
def record_page(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, id: str,
                version: str | None = None, all: str = "", saved: str = "") -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    v = check_version(dataset, int_param(version, "version"), parameter="version")
    flash = f"Saved as version {saved}." if saved else ""
    return _record_page(request, session, person, dataset, project, id, v, show_all=bool(all), flash=flash)


@router.post("/datasets/{dataset_id}/record")
def save(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, id: str,
         form: FormDep) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    person.require(Permission.WRITE, "changing datasets")
    draft = Draft.from_form(form)
    edit = draft.edit()
    if edit is None:
        return _record_page(request, session, person, dataset, project, id, dataset.current_version, draft=draft,
                            status=400)
    try:
        _, result = workspace.save_record(session, dataset_id=dataset_id, record_id=id, edit=edit,
                                          base_revision=int_param(draft.base_revision, "base_revision"),
                                          actor=person.actor)
    except workspace.EditConflict as exc:
        session.rollback()
        if exc.current is None:
            return _refused(request, session, person, dataset_id, exc)
        draft.problem = exc.detail
        # Saving again is now a decision made with both in view: the form is based on what is saved.
        draft.base_revision = str(exc.current.pk)
        dataset, project = dataset_and_project(session, person, dataset_id)
        return _record_page(request, session, person, dataset, project, id, dataset.current_version, draft=draft,
                            theirs=exc.current, status=409)
    except KennelError as exc:
        session.rollback()
        draft.problem = exc.detail
        dataset, project = dataset_and_project(session, person, dataset_id)
        return _record_page(request, session, person, dataset, project, id, dataset.current_version, draft=draft,
                            status=exc.status)
    return RedirectResponse(url_with(f"/datasets/{dataset_id}/record", id=id, saved=result.version), status_code=303)


def _refused(request: Request, session: SessionDep, person: Person, dataset_id: str, exc: KennelError) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    return workspace_page(request, "dataset_message.html", person, dataset, project, "records", exc.status,
                 heading="Nothing was saved", text=exc.detail)


@router.post("/datasets/{dataset_id}/record/delete")
def delete(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, id: str) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    try:
        _, result = workspace.delete_record(session, dataset_id=dataset_id, record_id=id, actor=person.actor)
    except KennelError as exc:
        session.rollback()
        return _refused(request, session, person, dataset_id, exc)
    return RedirectResponse(url_with(f"/datasets/{dataset_id}", deleted=id, at=result.version), status_code=303)


@router.get("/datasets/{dataset_id}/new")
def new_form(request: Request, session: SessionDep, person: PersonDep, dataset_id: str) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    person.require(Permission.WRITE, "changing datasets")
    return _new_page(request, person, dataset, project, Draft(input="{\n  \n}"), "")


def _new_page(request: Request, person: Person, dataset: Dataset, project: Any, draft: Draft, record_id: str,
              status: int = 200) -> Response:
    return workspace_page(request, "dataset_new.html", person, dataset, project, "records", status, draft=draft,
                 record_id=record_id, locked_by_other=locked_by_other(dataset, person.actor))


@router.post("/datasets/{dataset_id}/new")
def add(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, form: FormDep) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    person.require(Permission.WRITE, "changing datasets")
    draft = Draft.from_form(form)
    record_id = _text(form, "id")
    edit = draft.edit()
    if edit is None:
        return _new_page(request, person, dataset, project, draft, record_id, 400)
    try:
        _, result = workspace.add_record(session, dataset_id=dataset_id, record_id=record_id or None, edit=edit,
                                         actor=person.actor)
    except KennelError as exc:
        session.rollback()
        draft.problem = exc.detail
        dataset = get_dataset(session, dataset_id=dataset_id)
        return _new_page(request, person, dataset, project, draft, record_id, exc.status)
    made = result.records[0].record_id if result.records else record_id
    return RedirectResponse(url_with(f"/datasets/{dataset_id}/record", id=made, saved=result.version), status_code=303)
