"""Reviewing a queue: which item a reviewer is handed next, and what they do with it.

The rules live here and only here, so that the pages and the API enforce the same ones:

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

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import String, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from kennel.annotations.models import Annotation, AnnotationInteraction, AnnotationQueue
from kennel.annotations.review_models import (
    ReviewAction,
    ReviewState,
)
from kennel.annotations.review_settings import Settings, settings_of
from kennel.annotations.schemas import LabelValueIn, UpsertAnnotationIn
from kennel.annotations.service import (
    dialect_insert,
    get_queue,
    may_annotate,
    may_see,
    upsert_annotations,
)
from kennel.annotations.validation import check_annotation
from kennel.db.base import UTCDateTime, utcnow
from kennel.errors import Conflict, Forbidden, Invalid, NotFound
from kennel.keys.service import Actor
from kennel.people.roles import Permission

# Time on one item counted towards the median at most this long (a reviewer who went to lunch).
MAX_SECONDS_PER_ITEM = 900.0
MAX_DRAFT_BYTES = 256 * 1024
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


def _interaction(session: Session, ctx: Ctx, interaction_id: str, *, lock: bool = False) -> AnnotationInteraction:
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


def _counts(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> tuple[int, int, int, int]:
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


def _stored_to_draft(stored: dict[str, Any]) -> list[dict[str, Any]]:
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
    position, total, done, complete = _counts(session, ctx, interaction)
    n = ctx.settings.reviewers_per_item
    status = "open"
    if mine is not None:
        status = "done"
    elif n and len(others_rows) >= n:
        status = "complete"
    elif n and not _holds(state) and len(others_rows) + _held_by_others(session, ctx, interaction.pk) >= n:
        status = "taken"
    draft = state.draft if state is not None else None
    changes: list[str] = []
    if draft is not None and state is not None:
        touched = {v.get("label_schema_id") for v in draft if isinstance(v, dict)}
        changes = schema_changes(state.draft_schema, ctx.labels, {t for t in touched if isinstance(t, str)})
    return Item(interaction, position, total, done, complete, mine, others, len(others_rows), state, draft,
                changes, status, schema_version(ctx.labels))


def _holds(state: ReviewState | None, now: datetime | None = None) -> bool:
    return state is not None and state.lease_until is not None and state.lease_until > (now or utcnow())


def _held_by_others(session: Session, ctx: Ctx, interaction_pk: int) -> int:
    return session.scalar(select(func.count()).select_from(ReviewState).where(
        ReviewState.interaction_pk == interaction_pk, ReviewState.reviewer_id != ctx.actor.id,
        ReviewState.lease_until > utcnow())) or 0


def _state(session: Session, ctx: Ctx, interaction_pk: int) -> ReviewState:
    """My state row on this item, made if missing (INSERT .. ON CONFLICT: two tabs may race to make it)."""
    stmt = dialect_insert(session, ReviewState.__table__).values(
        queue_pk=ctx.queue.pk, interaction_pk=interaction_pk, reviewer_id=ctx.actor.id,
        reviewer_name=ctx.actor.name, flagged=False, modified_at=utcnow())
    session.execute(stmt.on_conflict_do_nothing(index_elements=["interaction_pk", "reviewer_id"]))
    state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == interaction_pk,
                                                      ReviewState.reviewer_id == ctx.actor.id)
                            .execution_options(populate_existing=True)).one()
    return state


def _claim(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> None:
    """Hold the item for me (renewing a hold keeps the time it was first opened)."""
    now = utcnow()
    state = _state(session, ctx, interaction.pk)
    if not _holds(state, now) or state.opened_at is None:
        state.opened_at = now
    state.lease_until = now + timedelta(seconds=ctx.settings.lease_seconds)
    state.modified_at = now
    session.flush()


# Choosing the next item ---------------------------------------------------------------------------

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
    return _next(session, ctx, after_id)


def _next(session: Session, ctx: Ctx, after_id: str | None) -> Item | None:
    after_pk = None
    if after_id:
        after_pk = _interaction(session, ctx, after_id).pk
    tried: set[int] = set()
    for _ in range(20):
        found = _find_next(session, ctx, after_pk, tried)
        if found is None:
            return None
        if ctx.settings.reviewers_per_item and session.get_bind().dialect.name == "postgresql":
            # Another reviewer may have taken the last place between the search and now: decide again
            # holding the item's row.
            locked = _interaction(session, ctx, found.id, lock=True)
            if not _room_for_me(session, ctx, locked):
                tried.add(found.pk)
                continue
        _claim(session, ctx, found)
        return item_view(session, ctx, found)
    return None


def _room_for_me(session: Session, ctx: Ctx, interaction: AnnotationInteraction) -> bool:
    n = ctx.settings.reviewers_per_item
    if not n:
        return True
    others = session.scalar(select(func.count()).select_from(Annotation).where(
        Annotation.interaction_pk == interaction.pk, Annotation.author_key_id != ctx.actor.id)) or 0
    return others + _held_by_others(session, ctx, interaction.pk) < n


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
        found = _interaction(session, ctx, interaction_id)
        if step:
            order = AnnotationInteraction.pk.desc() if step < 0 else AnnotationInteraction.pk
            cmp = AnnotationInteraction.pk < found.pk if step < 0 else AnnotationInteraction.pk > found.pk
            stepped = session.scalars(select(AnnotationInteraction).where(
                AnnotationInteraction.queue_pk == ctx.queue.pk, cmp).order_by(order).limit(1)).first()
            found = stepped or found
    view = item_view(session, ctx, found)
    if view.status == "open":
        _claim(session, ctx, found)
        view.state = session.scalars(select(ReviewState).where(ReviewState.interaction_pk == found.pk,
                                                               ReviewState.reviewer_id == actor.id)).first()
    return view


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
    interaction = _interaction(session, ctx, interaction_id, lock=True)
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
        if not _holds(state, now) and others + _held_by_others(session, ctx, interaction.pk) >= n:
            raise Conflict("stale lease: your hold on this item expired and other reviewers have taken the places "
                           f"it had left ({n} reviewers per item); nothing was saved", pointer="/data/attributes")
    saved, errors = upsert_annotations(session, queue_id=queue_id, items=[
        UpsertAnnotationIn(interaction_id=interaction_id, label_values=list(values))], actor=actor)
    if errors:  # pragma: no cover - checked above with the same rules
        raise Invalid(f"{errors[0]['error']}; nothing was saved", pointer=pointer)
    state = _state(session, ctx, interaction.pk)
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
    return saved, _next(session, ctx, interaction_id)


def save_draft(session: Session, *, queue_id: str, interaction_id: str, values: list[dict[str, Any]],
               actor: Actor, version: str | None = None) -> None:
    """Keep what the reviewer has typed so far (any subset of labels, not yet checked against the rules)."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor)
    interaction = _interaction(session, ctx, interaction_id)
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
    state = _state(session, ctx, interaction.pk)
    state.draft = values
    state.draft_schema = ctx.labels
    state.modified_at = utcnow()
    session.flush()


def skip(session: Session, *, queue_id: str, interaction_id: str, actor: Actor) -> Item | None:
    """Send the item to the end of my queue (idempotent: a skipped item keeps its place) and hand me the next."""
    ctx = reviewing(session, queue_id=queue_id, actor=actor, lock=True)
    interaction = _interaction(session, ctx, interaction_id)
    state = _state(session, ctx, interaction.pk)
    if state.skipped_seq is None:
        last = session.scalar(select(func.max(ReviewState.skipped_seq)).where(
            ReviewState.queue_pk == ctx.queue.pk, ReviewState.reviewer_id == actor.id)) or 0
        session.add(ReviewAction(queue_pk=ctx.queue.pk, interaction_pk=interaction.pk, reviewer_id=actor.id,
                                 kind="skip", before_skip=None, created_at=utcnow()))
        state.skipped_seq = last + 1
    state.lease_until = None
    state.modified_at = utcnow()
    session.flush()
    return _next(session, ctx, interaction_id)


def flag(session: Session, *, queue_id: str, interaction_id: str, actor: Actor, flagged: bool) -> Item:
    ctx = reviewing(session, queue_id=queue_id, actor=actor)
    interaction = _interaction(session, ctx, interaction_id)
    state = _state(session, ctx, interaction.pk)
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
    state = _state(session, ctx, interaction.pk)
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
            state.draft = _stored_to_draft(current)
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
    return item_view(session, ctx, _interaction(session, ctx, interaction_id))
