"""The queue owner's reads and rulings: agreement, the items in disagreement, and gold values.

Every read is set-based: a queue's annotations come in one query (or in keyset batches over the index on
(queue_pk, interaction_pk, pk) when only a page is wanted), never a query per item. The figures themselves
are computed by `agreement.py`, which knows nothing of the database.

An item is *in disagreement* when at least two reviewers annotated it and their values (or pass/fail
assessments) differ on some label. Text labels are left out of that test: free text almost never matches
word for word, and is summarised by similarity instead.
"""

from __future__ import annotations

import operator
import re
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress, repeat
from typing import Any

import orjson
from sqlalchemy import DateTime, Text, cast, delete, func, literal, select, type_coerce
from sqlalchemy.orm import Session

from kennel.annotations.agreement import (
    LabelAgreement,
    Unit,
    hashable,
    majority,
    units_agreement,
    units_of,
)
from kennel.annotations.models import Annotation, AnnotationInteraction, AnnotationQueue
from kennel.annotations.owner_models import Adjudication
from kennel.annotations.schemas import LabelValueIn
from kennel.annotations.service import dialect_insert, get_queue
from kennel.annotations.validation import check_annotation
from kennel.db.base import new_id, utcnow
from kennel.db.maintenance import collector_paused
from kennel.errors import Invalid, NotFound
from kennel.keys.service import Actor

_A = Annotation.__table__.c
_I = AnnotationInteraction.__table__.c
_J = Adjudication.__table__.c
BATCH = 5000
ASSESSMENT = " (assessment)"

Values = dict[str, dict[str, Any]]  # label id -> stored entry {value, assessment?, reasoning?, ...}


@dataclass
class Gold:
    values: Values
    by: str
    at: datetime


@dataclass
class Ratings:
    """A queue's annotations, by item: interaction pk -> reviewer key -> values by label id."""

    labels: list[dict[str, Any]]
    reviewers: dict[str, str] = field(default_factory=dict)   # key id -> name shown
    by_item: dict[int, dict[str, Values]] = field(default_factory=dict)

    def by_label(self) -> tuple[dict[str, dict[int, dict[str, Any]]], dict[str, dict[int, dict[str, Any]]]]:
        """Per label of the schema: item -> reviewer -> value, and item -> reviewer -> pass/fail, in one pass."""
        values: dict[str, dict[int, dict[str, Any]]] = {label["id"]: {} for label in self.labels}
        assessed: dict[str, dict[int, dict[str, Any]]] = {label["id"]: {} for label in self.labels}
        for item, by_reviewer in self.by_item.items():
            for who, given in by_reviewer.items():
                for lid, entry in given.items():
                    target = values.get(lid)
                    if target is None:
                        continue  # a label no longer in the schema
                    found = target.get(item)
                    if found is None:
                        found = target[item] = {}
                    found[who] = entry.get("value")
                    assessment = entry.get("assessment")
                    if assessment is not None:
                        found = assessed[lid].get(item)
                        if found is None:
                            found = assessed[lid][item] = {}
                        found[who] = assessment
        return values, assessed


def _loads(raw: Any) -> Any:
    return orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw


def _name_reviewers(names: dict[str, str]) -> dict[str, str]:
    """Names as shown; two keys with one name are told apart by the start of their id."""
    seen = Counter(names.values())
    return {key: (name if seen[name] == 1 else f"{name} ({key[:6]})") for key, name in names.items()}


def _collect(rows: Any, ratings: Ratings, names: dict[str, str]) -> None:
    by_item = ratings.by_item
    for pk, author, who, raw in rows:
        names[author] = who
        group = by_item.get(pk)
        if group is None:
            group = by_item[pk] = {}
        group[author] = _loads(raw)


def _annotation_columns() -> tuple[Any, ...]:
    return (_A.interaction_pk, _A.author_key_id, _A.modified_by, cast(_A.label_values, Text))


def load_ratings(session: Session, queue: AnnotationQueue) -> Ratings:
    """Every annotation of the queue, in one query."""
    ratings = Ratings(labels=list(queue.label_schemas or []))
    names: dict[str, str] = {}
    # .all() fetches in one driver call; iterating the result would fetch row by row.
    rows = session.connection().execute(select(*_annotation_columns()).where(_A.queue_pk == queue.pk)).tuples().all()
    _collect(rows, ratings, names)
    ratings.reviewers = _name_reviewers(names)
    return ratings


def load_golds(session: Session, queue_pk: int, interaction_pks: Sequence[int] | None = None) -> dict[int, Gold]:
    stmt = select(_J.interaction_pk, cast(_J.label_values, Text), _J.adjudicated_by,
                  type_coerce(_J.modified_at, DateTime())).where(_J.queue_pk == queue_pk)
    if interaction_pks is not None:
        if not interaction_pks:
            return {}
        stmt = stmt.where(_J.interaction_pk.in_(list(interaction_pks)))
    return {pk: Gold(_loads(raw), by, at) for pk, raw, by, at in session.connection().execute(stmt).tuples()}


# Agreement ----------------------------------------------------------------------------------------

@dataclass
class QueueAgreement:
    items: int
    annotated_items: int
    reviewers: list[str]
    labels: list[LabelAgreement]
    interaction_ids: dict[int, str] = field(default_factory=dict)  # for the items the figures name


# Label ids as SQL JSON paths can spell them; any other id is read by parsing whole annotations instead.
_PATH_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
ByLabel = dict[str, list[Unit]]  # label id -> the pairable units of its values


def _value_array(session: Session, parts: Sequence[tuple[str, str]]) -> Any:
    """One JSON array per annotation holding only the wanted (label id, value|assessment) parts, built by
    the database: the server then parses a few short arrays rather than every annotation's whole JSON."""
    if session.get_bind().dialect.name == "postgresql":
        # Keys bound as text: bound through the JSONB column's own type they would arrive as JSON strings.
        return cast(func.jsonb_build_array(*[_A.label_values.op("->")(literal(lid, Text()))
                                             .op("->")(literal(part, Text())) for lid, part in parts]), Text)
    # With two or more paths SQLite's json_extract answers a JSON array (true stays true); with one, a bare
    # SQL value, so a lone path is asked for twice.
    paths = [f'$."{lid}".{part}' for lid, part in parts]
    return func.json_extract(_A.label_values, *(paths if len(paths) > 1 else paths * 2))


def _units(ratings: Ratings) -> tuple[ByLabel, ByLabel]:
    values, assessed = ratings.by_label()
    return ({lid: units_of(r) for lid, r in values.items()}, {lid: units_of(r) for lid, r in assessed.items()})


def load_label_values(session: Session, queue: AnnotationQueue) -> tuple[ByLabel, ByLabel, dict[str, str], int]:
    """Per label the pairable units of its values, and of its pass/fail assessments; the reviewers' names;
    the number of annotated items. One query, in item and reviewer order; the database extracts the values."""
    labels = list(queue.label_schemas or [])
    if not labels or not all(_PATH_SAFE.fullmatch(label["id"]) for label in labels):
        ratings = load_ratings(session, queue)
        values, assessed = _units(ratings)
        return values, assessed, ratings.reviewers, len(ratings.by_item)
    parts = [(label["id"], "value") for label in labels]
    parts += [(label["id"], "assessment") for label in labels if label.get("has_assessment")]
    author: Any = _A.author_key_id
    if session.get_bind().dialect.name == "postgresql":
        author = author.collate("C")  # the order Python sorts reviewer keys in
    rows = session.connection().execute(select(_A.interaction_pk, _A.author_key_id, _A.modified_by,
                                               _value_array(session, parts))
                                        .where(_A.queue_pk == queue.pk).order_by(_A.interaction_pk, author)).all()
    if not rows:
        return {lid: [] for lid, _ in parts}, {}, {}, 0
    pks, authors, who, raws = zip(*rows, strict=True)
    # One parse for all rows, then one column per part.
    columns = list(zip(*orjson.loads("[" + ",".join(raws) + "]"), strict=True))
    # Where each item's rows start (rows come in item order).
    starts = [0, *compress(range(1, len(pks)), map(operator.ne, pks[1:], pks))]
    found = _units_by_column(pks, authors, columns, starts)
    values = {lid: found[i] for i, (lid, part) in enumerate(parts) if part == "value"}
    assessed = {lid: found[i] for i, (lid, part) in enumerate(parts) if part == "assessment"}
    return values, assessed, _name_reviewers(dict(zip(authors, who, strict=True))), len(starts)


def _units_by_column(pks: Sequence[int], authors: Sequence[str], columns: Sequence[Sequence[Any]],
                     starts: Sequence[int]) -> list[list[Unit]]:
    """The pairable units of each column of values (None where a reviewer gave none), the rows being in item
    order and `starts` where each item's rows begin. Slices, with no loop in Python, where no value is missing."""
    count = len(pks)
    bounds = [(lo, hi) for lo, hi in zip(starts, [*starts[1:], count], strict=True) if hi - lo >= 2]
    items = [pks[lo] for lo, _ in bounds]
    m = count // len(starts)
    uniform = m >= 2 and m * len(starts) == count  # every item has m rows: row k of every item is one stride
    cuts = [] if uniform else [slice(lo, hi) for lo, hi in bounds]

    def per_item(column: Sequence[Any]) -> Iterator[Any]:
        if uniform:
            return zip(*(column[k::m] for k in range(m)), strict=True)
        return map(operator.getitem, repeat(column), cuts)

    # One tuple object per set of reviewers: grouping and counting by it then compares identities.
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    raters = list(per_item(authors))
    raters = list(map(shared.setdefault, raters, raters))
    found: list[list[Unit]] = []
    for column in columns:
        if None not in column:
            found.append(list(zip(items, raters, per_item(column), strict=True)))
            continue
        units: list[Unit] = []
        for item, (lo, hi) in zip(items, bounds, strict=True):
            kept = [k for k in range(lo, hi) if column[k] is not None]
            if len(kept) >= 2:
                units.append((item, tuple(authors[k] for k in kept), tuple(column[k] for k in kept)))
        found.append(units)
    return found


def queue_agreement(session: Session, *, queue_id: str) -> QueueAgreement:
    queue, _ = get_queue(session, queue_id=queue_id)
    with collector_paused():
        values, assessed, reviewers, annotated = load_label_values(session, queue)
        labels = agreement_from(list(queue.label_schemas or []), values, assessed, reviewers)
    total = session.scalar(select(func.count()).select_from(AnnotationInteraction.__table__)
                           .where(_I.queue_pk == queue.pk)) or 0
    named = [d["item"] for la in labels for d in la.most_different]
    ids = dict(session.execute(select(_I.pk, _I.id).where(_I.pk.in_(named))).tuples().all()) if named else {}
    return QueueAgreement(items=total, annotated_items=annotated, reviewers=sorted(reviewers.values()),
                          labels=labels, interaction_ids=ids)


def agreement_from(labels: Sequence[dict[str, Any]], values: ByLabel, assessed: ByLabel,
                   reviewers: dict[str, str]) -> list[LabelAgreement]:
    """The figures of every label (and of its pass/fail assessment, where it has one)."""
    out: list[LabelAgreement] = []
    for label in labels:
        out.append(units_agreement(label, values.get(label["id"], []), reviewers))
        if label.get("has_assessment"):
            out.append(units_agreement({"id": label["id"], "name": label["name"] + ASSESSMENT, "type": "boolean"},
                                       assessed.get(label["id"], []), reviewers))
    return out


def agreement_of(ratings: Ratings) -> list[LabelAgreement]:
    values, assessed = _units(ratings)
    return agreement_from(ratings.labels, values, assessed, ratings.reviewers)


# Disagreement -------------------------------------------------------------------------------------

def disagreeing_labels(labels: Sequence[dict[str, Any]], by_reviewer: dict[str, Values]) -> list[str]:
    """The ids of the labels on which the reviewers of one item differ (see the module's docstring)."""
    if len(by_reviewer) < 2:
        return []
    out: list[str] = []
    for label in labels:
        if label["type"] == "text":
            continue
        lid = label["id"]
        given = [v[lid] for v in by_reviewer.values() if lid in v]
        if len(given) < 2:
            continue
        if len({hashable(g.get("value")) for g in given}) > 1:
            out.append(lid)
            continue
        assessed = [g["assessment"] for g in given if "assessment" in g]
        if len(assessed) >= 2 and len(set(assessed)) > 1:
            out.append(lid)
    return out


@dataclass
class Item:
    pk: int
    id: str
    type: str
    content_id: str
    display_block: Any
    reviews: dict[str, Values]
    disagreeing: list[str]
    gold: Gold | None = None


STATUSES = ("open", "adjudicated", "all")


def _annotations_after(session: Session, queue_pk: int, after: int) -> Iterator[Any]:
    """The queue's annotations in item order, of the items after interaction pk `after`, in keyset batches."""
    conn = session.connection()
    where = _A.interaction_pk > after
    while True:
        rows = conn.execute(select(*_annotation_columns(), _A.pk).where(_A.queue_pk == queue_pk, where)
                            .order_by(_A.interaction_pk, _A.pk).limit(BATCH)).tuples().all()
        yield from rows
        if len(rows) < BATCH:
            return
        item, pk = rows[-1][0], rows[-1][4]
        where = (_A.interaction_pk > item) | ((_A.interaction_pk == item) & (_A.pk > pk))


def disagreements(session: Session, *, queue_id: str, status: str = "open", after: int = 0,
                  limit: int = 20) -> tuple[list[Item], int | None]:
    """A page of the items in disagreement (by interaction pk, from `after` on) and the next page's
    cursor. `status`: open (not adjudicated yet), adjudicated, or all."""
    if status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}, got {status!r}", parameter="status")
    queue, _ = get_queue(session, queue_id=queue_id)
    labels = list(queue.label_schemas or [])
    found: dict[int, tuple[dict[str, Values], list[str]]] = {}
    names: dict[str, str] = {}
    current: int | None = None
    group: dict[str, Values] = {}
    next_cursor: int | None = None

    def settle(pk: int, reviews: dict[str, Values]) -> None:
        differ = disagreeing_labels(labels, reviews)
        if differ:
            found[pk] = (reviews, differ)

    wanted = limit + 1
    golds: dict[int, Gold] = {}
    for pk, author, who, raw, _ in _annotations_after(session, queue.pk, after):
        if pk != current:
            if current is not None:
                settle(current, group)
            current, group = pk, {}
            if len(found) >= wanted * 4:
                golds.update(load_golds(session, queue.pk, list(found)))
                _keep(found, golds, status)
                if len(found) >= wanted:
                    break
        names[author] = who
        group[author] = _loads(raw)
    else:
        if current is not None:
            settle(current, group)
    golds.update(load_golds(session, queue.pk, [pk for pk in found if pk not in golds]))
    _keep(found, golds, status)
    pks = sorted(found)[:wanted]
    if len(pks) > limit:
        next_cursor = pks[limit - 1]
        pks = pks[:limit]
    shown = _name_reviewers(names)
    rows = {r.pk: r for r in session.execute(select(_I.pk, _I.id, _I.type, _I.content_id, _I.display_block)
                                             .where(_I.pk.in_(pks)))} if pks else {}
    items = [Item(pk, rows[pk].id, rows[pk].type, rows[pk].content_id, _loads(rows[pk].display_block),
                  {shown[a]: v for a, v in found[pk][0].items()}, found[pk][1], golds.get(pk))
             for pk in pks]
    return items, next_cursor


def _keep(found: dict[int, Any], golds: dict[int, Gold], status: str) -> None:
    if status == "all":
        return
    drop = [pk for pk in found if (pk in golds) != (status == "adjudicated")]
    for pk in drop:
        del found[pk]


def item(session: Session, *, queue_id: str, interaction_id: str) -> tuple[AnnotationQueue, Item]:
    """One item with every review and its gold value, whether or not it is in disagreement."""
    queue, _ = get_queue(session, queue_id=queue_id)
    row = session.execute(select(_I.pk, _I.id, _I.type, _I.content_id, _I.display_block)
                          .where(_I.queue_pk == queue.pk, _I.id == interaction_id)).first()
    if row is None:
        raise NotFound(f"interaction {interaction_id!r} not found in queue {queue_id}")
    names: dict[str, str] = {}
    reviews: dict[str, Values] = {}
    for _, author, who, raw in session.connection().execute(
            select(*_annotation_columns()).where(_A.interaction_pk == row.pk).order_by(_A.pk)).tuples():
        names[author] = who
        reviews[author] = _loads(raw)
    shown = _name_reviewers(names)
    labels = list(queue.label_schemas or [])
    return queue, Item(row.pk, row.id, row.type, row.content_id, _loads(row.display_block),
                       {shown[a]: v for a, v in reviews.items()}, disagreeing_labels(labels, reviews),
                       load_golds(session, queue.pk, [row.pk]).get(row.pk))


# Rulings ------------------------------------------------------------------------------------------

def adjudicate(session: Session, *, queue_id: str, interaction_id: str, label_values: Sequence[LabelValueIn],
               actor: Actor) -> tuple[str, Gold]:
    """Store the gold values of one item (replacing any earlier ruling). Values follow the label schema as
    reviewers' do, but no label is required: a ruling may settle only the labels in dispute."""
    queue, _ = get_queue(session, queue_id=queue_id, lock=True)
    pk = session.scalar(select(_I.pk).where(_I.queue_pk == queue.pk, _I.id == interaction_id))
    if pk is None:
        raise NotFound(f"interaction {interaction_id!r} not found in queue {queue_id}")
    labels_by_id = {label["id"]: label for label in queue.label_schemas or []}
    stored, problem = check_annotation(label_values, labels_by_id, [])
    if problem or stored is None:
        raise Invalid(f"gold value: {problem}", pointer="/data/attributes/label_values")
    now = utcnow()
    table = Adjudication.__table__
    stmt = dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(index_elements=["interaction_pk"], set_={
        "label_values": stmt.excluded.label_values, "author_key_id": stmt.excluded.author_key_id,
        "adjudicated_by": stmt.excluded.adjudicated_by, "modified_at": stmt.excluded.modified_at})
    ruling_id = session.execute(stmt.returning(table.c.id), {
        "id": new_id(), "queue_pk": queue.pk, "interaction_pk": pk, "label_values": stored,
        "author_key_id": actor.id, "adjudicated_by": actor.name, "created_at": now, "modified_at": now}).scalar_one()
    session.flush()
    return ruling_id, Gold(stored, actor.name, now)


def withdraw(session: Session, *, queue_id: str, interaction_id: str) -> None:
    queue, _ = get_queue(session, queue_id=queue_id, lock=True)
    pk = session.scalar(select(_I.pk).where(_I.queue_pk == queue.pk, _I.id == interaction_id))
    if pk is None:
        raise NotFound(f"interaction {interaction_id!r} not found in queue {queue_id}")
    gone = session.execute(delete(Adjudication).where(_J.interaction_pk == pk))
    if not gone.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"interaction {interaction_id} has no gold value to withdraw")
    session.flush()


# Consensus ----------------------------------------------------------------------------------------

def consensus(label: dict[str, Any], given: Sequence[Any]) -> Any:
    """The reviewers' shared value of a label on one item: the strict majority; for scores without one,
    the median; otherwise None (no consensus)."""
    if not given:
        return None
    found = majority(given)
    if found is not None:
        return sorted(found) if isinstance(found, frozenset) else found
    if label["type"] == "score":
        return statistics.median(given)
    return None
