"""The reviewer's screen (/queues/{id}) and the queue owner's review page (/queues/{id}/manage).

The screen is a shell; its card (the item and the label panel) comes from POST routes that hand out items
(holding them for the reviewer, which a GET must not do) and take the reviewer's actions, each naming its
item by interaction id. They call the same functions in annotations/review.py as the API, and answer the
next card as an HTML fragment (static/review.js swaps it in and replays keys pressed meanwhile), or a 4xx
fragment saying what was wrong, with nothing changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kennel.annotations import review, review_items, review_settings
from kennel.annotations.schemas import LabelValueIn
from kennel.annotations.service import get_queue
from kennel.auth import SessionDep
from kennel.errors import Invalid, KennelError
from kennel.jsonapi import decode_cursor, encode_cursor
from kennel.people.roles import Permission
from kennel.spans.service import root_span_meta
from kennel.spans.trace_view import (
    Trace,
    Turn,
    json_text,
    load_trace,
    session_turns,
    text_value,
)
from kennel.web.auth import Person, PersonDep
from kennel.web.router import FormDep, render

router = APIRouter(include_in_schema=False)
SAFE_IMAGE = ("http://", "https://", "data:image/")


# What the item shows ---------------------------------------------------------------------------------

# Markdown from outside, rendered as a small safe subset: the text is escaped first, then only these
# patterns become tags (their contents stay escaped text); links, images and HTML stay text.
_INLINE = ((re.compile(r"`([^`\n]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*\n]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])"), r"<em>\1</em>"))
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def _inline(text: str) -> str:
    out = str(escape(text))
    for pattern, tag in _INLINE:
        out = pattern.sub(tag, out)
    return out


def markdown(text: str) -> Markup:
    parts = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = para.split("\n")
        heading = _HEADING.match(lines[0])
        if heading and len(lines) == 1:
            parts.append(f'<p class="md-h md-h{len(heading.group(1))}">{_inline(heading.group(2))}</p>')
        elif all(line.lstrip().startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{_inline(line.lstrip()[2:])}</li>" for line in lines)
            parts.append(f"<ul>{items}</ul>")
        else:
            parts.append(f"<p>{'<br>'.join(_inline(line) for line in lines)}</p>")
    return Markup("".join(parts))


@dataclass
class Block:
    type: str
    text: str = ""
    level: str = "md"
    url: str = ""
    alt: str = ""
    label: str = ""
    trace: Trace | None = None
    html: Markup = field(default_factory=Markup)


@dataclass
class Content:
    kind: str
    trace: Trace | None = None
    turns: list[Turn] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    # An experiment trace: the dataset record's input and expected output, beside the output.
    record: list[tuple[str, Any]] = field(default_factory=list)


def _block(session: Session, raw: dict[str, Any]) -> Block:
    kind = str(raw.get("type"))
    label = str(raw["label"]) if isinstance(raw.get("label"), str) else ""
    if kind == "markdown":
        return Block(kind, str(raw.get("content", "")), html=markdown(str(raw.get("content", ""))), label=label)
    if kind in ("text", "header"):
        return Block(kind, str(raw.get("content", "")), str(raw.get("level") or "md"), label=label)
    if kind == "image":
        url = str(raw.get("url", ""))
        # Only http(s) and data images load; anything else (javascript:, file:) is shown as text.
        return Block(kind, url, url=url if url.lower().startswith(SAFE_IMAGE) else "", alt=str(raw.get("alt") or ""),
                     label=label)
    if kind == "llmobs_trace":
        return Block(kind, str(raw.get("traceId")), trace=load_trace(session, str(raw.get("traceId"))), label=label)
    if kind == "frontend":
        # Code from outside is shown as code, never run.
        return Block(kind, str(raw.get("code", "")), label=label)
    body = raw.get("content") if kind == "json" else raw.get("tileDef", raw)
    return Block(kind, json_text(body) if not isinstance(body, str) else body, label=label)


def content_of(session: Session, interaction: Any) -> Content:
    kind = interaction.type
    if kind == "display_block":
        return Content(kind, blocks=[_block(session, b) for b in interaction.display_block or []])
    if kind == "session":
        return Content(kind, turns=session_turns(session, interaction.content_id)[0])
    content = Content(kind, trace=load_trace(session, interaction.content_id))
    if kind == "experiment_trace":
        meta = root_span_meta(session, trace_id=interaction.content_id)
        content.record = [(name, text_value(json_text(meta[key])))
                          for key, name in (("input", "Record input"), ("expected_output", "Expected output"),
                                            ("output", "Output")) if key in meta]
    return content


# Label values from the form ------------------------------------------------------------------------

def _label_values(form: FormData, labels: list[dict[str, Any]]) -> tuple[list[LabelValueIn], list[dict[str, Any]]]:
    """The form's label values: complete ones to submit, and everything typed (for a draft)."""
    submit: list[LabelValueIn] = []
    draft: list[dict[str, Any]] = []
    for label in labels:
        lid = label["id"]
        raw = form.get(f"v:{lid}")
        assessment = form.get(f"a:{lid}") or None
        reasoning = form.get(f"r:{lid}") or None
        value: Any = raw.strip() if isinstance(raw, str) else None
        if value in ("", None):
            value = None
        elif label["type"] == "boolean":
            value = {"true": True, "false": False}.get(value, value)
        elif label["type"] == "score":
            try:
                number = float(value)
                value = int(number) if number.is_integer() and label.get("is_integer", True) else number
            except ValueError:
                pass  # the rules say what is wrong with it
        entry = {"label_schema_id": lid, "value": value}
        if assessment:
            entry["assessment"] = assessment
        if reasoning:
            entry["reasoning"] = reasoning
        if value is not None or assessment or reasoning:
            draft.append(entry)
        if value is not None:
            submit.append(LabelValueIn(**entry))
    return submit, draft


def _prefill(item: review.Item) -> dict[str, dict[str, Any]]:
    """label id -> {value, assessment, reasoning}: my annotation, else my draft."""
    if item.mine is not None:
        return {lid: dict(v) for lid, v in item.mine.items()}
    return {v["label_schema_id"]: v for v in item.draft or [] if isinstance(v, dict) and "label_schema_id" in v}


# Fragments -----------------------------------------------------------------------------------------------

def _card(request: Request, session: Session, person: Person, queue_id: str, item: review.Item | None,
          note: str = "") -> Response:
    queue, _ = get_queue(session, queue_id=queue_id)
    if item is None:
        return render(request, "_review_empty.html", queue=queue, note=note)
    return render(request, "_review_card.html", person=person, queue=queue, item=item, labels=queue.label_schemas,
                  values=_prefill(item), content=content_of(session, item.interaction), note=note)


def _refused(request: Request, session: Session, exc: KennelError) -> Response:
    session.rollback()
    missing = (exc.meta or {}).get("missing", [])
    return render(request, "_review_error.html", exc.status, detail=exc.detail, missing=missing)


def _act(request: Request, session: Session, person: Person, queue_id: str, action: Any, note: str = "") -> Response:
    person.require(Permission.REVIEW, "reviewing")
    try:
        item = action()
    except KennelError as exc:
        return _refused(request, session, exc)
    return _card(request, session, person, queue_id, item, note)


def _int(form: FormData, name: str) -> int | None:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.strip():
        return None
    if not raw.strip().lstrip("-").isdigit():
        raise Invalid(f"{name} must be a whole number, got {raw!r}", parameter=name)
    return int(raw)


# The reviewer's screen -------------------------------------------------------------------------------

@router.get("/queues/{queue_id}")
def review_page(request: Request, session: SessionDep, person: PersonDep, queue_id: str,
                item: str = "") -> Response:
    person.require(Permission.REVIEW, "reviewing")
    ctx = review.reviewing(session, queue_id=queue_id, actor=person.actor)
    return render(request, "review.html", person=person, nav="queues", queue=ctx.queue, settings=ctx.settings,
                  item_id=item, owner=person.may(Permission.READ))


@router.post("/queues/{queue_id}/next")
def next_card(request: Request, session: SessionDep, person: PersonDep, queue_id: str, form: FormDep) -> Response:
    after = form.get("after")
    return _act(request, session, person, queue_id, lambda: review.next_item(
        session, queue_id=queue_id, actor=person.actor, after_id=after if isinstance(after, str) and after else None))


@router.post("/queues/{queue_id}/open")
def open_card(request: Request, session: SessionDep, person: PersonDep, queue_id: str, form: FormDep) -> Response:
    def go() -> review.Item:
        iid = form.get("interaction_id")
        return review.open_item(session, queue_id=queue_id, actor=person.actor,
                                interaction_id=iid if isinstance(iid, str) and iid else None,
                                position=_int(form, "position"), step=max(-1, min(1, _int(form, "step") or 0)))
    return _act(request, session, person, queue_id, go)


@router.post("/queues/{queue_id}/items/{interaction_id}/submit")
def submit_card(request: Request, session: SessionDep, person: PersonDep, queue_id: str, interaction_id: str,
                form: FormDep) -> Response:
    def go() -> review.Item | None:
        ctx = review.reviewing(session, queue_id=queue_id, actor=person.actor)
        values, _ = _label_values(form, ctx.labels)
        version = form.get("schema_version")
        return review.submit_and_next(session, queue_id=queue_id, interaction_id=interaction_id, values=values,
                                      actor=person.actor, version=version if isinstance(version, str) else None)[1]
    return _act(request, session, person, queue_id, go)


@router.post("/queues/{queue_id}/items/{interaction_id}/draft")
def save_draft(request: Request, session: SessionDep, person: PersonDep, queue_id: str, interaction_id: str,
               form: FormDep) -> Response:
    person.require(Permission.REVIEW, "reviewing")
    try:
        ctx = review.reviewing(session, queue_id=queue_id, actor=person.actor)
        _, draft = _label_values(form, ctx.labels)
        version = form.get("schema_version")
        review.save_draft(session, queue_id=queue_id, interaction_id=interaction_id, values=draft,
                          actor=person.actor, version=version if isinstance(version, str) else None)
    except KennelError as exc:
        return _refused(request, session, exc)
    return Response(status_code=204)


@router.post("/queues/{queue_id}/items/{interaction_id}/skip")
def skip_card(request: Request, session: SessionDep, person: PersonDep, queue_id: str,
              interaction_id: str) -> Response:
    return _act(request, session, person, queue_id, lambda: review.skip(
        session, queue_id=queue_id, interaction_id=interaction_id, actor=person.actor),
        note="Skipped: that item waits at the end of your queue.")


@router.post("/queues/{queue_id}/items/{interaction_id}/flag")
def flag_card(request: Request, session: SessionDep, person: PersonDep, queue_id: str, interaction_id: str,
              form: FormDep) -> Response:
    flagged = form.get("flagged") == "true"
    return _act(request, session, person, queue_id, lambda: review.flag(
        session, queue_id=queue_id, interaction_id=interaction_id, actor=person.actor, flagged=flagged),
        note="Flagged for discussion." if flagged else "Flag removed.")


@router.post("/queues/{queue_id}/undo")
def undo_card(request: Request, session: SessionDep, person: PersonDep, queue_id: str) -> Response:
    return _act(request, session, person, queue_id, lambda: review.undo(
        session, queue_id=queue_id, actor=person.actor), note="Undone: this item is back as it was.")


# The owner's page --------------------------------------------------------------------------------------

FILTERS = (("", "All"), ("todo", "To do"), ("mine", "Done by me"), ("needs", "Needs more reviewers"),
           ("complete", "Complete"), ("skipped", "Skipped"), ("flagged", "Flagged"),
           ("disagreement", "In disagreement"))
TYPES = ("", "trace", "session", "experiment_trace", "display_block")


@router.get("/queues/{queue_id}/manage")
def manage_page(request: Request, session: SessionDep, person: PersonDep, queue_id: str, status: str = "",
                type: str = "", label: str = "", value: str = "", cursor: str = "") -> Response:
    person.require(Permission.READ, "managing queues")
    after = decode_cursor(cursor, (int,), parameter="cursor")[0] if cursor else None
    ctx, rows, last = review_items.list_items(session, queue_id=queue_id, actor=person.actor, status=status or None,
                                              kind=type or None, label=label or None,
                                              value=value if label else None, after_pk=after)
    _, total, complete, reviewers = review_items.progress(session, queue_id=queue_id, actor=person.actor)
    params = {k: v for k, v in (("status", status), ("type", type), ("label", label), ("value", value)) if v}
    next_url = f"{request.url.path}?{urlencode({**params, 'cursor': encode_cursor(last)})}" if last else None
    return render(request, "review_manage.html", person=person, nav="queues", queue=ctx.queue, settings=ctx.settings,
                  rows=rows, total=total, complete=complete, reviewers=reviewers, filters=FILTERS, types=TYPES,
                  status_filter=status, type=type, label=label, value=value, next_url=next_url,
                  filter_url=lambda **kw: f"{request.url.path}?{urlencode({**params, **kw})}",
                  label_names=[lab["name"] for lab in ctx.labels], may_change=person.may(Permission.WRITE))


@router.post("/queues/{queue_id}/settings")
def change_settings(request: Request, session: SessionDep, person: PersonDep, queue_id: str,
                    form: FormDep) -> Response:
    person.require(Permission.WRITE, "changing a queue's settings")
    blind = form.get("blind_review")
    n = _int(form, "reviewers_per_item")
    changes = {"assignment": form.get("assignment") or "open", "reviewers_per_item": n,
               "blind_review": None if blind in (None, "", "default") else blind == "on",
               "lease_seconds": _int(form, "lease_seconds") or review_settings.DEFAULT_LEASE_SECONDS}
    review_settings.update_settings(session, queue_id=queue_id, changes=changes)
    return RedirectResponse(f"/queues/{queue_id}/manage", status_code=303)
