"""Reviewing a queue: what a reviewer does with an item (submit, draft, skip, flag, undo).

The rules live here, in review_view.py (who may review, the item as a reviewer sees it, holds) and in
review_next.py (which item a reviewer is handed next) and nowhere else, so that the pages and the API
enforce the same ones:

- **Done** means "this reviewer's annotation of the item exists" (written by any route). With N reviewers
  per item, an item leaves every queue once it has N annotations, and leaves mine once I annotated it.
- **Leases.** Handing an item to a reviewer holds it for them for `lease_seconds`; with N reviewers per item
  a held item counts as taken, so that no more reviewers are handed it than it still needs. A submit
  without a live lease is taken while the item still has room, and refused (409, "stale lease") when others
  have filled it meanwhile. PostgreSQL serialises the decisions about one item by locking its row; SQLite
  runs one writer at a time anyway.
- **Actions name their item** (by interaction id) and are idempotent: submitting twice stores one
  annotation, skipping a skipped item keeps its place. Undo takes back the reviewer's last submit or skip.
- **Blind review** hides other reviewers' values on an item until mine is in.

Services flush and never commit; every check runs before the first write.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from kennel.annotations.models import Annotation, AnnotationInteraction
from kennel.annotations.review_models import ReviewAction, ReviewState
from kennel.annotations.review_next import next_for, next_item, open_item
from kennel.annotations.review_view import (
    Ctx,
    Item,
    find_interaction,
    held_by_others,
    holds,
    item_view,
    owning,
    reviewing,
    schema_changes,
    schema_version,
    state_of,
    stored_to_draft,
)
from kennel.annotations.schemas import LabelValueIn, UpsertAnnotationIn
from kennel.annotations.service import upsert_annotations
from kennel.annotations.validation import check_annotation
from kennel.db.base import utcnow
from kennel.errors import Conflict, Invalid, NotFound
from kennel.keys.service import Actor

# What callers reach through this module: the rules' whole surface.
__all__ = ["Item", "flag", "item", "next_item", "open_item", "owning", "reviewing", "save_draft", "skip", "submit",
           "submit_and_next", "undo"]

# Time on one item counted towards the median at most this long (a reviewer who went to lunch).
MAX_SECONDS_PER_ITEM = 900.0
MAX_DRAFT_BYTES = 256 * 1024


# Actions ---------------------------------------------------------------------------------------------

def _missing_required(labels: Sequence[dict[str, Any]], values: Sequence[LabelValueIn]) -> list[str]:
    given = {v.label_schema_id for v in values}
    return [label["name"] for label in labels if label.get("is_required") and label["id"] not in given]


def _check_version(ctx: Ctx, version: str | None, state: ReviewState | None) -> None:
    if version is None or version == schema_version(ctx.labels):
        return
    before = state.draft_schema if state is not None and state.draft_schema is not None else None
    changes = schema_changes(before, ctx.labels) if before is not None else []
    said = "; ".join(changes) if changes else "labels were changed"
    raise Conflict(f"the queue's label schema changed since this item was loaded ({said}); reload the item and "
                   "check those labels; nothing was saved", pointer="/data/attributes/schema_version")


def submit(session: Session, *, queue_id: str, interaction_id: str, values: Sequence[LabelValueIn], actor: Actor,
           version: str | None = None) -> dict[str, Any]:
    """Store my annotation of this item (replacing my earlier one), as one undoable action."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    return _submit(session, ctx, interaction_id, values, version)


def _submit(session: Session, ctx: Ctx, interaction_id: str, values: Sequence[LabelValueIn],
            version: str | None) -> dict[str, Any]:
    queue_id, actor = ctx.queue.id, ctx.actor
    interaction = find_interaction(session, ctx, interaction_id, lock=True)
    state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == interaction.pk,
                                                      ReviewState.reviewer_id == actor.id)).first()
    _check_version(ctx, version, state)
    pointer = "/data/attributes/label_values"
    missing = _missing_required(ctx.labels, values)
    if missing:
        raise Invalid(f"required label{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}; nothing was "
                      "saved", pointer=pointer, meta={"missing": missing})
    labels_by_id = {label["id"]: label for label in ctx.labels}
    _, problem = check_annotation(values, labels_by_id, [])
    if problem:
        raise Invalid(f"{problem}; nothing was saved", pointer=pointer)
    before = session.scalars(select(Annotation.label_values).where(
        Annotation.interaction_pk == interaction.pk, Annotation.author_key_id == actor.id)).first()
    now = utcnow()
    if before is None and ctx.settings.reviewers_per_item:
        n = ctx.settings.reviewers_per_item
        others = session.scalar(select(func.count()).select_from(Annotation).where(
            Annotation.interaction_pk == interaction.pk)) or 0
        if others >= n:
            raise Conflict(f"this item already has the {n} annotation{'s' if n > 1 else ''} it needs (reviewers per "
                           "item); yours was not saved", pointer="/data/attributes")
        if not holds(state, now) and others + held_by_others(session, ctx, interaction.pk) >= n:
            raise Conflict("stale lease: your hold on this item expired and other reviewers have taken the places "
                           f"it had left ({n} reviewers per item); nothing was saved", pointer="/data/attributes")
    saved, errors = upsert_annotations(session, queue_id=queue_id, items=[
        UpsertAnnotationIn(interaction_id=interaction_id, label_values=list(values))], actor=actor)
    if errors:  # pragma: no cover - checked above with the same rules
        raise Invalid(f"{errors[0]['error']}; nothing was saved", pointer=pointer)
    state = state_of(session, ctx, interaction.pk)
    opened = state.opened_at
    if opened is not None:
        state.seconds = min((now - opened).total_seconds(), MAX_SECONDS_PER_ITEM)
    state.lease_until = None
    state.draft = None
    state.draft_schema = None
    state.skipped_seq = None
    state.modified_at = now
    session.add(ReviewAction(queue_pk=ctx.queue.pk, interaction_pk=interaction.pk, reviewer_id=actor.id,
                             kind="submit", before_values=before, created_at=now))
    session.flush()
    return saved[0]


def submit_and_next(session: Session, *, queue_id: str, interaction_id: str, values: Sequence[LabelValueIn],
                    actor: Actor, version: str | None = None) -> tuple[dict[str, Any], Item | None]:
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    saved = _submit(session, ctx, interaction_id, values, version)
    return saved, next_for(session, ctx, interaction_id)


def save_draft(session: Session, *, queue_id: str, interaction_id: str, values: list[dict[str, Any]],
               actor: Actor, version: str | None = None) -> None:
    """Keep what the reviewer has typed so far (any subset of labels, not yet checked against the rules)."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor)
    interaction = find_interaction(session, ctx, interaction_id)
    state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == interaction.pk,
                                                      ReviewState.reviewer_id == actor.id)).first()
    _check_version(ctx, version, state)
    pointer = "/data/attributes/label_values"
    known = {label["id"] for label in ctx.labels}
    for index, value in enumerate(values):
        if not isinstance(value, dict) or not isinstance(value.get("label_schema_id"), str):
            raise Invalid(f"label_values[{index}] must be an object with a label_schema_id", pointer=f"{pointer}/{index}")
        if value["label_schema_id"] not in known:
            raise NotFound(f"label_values[{index}]: no label with id {value['label_schema_id']!r} in this queue's "
                           "label schema; nothing was saved", pointer=f"{pointer}/{index}/label_schema_id")
    if len(orjson.dumps(values)) > MAX_DRAFT_BYTES:
        raise Invalid(f"a draft holds at most {MAX_DRAFT_BYTES} bytes", pointer=pointer)
    state = state_of(session, ctx, interaction.pk)
    state.draft = values
    state.draft_schema = ctx.labels
    state.modified_at = utcnow()
    session.flush()


def skip(session: Session, *, queue_id: str, interaction_id: str, actor: Actor) -> Item | None:
    """Send the item to the end of my queue (idempotent: a skipped item keeps its place) and hand me the next."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    interaction = find_interaction(session, ctx, interaction_id)
    state = state_of(session, ctx, interaction.pk)
    if state.skipped_seq is None:
        last = session.scalar(select(func.max(ReviewState.skipped_seq)).where(
            ReviewState.queue_pk == ctx.queue.pk, ReviewState.reviewer_id == actor.id)) or 0
        session.add(ReviewAction(queue_pk=ctx.queue.pk, interaction_pk=interaction.pk, reviewer_id=actor.id,
                                 kind="skip", before_skip=None, created_at=utcnow()))
        state.skipped_seq = last + 1
    state.lease_until = None
    state.modified_at = utcnow()
    session.flush()
    return next_for(session, ctx, interaction_id)


def flag(session: Session, *, queue_id: str, interaction_id: str, actor: Actor, flagged: bool) -> Item:
    ctx = reviewing(session, queue_id=queue_id, actor=actor)
    interaction = find_interaction(session, ctx, interaction_id)
    state = state_of(session, ctx, interaction.pk)
    state.flagged = flagged
    state.modified_at = utcnow()
    session.flush()
    return item_view(session, ctx, interaction)


def undo(session: Session, *, queue_id: str, actor: Actor) -> Item:
    """Take back my last submit or skip in this queue, and hand me that item again (a submit's values come
    back as the draft, ready to correct)."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    action = session.scalars(select(ReviewAction).where(
        ReviewAction.queue_pk == ctx.queue.pk, ReviewAction.reviewer_id == actor.id,
        ReviewAction.undone_at.is_(None)).order_by(ReviewAction.pk.desc()).limit(1).with_for_update()).first()
    if action is None:
        raise Conflict("nothing to undo: you have no submit or skip in this queue left to take back")
    interaction = session.get_one(AnnotationInteraction, action.interaction_pk)
    state = state_of(session, ctx, interaction.pk)
    now = utcnow()
    if action.kind == "submit":
        mine = and_(Annotation.interaction_pk == interaction.pk, Annotation.author_key_id == actor.id)
        current = session.scalars(select(Annotation.label_values).where(mine)).first()
        if action.before_values is None:
            session.execute(delete(Annotation).where(mine))
        else:
            session.execute(update(Annotation).where(mine).values(label_values=action.before_values,
                                                                  modified_at=now, modified_by=actor.name))
        if current is not None:
            state.draft = stored_to_draft(current)
            state.draft_schema = ctx.labels
    else:
        state.skipped_seq = action.before_skip
    action.undone_at = now
    session.flush()
    state.lease_until = now + timedelta(seconds=ctx.settings.lease_seconds)
    state.opened_at = now
    state.modified_at = now
    session.flush()
    return item_view(session, ctx, interaction)


def item(session: Session, *, queue_id: str, interaction_id: str, actor: Actor) -> Item:
    """Read an item as this reviewer sees it, holding nothing."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor)
    return item_view(session, ctx, find_interaction(session, ctx, interaction_id))
