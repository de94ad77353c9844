"""A dataset's version timeline (what each version added, changed and deleted, who and when) and one
record's history (the versions that changed it, and the experiments that ran on it with their scores).

Version counts come from grouped index-only scans of the `opened` and `closed` indexes
(workspace_models), limited to the versions on the page: a timeline costs what those versions changed.
A record opened and another closed at the same version with the same `seq` is one change (an update or
a restore keeps the record's seq); an opening alone is an addition, a closing alone a deletion.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session, aliased

from kennel.datasets.diff import FieldChange, field_changes
from kennel.datasets.models import (
    Dataset,
    DatasetPendingClosure,
    DatasetRecord,
    DatasetVersion,
)
from kennel.datasets.workspace import Revision, author_names, revisions_of
from kennel.errors import NotFound
from kennel.experiments.models import Experiment
from kennel.spans.models import Span, SpanMetric

R = DatasetRecord.__table__.c
P = DatasetPendingClosure.__table__.c
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
    author: str | None = None


# Counts of versions older than a dataset's current one, which never change again (a change makes a new
# version, or amends the current one): kept per process, so a timeline reads the rows of the versions it
# has not counted yet, usually only the current one. Bounded; the oldest entries go first.
_SETTLED: OrderedDict[tuple[int, int], tuple[int, int, int, str | None]] = OrderedDict()
_SETTLED_MAX = 200_000
_SETTLED_LOCK = threading.Lock()


def _versions(session: Session, dataset: Dataset, first: int, last: int) -> dict[int, VersionRow]:
    versions = session.execute(select(DatasetVersion.version_number, DatasetVersion.created_at,
                                      DatasetVersion.last_used).where(
        DatasetVersion.dataset_pk == dataset.pk, DatasetVersion.version_number.between(first, last))).all()
    return {number: VersionRow(number, created, used) for number, created, used in versions}


def _grouped(session: Session, dataset: Dataset, first: int, last: int) -> dict[int, list[int]]:
    """version -> [opened, closed, changed] for the versions first..last, from the indexes."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    opened = session.execute(select(R.valid_from, func.count()).where(
        R.dataset_pk == dataset.pk, R.valid_from.between(first, last)).group_by(R.valid_from)).all()
    closed: list[Any] = [*session.execute(select(R.valid_to, func.count()).where(
        R.dataset_pk == dataset.pk, R.valid_to.is_not(None), R.valid_to.between(first, last)).group_by(R.valid_to))]
    old = aliased(DatasetRecord)
    # An opening whose record (same seq) closed at that very version is one change, not two. EXISTS, not a
    # join: SQLite would carry the version range over to the closed rows and scan it for every opening.
    same_record = select(old.pk).where(old.dataset_pk == R.dataset_pk, old.seq == R.seq,
                                       old.valid_to == R.valid_from).exists()
    changed: list[Any] = [*session.execute(select(R.valid_from, func.count()).where(
        R.dataset_pk == dataset.pk, R.valid_from.between(first, last), same_record).group_by(R.valid_from))]
    if dataset.closures_pending:
        closed += session.execute(select(P.valid_to, func.count()).where(
            P.dataset_pk == dataset.pk, P.valid_to.between(first, last)).group_by(P.valid_to)).all()
        pending_same = select(P.seq).where(P.dataset_pk == R.dataset_pk, P.seq == R.seq,
                                           P.valid_to == R.valid_from).exists()
        changed += session.execute(select(R.valid_from, func.count()).where(
            R.dataset_pk == dataset.pk, R.valid_from.between(first, last), pending_same).group_by(R.valid_from)).all()
    for index, rows in enumerate((opened, closed, changed)):
        for number, count in rows:
            counts[number][index] += count
    return counts


def _author(session: Session, dataset: Dataset, version: int) -> str | None:
    return session.scalar(select(R.author_id).where(R.dataset_pk == dataset.pk, R.valid_from == version).limit(1))


def _counts(session: Session, dataset: Dataset, first: int, last: int) -> dict[int, VersionRow]:
    rows = _versions(session, dataset, first, last)
    current = dataset.current_version
    with _SETTLED_LOCK:
        known = {n: _SETTLED[(dataset.pk, n)] for n in rows if (dataset.pk, n) in _SETTLED}
    missing = [n for n in rows if n not in known]
    if missing:
        grouped = _grouped(session, dataset, min(missing), max(missing))
        for n in missing:
            opened, closed, changed = grouped.get(n, (0, 0, 0))
            known[n] = (opened - changed, changed, closed - changed, _author(session, dataset, n) if opened else None)
        with _SETTLED_LOCK:
            for n in missing:
                if n < current:
                    _SETTLED[(dataset.pk, n)] = known[n]
            while len(_SETTLED) > _SETTLED_MAX:
                _SETTLED.popitem(last=False)
    names = author_names(session, (known[n][3] for n in rows))
    for n, row in rows.items():
        row.added, row.changed, row.deleted, author = known[n]
        row.author = names.get(author or "", author)
    return rows


def timeline(session: Session, dataset: Dataset, *, below: int | None = None,
             limit: int = TIMELINE_PAGE) -> tuple[list[VersionRow], int | None]:
    """Versions newest first (those below `below`, if given), and where the next page starts."""
    last = min(dataset.current_version, below - 1 if below is not None else dataset.current_version)
    if last < 0:
        return [], None
    first = max(0, last - limit + 1)
    rows = _counts(session, dataset, first, last)
    return [rows[n] for n in sorted(rows, reverse=True)], first if first > 0 else None


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
