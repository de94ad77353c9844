"""The queue owner's pages: agreement, adjudication, export and the hand-off to a dataset.

Each page calls the same service functions as /api/kennel/v1/annotation-queues/{id}/... and holds no logic
of its own beyond turning a form into a service call. Members and admins only: an annotator is told the
page is not for their role (403), as the API tells their keys.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kennel.annotations import handoff, owner
from kennel.annotations.agreement import hashable
from kennel.annotations.owner_router import label_agreement_view
from kennel.annotations.schemas import LabelValueIn
from kennel.annotations.service import get_queue
from kennel.auth import SessionDep
from kennel.datasets import service as datasets
from kennel.errors import Invalid, KennelError
from kennel.jsonapi import decode_cursor, encode_cursor
from kennel.people.roles import Permission
from kennel.web.auth import Person, PersonDep
from kennel.web.router import FormDep, _safe_next, _text, render, templates

router = APIRouter(include_in_schema=False)
PAGE = 20
OTHER = "__other__"


def _owner(person: Person, doing: str) -> None:
    person.require(Permission.READ, doing)


def _queue_context(session: SessionDep, queue_id: str) -> dict[str, Any]:
    queue, project_id = get_queue(session, queue_id=queue_id)
    return {"queue": queue, "project_id": project_id, "labels": list(queue.label_schemas or [])}


@router.get("/queues/{queue_id}/agreement")
def agreement_page(request: Request, session: SessionDep, person: PersonDep, queue_id: str) -> Response:
    _owner(person, "seeing a queue's agreement")
    ctx = _queue_context(session, queue_id)
    found = owner.queue_agreement(session, queue_id=queue_id)
    labels = [label_agreement_view(la, found.interaction_ids) for la in found.labels]
    return render(request, "queue_agreement.html", person=person, nav="queues", tab="agreement", found=found,
                  figures=labels, **ctx)


# Adjudication -------------------------------------------------------------------------------------

def _choices(label: dict[str, Any], it: owner.Item) -> list[tuple[str, str, list[str]]]:
    """(form value, text shown, reviewers who gave it) for each distinct value the reviewers gave."""
    seen: dict[Any, tuple[str, str, list[str]]] = {}
    for who, values in sorted(it.reviews.items()):
        entry = values.get(label["id"])
        if entry is None:
            continue
        key = hashable(entry.get("value"))
        if key not in seen:
            seen[key] = (orjson.dumps(entry.get("value")).decode(), shown(entry.get("value")), [])
        seen[key][2].append(who)
    return list(seen.values())


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


templates.env.globals["shown"] = shown


def _item_context(labels: list[dict[str, Any]], it: owner.Item) -> dict[str, Any]:
    gold = it.gold.values if it.gold else {}
    rows = []
    for label in labels:
        lid = label["id"]
        current = gold.get(lid)
        rows.append({"label": label, "choices": _choices(label, it), "differs": lid in it.disagreeing,
                     "gold": current, "gold_json": orjson.dumps(current.get("value")).decode() if current else "",
                     "cells": [(who, values.get(lid)) for who, values in sorted(it.reviews.items())]})
    return {"it": it, "rows": rows, "reviewers": sorted(it.reviews)}


@router.get("/queues/{queue_id}/adjudicate")
def adjudicate_page(request: Request, session: SessionDep, person: PersonDep, queue_id: str,
                    status: str = "open", cursor: str | None = None) -> Response:
    _owner(person, "adjudicating")
    ctx = _queue_context(session, queue_id)
    after = decode_cursor(cursor, (int,), parameter="cursor")[0] if cursor else 0
    items, next_pk = owner.disagreements(session, queue_id=queue_id, status=status, after=after, limit=PAGE)
    next_url = None
    if next_pk is not None:
        next_url = f"{request.url.path}?{urlencode({'status': status, 'cursor': encode_cursor(next_pk)})}"
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "queue_adjudicate.html", person=person, nav="queues", tab="adjudicate", which=status,
                  items=[_item_context(ctx["labels"], it) for it in items], next_url=next_url, here=here,
                  statuses=owner.STATUSES, **ctx)


@router.get("/queues/{queue_id}/adjudicate/{interaction_id}")
def item_page(request: Request, session: SessionDep, person: PersonDep, queue_id: str,
              interaction_id: str) -> Response:
    _owner(person, "adjudicating")
    _, it = owner.item(session, queue_id=queue_id, interaction_id=interaction_id)
    ctx = _queue_context(session, queue_id)
    return render(request, "queue_item.html", person=person, nav="queues", tab="adjudicate",
                  item=_item_context(ctx["labels"], it), here=request.url.path, **ctx)


def parse_written(label: dict[str, Any], text: str) -> Any:
    """A gold value the owner wrote, read as the label's type wants it."""
    kind = label["type"]
    if kind == "boolean":
        low = text.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        return text
    if kind == "score":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and label.get("is_integer") else number
    if kind == "categorical":
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return parts[0] if len(parts) == 1 else parts
    return text


def gold_from_form(labels: list[dict[str, Any]], form: FormData) -> list[LabelValueIn]:
    out: list[LabelValueIn] = []
    for label in labels:
        lid = label["id"]
        picked = _text(form, f"gold.{lid}")
        if not picked:
            continue
        if picked == OTHER:
            written = _text(form, f"other.{lid}")
            if not written:
                raise Invalid(f"label {label['name']!r}: choose a value or write one in its box")
            value = parse_written(label, written)
        else:
            try:
                value = orjson.loads(picked)
            except orjson.JSONDecodeError:
                raise Invalid(f"label {label['name']!r}: the chosen value is not one this page offered") from None
        assessment = _text(form, f"assessment.{lid}") or None
        reasoning = _text(form, f"reasoning.{lid}") or None
        out.append(LabelValueIn(label_schema_id=lid, value=value, assessment=assessment, reasoning=reasoning))
    if not out:
        raise Invalid("choose a gold value for at least one label")
    return out


@router.post("/queues/{queue_id}/adjudicate/{interaction_id}")
def adjudicate(request: Request, session: SessionDep, person: PersonDep, form: FormDep, queue_id: str,
               interaction_id: str) -> Response:
    person.require(Permission.WRITE, "adjudicating")
    ctx = _queue_context(session, queue_id)
    target = _safe_next(_text(form, "next") or f"/queues/{queue_id}/adjudicate")
    try:
        values = gold_from_form(ctx["labels"], form)
        owner.adjudicate(session, queue_id=queue_id, interaction_id=interaction_id, label_values=values,
                         actor=person.actor)
    except Invalid as problem:
        session.rollback()
        _, it = owner.item(session, queue_id=queue_id, interaction_id=interaction_id)
        return render(request, "queue_item.html", 400, person=person, nav="queues", tab="adjudicate",
                      item=_item_context(ctx["labels"], it), here=target, error=problem.detail, **ctx)
    return RedirectResponse(f"{target}#item-{interaction_id}", status_code=303)


# Export -------------------------------------------------------------------------------------------

@router.get("/queues/{queue_id}/export")
def export(request: Request, session: SessionDep, person: PersonDep, queue_id: str,
           format: str = "csv") -> Response:
    _owner(person, "exporting annotations")
    name, data = handoff.export(session, queue_id=queue_id, fmt=format)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# To a dataset -------------------------------------------------------------------------------------

def _spec(values: Any) -> handoff.HandOff:
    raw_n = (values.get("reviewers_per_item") or "2").strip()
    if not raw_n.isascii() or not raw_n.isdigit():
        raise Invalid("reviewers per item must be a whole number from 1 to 100")
    return handoff.HandOff(selection=values.get("items") or "agreed", reviewers_per_item=int(raw_n),
                           source=values.get("expected_output_from") or "gold_or_consensus",
                           label=values.get("label") or None)


def _to_dataset_page(request: Request, session: SessionDep, person: Person, queue_id: str, values: Any,
                     *, status: int = 200, error: str = "", done: handoff.HandedOff | None = None,
                     preview: bool = False) -> Response:
    ctx = _queue_context(session, queue_id)
    existing = datasets.list_datasets(session, project_id=ctx["project_id"], ids=None, name=None, before_pk=None,
                                      limit=200)
    planned: list[dict[str, Any]] = []
    total = None
    if preview and not error:
        try:
            total, found = handoff.plan(session, queue=ctx["queue"], handoff=_spec(values), limit=handoff.PREVIEW)
            planned = [{"interaction_id": iid, **{k: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()
                                                  for k, v in handoff.record_view(r).items()}}
                       for iid, r in found]
        except KennelError as problem:
            error, status = problem.detail, problem.status
    return render(request, "queue_to_dataset.html", status, person=person, nav="queues", tab="to-dataset",
                  values=values, datasets=existing, planned=planned, total=total, error=error, done=done,
                  selections=handoff.SELECTIONS, sources=handoff.SOURCES, **ctx)


@router.get("/queues/{queue_id}/to-dataset")
def to_dataset_form(request: Request, session: SessionDep, person: PersonDep, queue_id: str) -> Response:
    _owner(person, "adding a queue's items to a dataset")
    values = dict(request.query_params)
    return _to_dataset_page(request, session, person, queue_id, values, preview="preview" in values)


@router.post("/queues/{queue_id}/to-dataset")
def to_dataset(request: Request, session: SessionDep, person: PersonDep, form: FormDep, queue_id: str) -> Response:
    person.require(Permission.WRITE, "adding a queue's items to a dataset")
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    if values.get("preview"):
        # Previewing writes nothing; it is a POST only because it shares the form with the button that writes.
        return _to_dataset_page(request, session, person, queue_id, values, preview=True)
    dataset_id = values.get("dataset_id") or None
    name = (values.get("dataset_name") or "").strip() or None
    try:
        done = handoff.to_dataset(session, queue_id=queue_id, handoff=_spec(values),
                                  dataset_id=None if name else dataset_id, dataset_name=name, actor=person.actor)
    except KennelError as problem:
        session.rollback()
        return _to_dataset_page(request, session, person, queue_id, values, status=problem.status,
                                error=problem.detail)
    return _to_dataset_page(request, session, person, queue_id, values, done=done)
