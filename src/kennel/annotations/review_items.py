"""The queue owner's views of a review: the item list with its filters, and each reviewer's progress."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kennel.annotations.models import Annotation, AnnotationInteraction
from kennel.annotations.review_models import ReviewState
from kennel.annotations.review_view import Ctx, complete_count, owning
from kennel.errors import Invalid
from kennel.keys.service import Actor

STATUSES = ("todo", "mine", "needs", "complete", "skipped", "flagged", "disagreement")
LIST_PAGE = 50
LIST_CHUNK = 500
LIST_MAX_SCAN = 5000


@dataclass
class Row:
    interaction: Any
    position: int
    reviewers: list[str]
    values: dict[str, list[Any]]  # label name -> every reviewer's value
    skipped: int
    flagged: int
    mine: bool
    complete: bool
    disagreement: bool


def _value_key(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def list_items(session: Session, *, queue_id: str, actor: Actor, status: str | None = None,
               kind: str | None = None, label: str | None = None, value: str | None = None,
               after_pk: int | None = None) -> tuple[Ctx, list[Row], int | None]:
    """A page of the queue's items matching the filters, in queue order, and where the next page starts.

    Reads the queue in chunks of LIST_CHUNK items from `after_pk` (keyset), with one query for their
    annotations and one for reviewers' states per chunk; a page stops after LIST_MAX_SCAN items even if it
    found fewer matches, so its cost stays flat on any queue.
    """
    ctx = owning(session, queue_id=queue_id, actor=actor)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}, got {status!r}", parameter="status")
    if (label is None) != (value is None):
        raise Invalid("filter by label value with both `label` and `value`", parameter="label")
    labels = {lab["name"]: lab for lab in ctx.labels}
    if label is not None and label not in labels:
        raise Invalid(f"no label named {label!r} in this queue; its labels: {', '.join(labels) or 'none'}",
                      parameter="label")
    n = ctx.settings.reviewers_per_item
    names = {lab["id"]: lab["name"] for lab in ctx.labels}
    start = after_pk or 0
    rows: list[Row] = []
    scanned = 0
    last_pk: int | None = None
    exhausted = False
    while scanned < LIST_MAX_SCAN and len(rows) < LIST_PAGE:
        chunk = session.scalars(select(AnnotationInteraction).where(
            AnnotationInteraction.queue_pk == ctx.queue.pk, AnnotationInteraction.pk > start)
            .order_by(AnnotationInteraction.pk).limit(LIST_CHUNK)).all()
        if not chunk:
            exhausted = True
            break
        pks = [c.pk for c in chunk]
        anns: dict[int, list[Any]] = {}
        for a in session.execute(select(Annotation.interaction_pk, Annotation.author_key_id, Annotation.created_by,
                                        Annotation.label_values).where(Annotation.interaction_pk.in_(pks))):
            anns.setdefault(a.interaction_pk, []).append(a)
        states: dict[int, list[Any]] = {}
        for s in session.execute(select(ReviewState.interaction_pk, ReviewState.skipped_seq, ReviewState.flagged)
                                 .where(ReviewState.interaction_pk.in_(pks),
                                        or_(ReviewState.skipped_seq.is_not(None), ReviewState.flagged))):
            states.setdefault(s.interaction_pk, []).append(s)
        for c in chunk:
            scanned += 1
            last_pk = start = c.pk
            row = _row(c, c.position, anns.get(c.pk, []), states.get(c.pk, []), names, actor.id, n)
            if _matches(row, status, kind, label, value, n):
                rows.append(row)
                if len(rows) == LIST_PAGE:
                    break
        if len(chunk) < LIST_CHUNK and last_pk == chunk[-1].pk:
            exhausted = True
            break
    return ctx, rows, None if exhausted else last_pk


def _row(c: Any, position: int, anns: list[Any], states: list[Any], names: dict[str, str], me: str,
         n: int | None) -> Row:
    values: dict[str, list[Any]] = {}
    for a in anns:
        for label_id, entry in (a.label_values or {}).items():
            values.setdefault(names.get(label_id, entry.get("name_when_saved", label_id)), []).append(entry.get("value"))
    disagreement = len(anns) > 1 and any(len({_value_key(v) for v in vs}) > 1 for vs in values.values())
    return Row(c, position, [a.created_by for a in anns], values, sum(1 for s in states if s.skipped_seq is not None),
               sum(1 for s in states if s.flagged), any(a.author_key_id == me for a in anns),
               len(anns) >= (n or 1), disagreement)


def _matches(row: Row, status: str | None, kind: str | None, label: str | None, value: str | None,
             n: int | None) -> bool:
    if kind and row.interaction.type != kind:
        return False
    if label is not None and value is not None:
        wanted = value.strip().lower()
        if not any(wanted in ([str(x).lower() for x in v] if isinstance(v, list) else [str(v).lower()])
                   for v in row.values.get(label, [])):
            return False
    count = len(row.reviewers)
    return {
        None: True,
        "todo": not row.mine and not row.complete,
        "mine": row.mine,
        "needs": 0 < count < (n or 1) if n else False,
        "complete": row.complete,
        "skipped": row.skipped > 0,
        "flagged": row.flagged > 0,
        "disagreement": row.disagreement,
    }[status]


@dataclass
class ReviewerProgress:
    reviewer_id: str
    name: str
    done: int
    skipped: int
    median_seconds: float | None
    left_items: int
    left_seconds: float | None


def progress(session: Session, *, queue_id: str, actor: Actor) -> tuple[Ctx, int, int, list[ReviewerProgress]]:
    """Items, complete items, and per reviewer: done, skipped, median seconds per item, an estimate of the
    time left. With N reviewers per item, the places still open are shared among the reviewers seen so far."""
    ctx = owning(session, queue_id=queue_id, actor=actor)
    q = ctx.queue.pk
    total = session.scalar(select(func.count()).select_from(AnnotationInteraction).where(
        AnnotationInteraction.queue_pk == q)) or 0
    complete = complete_count(session, q, ctx.settings)
    done = {r.author_key_id: (r.created_by, r.n) for r in session.execute(
        select(Annotation.author_key_id, func.max(Annotation.created_by).label("created_by"),
               func.count().label("n")).where(Annotation.queue_pk == q).group_by(Annotation.author_key_id))}
    skipped = dict(session.execute(select(ReviewState.reviewer_id, func.count()).where(
        ReviewState.queue_pk == q, ReviewState.skipped_seq.is_not(None)).group_by(ReviewState.reviewer_id)).tuples().all())
    names = dict(session.execute(select(ReviewState.reviewer_id, func.max(ReviewState.reviewer_name)).where(
        ReviewState.queue_pk == q).group_by(ReviewState.reviewer_id)).tuples().all())
    seconds: dict[str, list[float]] = {}
    for reviewer, secs in session.execute(select(ReviewState.reviewer_id, ReviewState.seconds).where(
            ReviewState.queue_pk == q, ReviewState.seconds.is_not(None))):
        seconds.setdefault(reviewer, []).append(float(secs or 0.0))
    reviewers = sorted(set(done) | set(names), key=lambda r: (done.get(r, ("", 0))[0] or names.get(r, "")))
    n = ctx.settings.reviewers_per_item
    open_places = 0
    if n:
        capped = session.execute(select(Annotation.interaction_pk, func.count().label("c")).where(
            Annotation.queue_pk == q).group_by(Annotation.interaction_pk)).all()
        filled = sum(min(r.c, n) for r in capped)
        open_places = max(total * n - filled, 0)
    out = []
    for r in reviewers:
        name, count = done.get(r, (names.get(r, r), 0))
        median = statistics.median(seconds[r]) if seconds.get(r) else None
        if n:
            left = min(total - count, -(-open_places // max(len(reviewers), 1)))
        else:
            left = total - count
        out.append(ReviewerProgress(r, name or names.get(r, r), count, skipped.get(r, 0), median, max(left, 0),
                                    median * max(left, 0) if median is not None else None))
    return ctx, total, complete, out
