"""A dataset's version timeline (what each version added, changed and deleted, who and when) and one
record's history (the versions that changed it, and the experiments that ran on it with their scores).

The timeline reads the facts each version row was written with (models.DatasetVersion): a page of 200
versions is one range read of their rows, whatever the dataset's size. The facts count revisions this
way: a revision opened at a version is an addition, one closed there a deletion, and an opening whose
record (same `seq`) closed at that very version is one change (an update or a restore keeps the
record's seq), not both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from kennel.datasets.diff import FieldChange, field_changes
from kennel.datasets.models import Dataset, DatasetVersion
from kennel.datasets.workspace import Revision, author_names, revisions_of
from kennel.errors import NotFound
from kennel.experiments.models import Experiment
from kennel.spans.models import Span, SpanMetric

TIMELINE_PAGE = 200
# Experiment runs listed in a record's history, newest first.
EXPERIMENTS_MAX = 50


@dataclass(slots=True)
class VersionRow:
    number: int
    created_at: datetime
    last_used: datetime | None
    added: int = 0
    changed: int = 0
    deleted: int = 0
    record_count: int = 0
    author_id: str | None = None
    author: str | None = None


def timeline(session: Session, dataset: Dataset, *, below: int | None = None,
             limit: int = TIMELINE_PAGE) -> tuple[list[VersionRow], int | None]:
    """Versions newest first (those below `below`, if given), and where the next page starts."""
    last = min(dataset.current_version, below - 1 if below is not None else dataset.current_version)
    if last < 0:
        return [], None
    first = max(0, last - limit + 1)
    V = DatasetVersion
    rows = [VersionRow(*row) for row in session.execute(
        select(V.version_number, V.created_at, V.last_used, V.added, V.changed, V.deleted, V.record_count,
               V.author_id)
        .where(V.dataset_pk == dataset.pk, V.version_number.between(first, last))
        .order_by(V.version_number.desc()))]
    names = author_names(session, (r.author_id for r in rows))
    for row in rows:
        row.author = names.get(row.author_id or "", row.author_id)
    return rows, first if first > 0 else None


# One record --------------------------------------------------------------------------------------

@dataclass(slots=True)
class Step:
    """A version that changed the record: what it became, and how it differs from the state before."""

    version: int
    kind: str                      # "added", "changed", "deleted" or "re-added"
    revision: Revision | None      # the state from this version on (None once deleted)
    fields: list[FieldChange] = field(default_factory=list)
    author: str | None = None


@dataclass(slots=True)
class ExperimentRun:
    id: str
    name: str
    dataset_version: int | None
    created_at: datetime
    status: str | None
    output: Any
    scores: list[tuple[str, Any]]


@dataclass
class RecordHistory:
    record_id: str
    steps: list[Step]
    experiments: list[ExperimentRun]
    revisions: list[Revision]


def _steps(revisions: list[Revision], names: dict[str, str]) -> list[Step]:
    steps: list[Step] = []
    previous: Revision | None = None
    for rev in revisions:
        author = names.get(rev.author_id or "", rev.author_id)
        if previous is None:
            steps.append(Step(rev.valid_from, "added", rev, field_changes(None, rev), author))
        elif previous.valid_to == rev.valid_from:
            steps.append(Step(rev.valid_from, "changed", rev, field_changes(previous, rev), author))
        else:
            steps.append(Step(rev.valid_from, "re-added", rev, field_changes(None, rev), author))
        previous = rev
        if rev.valid_to is not None:
            nxt = next((r for r in revisions if r.valid_from == rev.valid_to), None)
            if nxt is None:
                steps.append(Step(rev.valid_to, "deleted", None, field_changes(rev, None)))
    return sorted(steps, key=lambda s: s.version, reverse=True)


def _metric_value(body: Any) -> Any:
    if not isinstance(body, dict):
        return None
    kind = body.get("metric_type")
    return body.get(f"{kind}_value") if isinstance(kind, str) else None


def _experiments(session: Session, dataset: Dataset, record_id: str) -> list[ExperimentRun]:
    runs = session.execute(select(Experiment).where(Experiment.dataset_pk == dataset.pk,
                                                    Experiment.deleted_at.is_(None))
                           .order_by(Experiment.pk.desc()).limit(EXPERIMENTS_MAX)).scalars().all()
    if not runs:
        return []
    by_id = {e.id: e for e in runs}
    tag = "\n" + "dataset_record_id:" + record_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "\n"
    spans = session.execute(select(Span.experiment_id, Span.span_id, cast(Span.meta, Text).label("meta"))
                            .where(Span.experiment_id.in_(list(by_id)),
                                   Span.tag_text.like(f"%{tag}%", escape="\\"))).all()
    found: dict[str, tuple[str, Any]] = {}
    for experiment_id, span_id, meta in spans:
        if experiment_id is None:
            continue
        found.setdefault(experiment_id, (span_id, orjson.loads(meta).get("output") if meta else None))
    pks = {by_id[e].pk: e for e in found}
    scores: dict[str, list[tuple[str, Any]]] = {e: [] for e in found}
    if pks:
        for experiment_pk, span_id, label, body in session.execute(select(
                SpanMetric.experiment_pk, SpanMetric.span_id, SpanMetric.label, SpanMetric.body).where(
                SpanMetric.experiment_pk.in_(list(pks)), SpanMetric.span_id.in_([s for s, _ in found.values()]))):
            eid = pks[experiment_pk]
            if found[eid][0] == span_id:
                scores[eid].append((label, _metric_value(body)))
    return [ExperimentRun(e.id, e.name, e.dataset_version, e.created_at, e.status, found[e.id][1], scores[e.id])
            for e in runs if e.id in found]


def record_history(session: Session, dataset: Dataset, record_id: str) -> RecordHistory:
    revisions = revisions_of(session, dataset, record_id)
    if not revisions:
        raise NotFound(f"dataset {dataset.id} has never had a record {record_id!r}")
    names = author_names(session, (r.author_id for r in revisions))
    return RecordHistory(record_id, _steps(revisions, names), _experiments(session, dataset, record_id), revisions)
