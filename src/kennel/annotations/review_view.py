"""Reviewing a queue, the item a reviewer sees: who may review, the item with its progress line and
blind-review rule, and a reviewer's hold on an item (see review.py for the rules)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kennel.annotations.models import Annotation, AnnotationInteraction, AnnotationQueue
from kennel.annotations.review_models import ReviewState
from kennel.annotations.review_settings import Settings, settings_of
from kennel.annotations.service import dialect_insert, get_queue, may_annotate, may_see
from kennel.db.base import utcnow
from kennel.errors import Forbidden, NotFound
from kennel.keys.service import Actor
from kennel.people.roles import Permission

# Label fields whose change makes a draft's value for that label worth a second look.
_LABEL_RULES = ("type", "values", "min", "max", "is_integer", "is_required", "has_assessment", "has_reasoning")


# Who may review -----------------------------------------------------------------------------------

@dataclass
class Ctx:
    queue: AnnotationQueue
    project_id: str
    settings: Settings
    actor: Actor

    @property
    def labels(self) -> list[dict[str, Any]]:
        return list(self.queue.label_schemas or [])


def reviewing(session: Session, *, queue_id: str, actor: Actor, lock: bool = False) -> Ctx:
    """The queue, if this person may review it: 404 when they may not see it, 403 when they see it but
    its assignment leaves them out."""
    queue, project_id = get_queue(session, queue_id=queue_id, lock=lock)
    if not may_see(queue, actor):
        raise NotFound(f"annotation queue {queue_id!r} not found")
    settings = settings_of(session, queue.pk)
    if not may_annotate(queue, actor):
        raise Forbidden(f"queue {queue_id} takes annotations only from its reviewers (reviewer_emails), and "
                        f"{actor.name} is not one of them; nothing was changed")
    if settings.assignment == "assigned" and not (
            actor.email and actor.email.lower() in {e.lower() for e in queue.reviewer_emails or []}):
        raise Forbidden(f"queue {queue_id} is assigned to its reviewers (reviewer_emails) and {actor.name} is not "
                        f"one of them; nothing was changed")
    return Ctx(queue, project_id, settings, actor)


def owning(session: Session, *, queue_id: str, actor: Actor) -> Ctx:
    """The queue, for its owner's views (members and admins)."""
    if not actor.may(Permission.READ):
        raise Forbidden(f"{actor.name} has the {actor.role} role; a queue's items and progress are for members "
                        "and admins")
    queue, project_id = get_queue(session, queue_id=queue_id)
    return Ctx(queue, project_id, settings_of(session, queue.pk), actor)


def find_interaction(session: Session, ctx: Ctx, interaction_id: str, *, lock: bool = False) -> AnnotationInteraction:
    stmt = select(AnnotationInteraction).where(AnnotationInteraction.queue_pk == ctx.queue.pk,
                                               AnnotationInteraction.id == interaction_id)
    if lock:
        # One decision at a time about who may still annotate this item (PostgreSQL; SQLite has one writer).
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"interaction {interaction_id!r} not found in queue {ctx.queue.id}")
    return row


# The item a reviewer sees -----------------------------------------------------------------------

@dataclass
class Item:
    interaction: AnnotationInteraction
    position: int
    total: int
    done_by_me: int
    complete: int
    mine: dict[str, Any] | None          # my annotation's stored values, by label id
    others: list[dict[str, Any]] | None  # other reviewers' annotations, None while blind review hides them
    others_count: int
    state: ReviewState | None
    draft: list[dict[str, Any]] | None
    schema_changes: list[str] = field(default_factory=list)
    status: str = "open"                 # open, done (by me), complete (by others), taken (held by others)
    schema_version: str = ""

    @property
    def percent(self) -> int:
        return int(100 * self.complete / self.total) if self.total else 100


def schema_version(labels: Sequence[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(list(labels), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def schema_changes(before: Sequence[dict[str, Any]] | None, now: Sequence[dict[str, Any]],
                   touched: set[str] | None = None) -> list[str]:
    """Sentences naming the labels that changed between two versions of a schema (those in `touched`, the
    labels a draft holds values for, when given; added labels always)."""
    if before is None:
        return []
    old = {label["id"]: label for label in before}
    new = {label["id"]: label for label in now}
    out = []
    for label_id, label in old.items():
        if touched is not None and label_id not in touched:
            continue
        if label_id not in new:
            out.append(f"label {label['name']!r} was removed")
            continue
        diff = [rule for rule in _LABEL_RULES if label.get(rule) != new[label_id].get(rule)]
        if label["name"] != new[label_id]["name"]:
            diff.insert(0, f"renamed to {new[label_id]['name']!r}")
        if diff:
            out.append(f"label {label['name']!r} changed ({', '.join(diff)})")
    out.extend(f"label {label['name']!r} is new" for label_id, label in new.items() if label_id not in old)
    return out


def counts(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> tuple[int, int, int, int]:
    """Position of the item, items in the queue, items done by me, items complete."""
    q = ctx.queue.pk
    position = interaction.position
    done = session.scalar(select(func.count()).select_from(Annotation).where(
        Annotation.queue_pk == q, Annotation.author_key_id == ctx.actor.id)) or 0
    total, complete = tally(session, q, ctx.settings)
    return position, total, done, complete


# Complete items per queue and N, for the progress line: counting them groups the queue's annotations, which
# would cost more than the rest of the request. The count is kept against a fingerprint of the queue's
# annotations read from the database (how many, and the id of the newest), so that every server process sees
# every other's submits, undos and deletes: an insert brings a newer row (a reused SQLite rowid comes with a
# new id), and a delete lowers the count.
_COMPLETE: dict[tuple[int, int], tuple[tuple[int, str | None], int]] = {}


def tally(session: Session, queue_pk: int, settings: Settings) -> tuple[int, int]:
    """(items in the queue, complete items)."""
    total = session.scalar(select(func.count()).select_from(AnnotationInteraction).where(
        AnnotationInteraction.queue_pk == queue_pk)) or 0
    count = session.scalar(select(func.count()).select_from(Annotation).where(Annotation.queue_pk == queue_pk)) or 0
    newest = session.scalar(select(Annotation.id).where(Annotation.queue_pk == queue_pk)
                            .order_by(Annotation.pk.desc()).limit(1))
    key = (queue_pk, settings.reviewers_per_item or 0)
    fingerprint = (count, newest)
    cached = _COMPLETE.get(key)
    if cached is not None and cached[0] == fingerprint:
        return total, cached[1]
    complete = complete_count(session, queue_pk, settings)
    if len(_COMPLETE) > 1000:
        _COMPLETE.clear()
    _COMPLETE[key] = (fingerprint, complete)
    return total, complete


def complete_count(session: Session, queue_pk: int, settings: Settings) -> int:
    """Items with N annotations (with N reviewers per item), else items with any annotation."""
    per_item = (select(Annotation.interaction_pk).where(Annotation.queue_pk == queue_pk)
                .group_by(Annotation.interaction_pk))
    if settings.reviewers_per_item:
        per_item = per_item.having(func.count() >= settings.reviewers_per_item)
    return session.scalar(select(func.count()).select_from(per_item.subquery())) or 0


def stored_to_draft(stored: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for label_id, entry in stored.items():
        value = {"label_schema_id": label_id, "value": entry.get("value")}
        for extra in ("assessment", "reasoning"):
            if entry.get(extra) is not None:
                value[extra] = entry[extra]
        out.append(value)
    return out


def item_view(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> Item:
    annotations = session.execute(select(Annotation.author_key_id, Annotation.created_by, Annotation.label_values,
                                         Annotation.modified_at)
                                  .where(Annotation.interaction_pk == interaction.pk).order_by(Annotation.pk)).all()
    mine = next((a.label_values for a in annotations if a.author_key_id == ctx.actor.id), None)
    others_rows = [a for a in annotations if a.author_key_id != ctx.actor.id]
    hidden = ctx.settings.blind and mine is None
    others = None if hidden else [{"reviewer": a.created_by, "reviewer_id": a.author_key_id,
                                   "label_values": a.label_values, "modified_at": a.modified_at}
                                  for a in others_rows]
    state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == interaction.pk,
                                                      ReviewState.reviewer_id == ctx.actor.id)).first()
    position, total, done, complete = counts(session, ctx, interaction)
    n = ctx.settings.reviewers_per_item
    status = "open"
    if mine is not None:
        status = "done"
    elif n and len(others_rows) >= n:
        status = "complete"
    elif n and not holds(state) and len(others_rows) + held_by_others(session, ctx, interaction.pk) >= n:
        status = "taken"
    draft = state.draft if state is not None else None
    changes: list[str] = []
    if draft is not None and state is not None:
        touched = {v.get("label_schema_id") for v in draft if isinstance(v, dict)}
        changes = schema_changes(state.draft_schema, ctx.labels, {t for t in touched if isinstance(t, str)})
    return Item(interaction, position, total, done, complete, mine, others, len(others_rows), state, draft,
                changes, status, schema_version(ctx.labels))


def holds(state: ReviewState | None, now: datetime | None = None) -> bool:
    return state is not None and state.lease_until is not None and state.lease_until > (now or utcnow())


def held_by_others(session: Session, ctx: Ctx, interaction_pk: int) -> int:
    return session.scalar(select(func.count()).select_from(ReviewState).where(
        ReviewState.interaction_pk == interaction_pk, ReviewState.reviewer_id != ctx.actor.id,
        ReviewState.lease_until > utcnow())) or 0


def state_of(session: Session, ctx: Ctx, interaction_pk: int) -> ReviewState:
    """My state row on this item, made if missing (INSERT .. ON CONFLICT: two tabs may race to make it)."""
    stmt = dialect_insert(session, ReviewState.__table__).values(
        queue_pk=ctx.queue.pk, interaction_pk=interaction_pk, reviewer_id=ctx.actor.id,
        reviewer_name=ctx.actor.name, flagged=False, modified_at=utcnow())
    session.execute(stmt.on_conflict_do_nothing(index_elements=["interaction_pk", "reviewer_id"]))
    state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == interaction_pk,
                                                      ReviewState.reviewer_id == ctx.actor.id)
                            .execution_options(populate_existing=True)).one()
    return state


def claim(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> None:
    """Hold the item for me (renewing a hold keeps the time it was first opened)."""
    now = utcnow()
    state = state_of(session, ctx, interaction.pk)
    if not holds(state, now) or state.opened_at is None:
        state.opened_at = now
    state.lease_until = now + timedelta(seconds=ctx.settings.lease_seconds)
    state.modified_at = now
    session.flush()
