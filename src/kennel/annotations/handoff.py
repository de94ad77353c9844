"""What leaves a queue: its annotations as a file (CSV, JSONL), and its items as records of a dataset.

Export: one row (CSV) or one object (JSONL) per annotated item. The CSV has one column per reviewer per
label (`<label> [<reviewer>]`, with `... assessment` and `... reasoning` beside it where the label has
them) and the gold value last (`<label> [gold]`); values are written as JSON unless they are plain text.

To a dataset: the chosen items become records of ONE new version of a new or existing dataset, written by
the datasets package's own change function (so its checks and its version bookkeeping apply). Each record:
  input            what was reviewed: a trace's root span input, a session's turns, the display blocks;
  expected_output  the gold values, the reviewers' consensus, or gold-else-consensus, by label name (or one
                   chosen label's value alone);
  metadata         every reviewer's values, the gold and who ruled, the item's agreement per label, the
                   queue's alpha per label, the queue and interaction ids, and `kennel_item` (the path of the
                   item's page in Kennel), so nothing the reviewers said is lost and each record leads back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from kennel.annotations.agreement import round_or_none
from kennel.annotations.models import AnnotationInteraction, AnnotationQueue
from kennel.annotations.owner import (
    Gold,
    Ratings,
    Values,
    agreement_of,
    consensus,
    disagreeing_labels,
    load_golds,
    load_ratings,
)
from kennel.annotations.service import get_queue
from kennel.datasets.records import NewRecord, change_records
from kennel.datasets.service import create_or_get_dataset, get_dataset
from kennel.errors import Invalid
from kennel.keys.service import Actor
from kennel.spans.models import Span

_I = AnnotationInteraction.__table__.c
SELECTIONS = ("agreed", "adjudicated", "all")
SOURCES = ("gold_or_consensus", "gold", "consensus")
FORMATS = ("csv", "jsonl")
PREVIEW = 5
MAX_SESSION_TURNS = 50
TRACE_TYPES = ("trace", "experiment_trace")


def item_path(queue_id: str, interaction_id: str) -> str:
    return f"/queues/{queue_id}/adjudicate/{interaction_id}"


def _interactions(session: Session, queue_pk: int, pks: Sequence[int] | None = None) -> list[Any]:
    stmt = select(_I.pk, _I.id, _I.type, _I.content_id, cast(_I.display_block, Text)).where(_I.queue_pk == queue_pk)
    if pks is not None:
        stmt = stmt.where(_I.pk.in_(list(pks)))
    return list(session.connection().execute(stmt.order_by(_I.pk)).tuples().all())


def _by_name(labels: Sequence[dict[str, Any]], values: Values, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in labels:
        entry = values.get(label["id"])
        if entry is None:
            continue
        if full:
            shown = {"value": entry.get("value")}
            if "assessment" in entry:
                shown["assessment"] = entry["assessment"]
            if "reasoning" in entry:
                shown["reasoning"] = entry["reasoning"]
            out[label["name"]] = shown
        else:
            out[label["name"]] = entry.get("value")
    return out


# Export -------------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def export(session: Session, *, queue_id: str, fmt: str) -> tuple[str, bytes]:
    """The queue's annotations as (file name, bytes)."""
    if fmt not in FORMATS:
        raise Invalid(f"format must be csv or jsonl, got {fmt!r}", parameter="format")
    queue, _ = get_queue(session, queue_id=queue_id)
    ratings = load_ratings(session, queue)
    golds = load_golds(session, queue.pk)
    pks = sorted(set(ratings.by_item) | set(golds))
    rows = _interactions(session, queue.pk, None) if pks else []
    rows = [r for r in rows if r[0] in ratings.by_item or r[0] in golds]
    labels = ratings.labels
    reviewers = sorted(ratings.reviewers.items(), key=lambda kv: kv[1])
    name = f"queue-{queue.id}-annotations.{fmt}"
    if fmt == "jsonl":
        out = bytearray()
        for pk, iid, kind, content_id, _ in rows:
            by_reviewer = ratings.by_item.get(pk, {})
            gold = golds.get(pk)
            out += orjson.dumps({
                "interaction_id": iid, "interaction_type": kind, "content_id": content_id,
                "annotations": [{"reviewer": ratings.reviewers[who], "label_values": _by_name(labels, v, full=True)}
                                for who, v in sorted(by_reviewer.items(), key=lambda kv: ratings.reviewers[kv[0]])],
                "gold": _by_name(labels, gold.values, full=True) if gold else None,
                "gold_by": gold.by if gold else None}) + b"\n"
        return name, bytes(out)
    header = ["interaction_id", "interaction_type", "content_id"]
    columns: list[tuple[str | None, str, str]] = []  # (reviewer key or None for gold, label id, part)
    for label in labels:
        parts = ["value"] + (["assessment"] if label.get("has_assessment") else []) + \
                (["reasoning"] if label.get("has_reasoning") else [])
        for who, shown in [*reviewers, (None, "gold")]:
            for part in parts:
                columns.append((who, label["id"], part))
                header.append(f"{label['name']} [{shown}]" + ("" if part == "value" else f" {part}"))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for pk, iid, kind, content_id, _ in rows:
        by_reviewer = ratings.by_item.get(pk, {})
        gold = golds.get(pk)
        line = [iid, kind, content_id]
        for who, lid, part in columns:
            values = (gold.values if gold else {}) if who is None else by_reviewer.get(who, {})
            line.append(_cell(values.get(lid, {}).get(part)))
        writer.writerow(line)
    return name, buf.getvalue().encode()


# To a dataset -------------------------------------------------------------------------------------

@dataclass
class HandOff:
    selection: str = "agreed"
    reviewers_per_item: int = 2
    source: str = "gold_or_consensus"
    label: str | None = None

    def check(self, labels: Sequence[dict[str, Any]]) -> None:
        at = "/data/attributes"
        if self.selection not in SELECTIONS:
            raise Invalid(f"items must be one of {', '.join(SELECTIONS)}, got {self.selection!r}",
                          pointer=f"{at}/items")
        if self.source not in SOURCES:
            raise Invalid(f"expected_output_from must be one of {', '.join(SOURCES)}, got {self.source!r}",
                          pointer=f"{at}/expected_output_from")
        if not 1 <= self.reviewers_per_item <= 100:
            raise Invalid("reviewers_per_item must be between 1 and 100", pointer=f"{at}/reviewers_per_item")
        if self.label is not None and self.label not in {la["name"] for la in labels}:
            raise Invalid(f"label {self.label!r} is not in the queue's label schema", pointer=f"{at}/label")


def _chosen(handoff: HandOff, ratings: Ratings, golds: dict[int, Gold]) -> list[int]:
    labels = ratings.labels
    if handoff.selection == "adjudicated":
        return sorted(golds)
    if handoff.selection == "all":
        return sorted(set(ratings.by_item) | set(golds))
    return sorted(pk for pk, reviews in ratings.by_item.items()
                  if len(reviews) >= handoff.reviewers_per_item and not disagreeing_labels(labels, reviews))


def _inputs(session: Session, rows: Sequence[Any]) -> dict[int, Any]:
    """What each item shows its reviewers, read set-based: trace roots in one query, session roots in one."""
    out: dict[int, Any] = {}
    traces: dict[str, list[int]] = {}
    sessions: dict[str, list[int]] = {}
    for pk, _, kind, content_id, blocks in rows:
        if kind in TRACE_TYPES:
            traces.setdefault(content_id, []).append(pk)
            out[pk] = {"trace_id": content_id}
        elif kind == "session":
            sessions.setdefault(content_id, []).append(pk)
            out[pk] = {"session_id": content_id, "turns": []}
        else:
            out[pk] = {"display_block": orjson.loads(blocks) if blocks else None}
    conn = session.connection()
    ids = list(traces)
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        for trace_id, meta in conn.execute(select(Span.trace_id, cast(Span.meta, Text)).where(
                Span.trace_id.in_(chunk), Span.parent_id.is_(None))).tuples():
            m = orjson.loads(meta) if meta else {}
            for pk in traces[trace_id]:
                # The root span's input as the tracer sent it; a trace not (yet) received keeps its id only.
                if "input" in m:
                    out[pk] = m["input"]
    sids = list(sessions)
    for start in range(0, len(sids), 1000):
        chunk = sids[start:start + 1000]
        for session_id, meta in conn.execute(select(Span.session_id, cast(Span.meta, Text)).where(
                Span.session_id.in_(chunk), Span.parent_id.is_(None)).order_by(Span.start_ns, Span.pk)).tuples():
            for pk in sessions[str(session_id)]:
                turns = out[pk]["turns"]
                if len(turns) < MAX_SESSION_TURNS:
                    turns.append((orjson.loads(meta) if meta else {}).get("input"))
    return out


def _expected(handoff: HandOff, labels: Sequence[dict[str, Any]], reviews: dict[str, Values],
              gold: Gold | None) -> Any:
    out: dict[str, Any] = {}
    for label in labels:
        if handoff.label is not None and label["name"] != handoff.label:
            continue
        value = None
        if gold is not None and handoff.source != "consensus" and label["id"] in gold.values:
            value = gold.values[label["id"]].get("value")
        elif handoff.source != "gold":
            given = [v[label["id"]]["value"] for v in reviews.values() if label["id"] in v]
            value = consensus(label, given)
        out[label["name"]] = value
    return out[handoff.label] if handoff.label is not None else out


def plan(session: Session, *, queue: AnnotationQueue, handoff: HandOff, limit: int | None = None
         ) -> tuple[int, list[tuple[str, NewRecord]]]:
    """How many items the hand-off takes, and (interaction id, record) for the first `limit` (all if None)."""
    ratings = load_ratings(session, queue)
    labels = ratings.labels
    handoff.check(labels)
    golds = load_golds(session, queue.pk)
    chosen = _chosen(handoff, ratings, golds)
    take = chosen if limit is None else chosen[:limit]
    rows = _interactions(session, queue.pk, take) if take else []
    inputs = _inputs(session, rows)
    alphas = {la.name: round_or_none(la.alpha) for la in agreement_of(ratings)}
    records: list[tuple[str, NewRecord]] = []
    for pk, iid, kind, content_id, _ in rows:
        reviews = ratings.by_item.get(pk, {})
        gold = golds.get(pk)
        differ = set(disagreeing_labels(labels, reviews))
        agreement = {label["name"]: ("disagree" if label["id"] in differ else
                                     "agree" if sum(1 for v in reviews.values() if label["id"] in v) >= 2
                                     else "single")
                     for label in labels if label["type"] != "text"}
        metadata = {
            "annotation_queue_id": queue.id, "interaction_id": iid, "interaction_type": kind,
            "content_id": content_id, "kennel_item": item_path(queue.id, iid),
            "reviewers": {ratings.reviewers[who]: _by_name(labels, v, full=True) for who, v in reviews.items()},
            "gold": _by_name(labels, gold.values, full=True) if gold else None,
            "gold_by": gold.by if gold else None,
            "agreement": agreement, "queue_alpha": alphas,
        }
        records.append((iid, NewRecord(id=None, input=inputs.get(pk), expected_output=_expected(
            handoff, labels, reviews, gold), metadata=metadata)))
    return len(chosen), records


@dataclass
class HandedOff:
    dataset_id: str
    dataset_name: str
    project_id: str
    created: bool
    version: int
    items: int
    records_added: int


def to_dataset(session: Session, *, queue_id: str, handoff: HandOff, dataset_id: str | None,
               dataset_name: str | None, actor: Actor) -> HandedOff:
    """Add the chosen items to a dataset of the queue's project as one new version."""
    queue, project_id = get_queue(session, queue_id=queue_id)
    if (dataset_id is None) == (dataset_name is None):
        raise Invalid("give either dataset_id (an existing dataset) or dataset_name (a new or existing one by name)",
                      pointer="/data/attributes/dataset_id")
    handoff.check(queue.label_schemas or [])
    if dataset_id is not None:
        dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
        created = False
    else:
        name = (dataset_name or "").strip()
        if not name or len(name) > 512:
            raise Invalid("dataset_name must be 1 to 512 characters", pointer="/data/attributes/dataset_name")
        dataset, created = create_or_get_dataset(session, project_id=project_id, name=name,
                                                 description=f"From annotation queue {queue.name}",
                                                 metadata={"annotation_queue_id": queue.id}, actor=actor)
    total, planned = plan(session, queue=queue, handoff=handoff)
    if not planned:
        raise Invalid(f"no item of queue {queue_id} matches items={handoff.selection!r}; nothing was added",
                      pointer="/data/attributes/items")
    # Into an existing dataset, a record already there with the same content is not added twice (a hand-off
    # repeated before anything changed); a new dataset has nothing to compare with.
    _, result = change_records(session, project_id=project_id, dataset_id=dataset.id, actor=actor,
                               inserts=[record for _, record in planned], deduplicate=not created)
    return HandedOff(dataset.id, dataset.name, project_id, created, result.version, total,
                     len(result.records) if result.records else (total if result.changed else 0))


def record_view(record: NewRecord) -> dict[str, Any]:
    return {"input": record.input, "expected_output": record.expected_output, "metadata": record.metadata}
