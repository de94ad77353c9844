"""Import a CSV or JSONL file into a dataset from the app: upload, preview the first rows and choose which
column is the input, expected output, metadata, tags or id, then write it as one new version.

Between the preview and the write the file waits in a private temporary folder under a random token
(an hour at most), tied to the person who sent it. The write renames the columns as mapped and goes
through transfer.write_upload, as the API's upload does: the file is checked row by row and stored
all or nothing.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from kennel.auth import SessionDep
from kennel.datasets import transfer
from kennel.datasets.models import Dataset
from kennel.datasets.service import ensure_writable, get_dataset
from kennel.errors import Invalid, KennelError
from kennel.people.roles import Permission
from kennel.web.auth import Person, PersonDep
from kennel.web.datasets import dataset_and_project, workspace_page
from kennel.web.router import FormDep, _text

router = APIRouter(include_in_schema=False)
ROLES = ("input", "expected_output", "metadata", "tags", "id")
PREVIEW_ROWS = 5
KEEP_SECONDS = 3600
MAX_COLUMNS = 200


def _folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"kennel-imports-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _columns_and_rows(data: bytes, fmt: str) -> tuple[list[str], list[list[str]]]:
    """The file's columns (CSV header, or the keys of the first JSONL objects) and its first rows as text."""
    text = data[:1_000_000].decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            rows = list(itertools.islice(reader, PREVIEW_ROWS))
        except csv.Error as exc:
            raise Invalid(f"the file does not parse as CSV ({exc})", parameter="file") from None
        if not header:
            raise Invalid("the file is empty; expected a header row", parameter="file")
        return [h.strip() for h in header], rows
    objects: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(objects) == PREVIEW_ROWS:
            break
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Invalid(f"line {number} does not parse as JSON ({exc.msg}, column {exc.colno})",
                          parameter="file") from None
        if not isinstance(obj, dict):
            raise Invalid(f"line {number} must be a JSON object", parameter="file")
        objects.append(obj)
    columns = list(dict.fromkeys(k for obj in objects for k in obj))
    rows = [[_cell_text(obj.get(c)) if c in obj else "" for c in columns] for obj in objects]
    return columns, rows


def _cell_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _guess(column: str) -> str:
    name = column.strip().lower()
    aliases = {"question": "input", "prompt": "input", "expected": "expected_output", "answer": "expected_output",
               "output": "expected_output", "label": "expected_output", "record_id": "id"}
    return name if name in ROLES else aliases.get(name, "ignore")


def _import_page(request: Request, person: Person, dataset: Dataset, project: Any, status: int = 200,
                 **context: Any) -> Response:
    return workspace_page(request, "dataset_import.html", person, dataset, project, "import", status, roles=ROLES,
                 **context)


@router.get("/datasets/{dataset_id}/import")
def import_form(request: Request, session: SessionDep, person: PersonDep, dataset_id: str) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    person.require(Permission.WRITE, "changing datasets")
    return _import_page(request, person, dataset, project)


@router.post("/datasets/{dataset_id}/import")
def preview(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, form: FormDep) -> Response:
    dataset, project = dataset_and_project(session, person, dataset_id)
    person.require(Permission.WRITE, "changing datasets")
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Invalid("choose a CSV or JSONL file", parameter="file")
        fmt = transfer.detect_format(None, upload.filename, upload.content_type)
        data = upload.file.read()
        columns, rows = _columns_and_rows(data, fmt)
        if len(columns) > MAX_COLUMNS:
            raise Invalid(f"the file has {len(columns)} columns; at most {MAX_COLUMNS} can be mapped", parameter="file")
    except KennelError as exc:
        return _import_page(request, person, dataset, project, exc.status, error=exc.detail)
    folder = _folder()
    _sweep(folder)
    token = secrets.token_urlsafe(18)
    (folder / f"{token}.{fmt}").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps({"who": person.actor.id, "dataset": dataset.id,
                                                      "name": upload.filename, "fmt": fmt}))
    return _import_page(request, person, dataset, project, token=token, filename=upload.filename, fmt=fmt,
                        columns=[(c, _guess(c)) for c in columns], rows=rows, size=len(data))


def _stored(token: str, person: Person, dataset_id: str) -> tuple[dict[str, Any], bytes]:
    folder = _folder()
    if not token.replace("-", "").replace("_", "").isalnum() or len(token) > 64:
        raise Invalid("this import expired; send the file again", parameter="token")
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
        data = (folder / f"{token}.{meta['fmt']}").read_bytes()
    except (OSError, ValueError, KeyError):
        raise Invalid("this import expired or was already written; send the file again", parameter="token") from None
    if meta.get("who") != person.actor.id or meta.get("dataset") != dataset_id:
        raise Invalid("this import belongs to someone else or to another dataset", parameter="token")
    return meta, data


def remap(data: bytes, fmt: str, mapping: dict[str, str]) -> bytes:
    """The file with its columns renamed to the roles chosen (and the others left out)."""
    chosen = {column: role for column, role in mapping.items() if role in ROLES}
    roles = list(chosen.values())
    for role in ROLES:
        if roles.count(role) > 1:
            raise Invalid(f"two columns are mapped to {role}; map one", parameter="mapping")
    if "input" not in roles:
        raise Invalid("the mapping leaves no input: map one column to input; nothing was stored",
                      parameter="mapping")
    text = transfer.decode(data)
    out = io.StringIO()
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader)]
        keep = [(i, chosen[h]) for i, h in enumerate(header) if h in chosen]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([role for _, role in keep])
        for row in reader:
            writer.writerow([row[i] if i < len(row) else "" for i, _ in keep] if row else [])
    else:
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                out.write(line + "\n")  # the upload names the line that does not parse
                continue
            if isinstance(obj, dict):
                obj = {role: obj[column] for column, role in chosen.items() if column in obj}
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return out.getvalue().encode()


@router.post("/datasets/{dataset_id}/import/commit")
def commit(request: Request, session: SessionDep, person: PersonDep, dataset_id: str, form: FormDep) -> Response:
    person.require(Permission.WRITE, "changing datasets")
    token = _text(form, "token")
    mapping = {str(form.get(f"column-{i}") or ""): _text(form, f"role-{i}") for i in range(MAX_COLUMNS)
               if form.get(f"column-{i}") is not None}
    meta: dict[str, Any] = {}
    data = b""
    try:
        meta, data = _stored(token, person, dataset_id)
        remapped = remap(data, meta["fmt"], mapping)
        dataset = get_dataset(session, dataset_id=dataset_id, for_update=True)
        ensure_writable(dataset, person.actor)
        last = None
        # The last progress report says what was written.
        for last in transfer.write_upload(session, dataset=dataset, actor=person.actor,  # noqa: B007
                                          records=transfer.iter_records(remapped, meta["fmt"]), total=0,
                                          deduplicate=form.get("deduplicate") == "on", overwrite=True, tags=[]):
            pass
    except KennelError as exc:
        session.rollback()
        dataset, project = dataset_and_project(session, person, dataset_id)
        if not meta:
            return _import_page(request, person, dataset, project, exc.status, error=exc.detail)
        # The file is still kept: the same mapping comes back, to be corrected.
        columns, rows = _columns_and_rows(data, meta["fmt"])
        return _import_page(request, person, dataset, project, exc.status, error=exc.detail, token=token,
                            filename=meta["name"], fmt=meta["fmt"], rows=rows, size=len(data),
                            columns=[(c, mapping.get(c, "ignore")) for c in columns])
    for suffix in (meta["fmt"], "json"):
        (_folder() / f"{token}.{suffix}").unlink(missing_ok=True)
    created = last.created if last else 0
    updated = last.updated if last else 0
    return RedirectResponse(f"/datasets/{dataset_id}/versions?imported={created}:{updated}", status_code=303)
