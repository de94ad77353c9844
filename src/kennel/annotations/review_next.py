"""Reviewing a queue, where a reviewer goes: the next item open for them, and an item by number or by
step (see review.py for the rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, func, select
from sqlalchemy.orm import Session

from kennel.annotations.models import Annotation, AnnotationInteraction
from kennel.annotations.review_models import ReviewAction, ReviewState
from kennel.annotations.review_view import (
    Ctx,
    Item,
    claim,
    find_interaction,
    held_by_others,
    item_view,
    reviewing,
)
from kennel.db.base import UTCDateTime, utcnow
from kennel.errors import Invalid, NotFound
from kennel.keys.service import Actor

# The statements are built once, with bound parameters, so that SQLAlchemy compiles each once (building
# and compiling these subqueries per request cost more than running them).
_ME = ReviewState.__table__.alias("me")
_MINE = Annotation.__table__.alias("mine")
_ANYONE = Annotation.__table__.alias("anyone")
_HELD = ReviewState.__table__.alias("held")
_I = AnnotationInteraction


def _params(ctx: Ctx, now: datetime, **extra: Any) -> dict[str, Any]:
    return {"queue": ctx.queue.pk, "reviewer": ctx.actor.id, "now": now,
            "n": ctx.settings.reviewers_per_item or 0, **extra}


def _candidates(with_n: bool, *, held_first: bool = False) -> Any:
    """Items open for me: not annotated by me; with N, not filled by others' annotations and live holds.
    `held_first`: only those I hold, found from my own state rows."""
    reviewer = bindparam("reviewer", type_=String())
    now = bindparam("now", type_=UTCDateTime())
    not_mine = ~select(_MINE.c.pk).where(_MINE.c.interaction_pk == _I.pk, _MINE.c.author_key_id == reviewer).exists()
    if held_first:
        stmt = (select(_I).join(_ME, _ME.c.interaction_pk == _I.pk)
                .where(_ME.c.queue_pk == bindparam("queue"), _ME.c.reviewer_id == reviewer, _ME.c.lease_until > now,
                       _ME.c.skipped_seq.is_(None), not_mine))
    else:
        stmt = (select(_I).outerjoin(_ME, and_(_ME.c.interaction_pk == _I.pk, _ME.c.reviewer_id == reviewer))
                .where(_I.queue_pk == bindparam("queue"), not_mine))
    if with_n:
        taken = (select(func.count()).select_from(_ANYONE).where(_ANYONE.c.interaction_pk == _I.pk).scalar_subquery()
                 + select(func.count()).select_from(_HELD).where(
                     _HELD.c.interaction_pk == _I.pk, _HELD.c.reviewer_id != reviewer,
                     _HELD.c.lease_until > now).scalar_subquery())
        stmt = stmt.where(taken < bindparam("n"))
    return stmt


def _statements(with_n: bool) -> dict[str, Any]:
    base = _candidates(with_n)
    fresh = base.where(_ME.c.skipped_seq.is_(None))
    return {
        "held": _candidates(with_n, held_first=True).order_by(_I.pk).limit(1),
        "after": fresh.where(_I.pk > bindparam("after")).order_by(_I.pk).limit(1),
        "start": fresh.order_by(_I.pk).limit(1),
        "skipped": base.where(_ME.c.skipped_seq.is_not(None)).order_by(_ME.c.skipped_seq, _I.pk).limit(1),
    }


_FIND = {True: _statements(True), False: _statements(False)}


def _find_next(session: Session, ctx: Ctx, after_pk: int | None, exclude: set[int]) -> AnnotationInteraction | None:
    stmts = _FIND[bool(ctx.settings.reviewers_per_item)]
    params = _params(ctx, utcnow(), after=after_pk or 0)

    def first(name: str) -> AnnotationInteraction | None:
        stmt = stmts[name]
        if exclude:
            stmt = stmt.where(_I.pk.not_in(exclude))
        return session.scalars(stmt, params).first()

    # An item I hold already comes first (a reload, a second tab): it is the one I was working on.
    # In queue order from where the reviewer is, then from the start; skipped items last, in skip order.
    order = ["after"]
    if after_pk is None:
        # Go on from my last submit or skip rather than walk again past everything done before it.
        last = session.scalar(select(ReviewAction.interaction_pk).where(
            ReviewAction.queue_pk == ctx.queue.pk, ReviewAction.reviewer_id == ctx.actor.id)
            .order_by(ReviewAction.pk.desc()).limit(1))
        params["after"] = last or 0
        order = ["held", "after"] if last else ["held"]
    for name in (*order, "start", "skipped"):
        found = first(name)
        if found is not None:
            return found
    return None


def next_item(session: Session, *, queue_id: str, actor: Actor, after_id: str | None = None) -> Item | None:
    """Hand the reviewer their next item and hold it for them; None when their queue is empty."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    return next_for(session, ctx, after_id)


def next_for(session: Session, ctx: Ctx, after_id: str | None) -> Item | None:
    after_pk = None
    if after_id:
        after_pk = find_interaction(session, ctx, after_id).pk
    tried: set[int] = set()
    for _ in range(20):
        found = _find_next(session, ctx, after_pk, tried)
        if found is None:
            return None
        if ctx.settings.reviewers_per_item and session.get_bind().dialect.name == "postgresql":
            # Another reviewer may have taken the last place between the search and now: decide again
            # holding the item's row.
            locked = find_interaction(session, ctx, found.id, lock=True)
            if not _room_for_me(session, ctx, locked):
                tried.add(found.pk)
                continue
        claim(session, ctx, found)
        return item_view(session, ctx, found)
    return None


def _room_for_me(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> bool:
    n = ctx.settings.reviewers_per_item
    if not n:
        return True
    others = session.scalar(select(func.count()).select_from(Annotation).where(
        Annotation.interaction_pk == interaction.pk, Annotation.author_key_id != ctx.actor.id)) or 0
    return others + held_by_others(session, ctx, interaction.pk) < n


def open_item(session: Session, *, queue_id: str, actor: Actor, interaction_id: str | None = None,
              position: int | None = None, step: int = 0) -> Item:
    """An item by id or by position (1-based), or the one `step` places from `interaction_id` in queue order
    (j/k). Held for me when it is still open for me; shown as it is otherwise."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    if position is not None:
        if position < 1:
            raise Invalid(f"item number must be 1 or more, got {position}", parameter="position")
        found = session.scalars(select(AnnotationInteraction).where(
            AnnotationInteraction.queue_pk == ctx.queue.pk, AnnotationInteraction.position == position)).first()
        if found is None:
            raise NotFound(f"queue {queue_id} has no item number {position}", parameter="position")
    elif interaction_id is None:
        raise Invalid("name an item: interaction_id or position", pointer="/data/attributes")
    else:
        found = find_interaction(session, ctx, interaction_id)
        if step:
            order = AnnotationInteraction.pk.desc() if step < 0 else AnnotationInteraction.pk
            cmp = AnnotationInteraction.pk < found.pk if step < 0 else AnnotationInteraction.pk > found.pk
            stepped = session.scalars(select(AnnotationInteraction).where(
                AnnotationInteraction.queue_pk == ctx.queue.pk, cmp).order_by(order).limit(1)).first()
            found = stepped or found
    view = item_view(session, ctx, found)
    if view.status == "open":
        claim(session, ctx, found)
        view.state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == found.pk,
                                                               ReviewState.reviewer_id == actor.id)).first()
    return view
