"""Comparing experiment runs record by record: metric cards, paired tests, aligned rows.

A run is one experiment row; its results are its root spans (one per dataset record, tagged
`dataset_record_id:`) and the evaluation metrics attached to them. Loading a run reads one narrow row
per span and per metric (each metric's type and value are columns of its row), never the
spans' inputs and outputs (those are read for the page's records only), and keeps the run as columns
(see RunData). A loaded run is kept in a small per-process cache keyed by facts of the database
(the newest pk and count of the run's spans, its newest metric, and the experiment's last update),
so paging, filtering and re-sorting do not reload it, and a run changed through any server is loaded
afresh by the next compare.

Records a run has no value for are "missing": shown as missing, never counted as passing or failing,
and left out of every paired figure.
"""

from __future__ import annotations

import math
import operator
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, func, select
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset
from kennel.errors import Invalid, NotFound
from kennel.experiments import stats
from kennel.experiments.models import Experiment, MetricDirection
from kennel.projects.models import Project
from kennel.spans.models import Span, SpanMetric

MAX_RUNS = 10
VALUE_TYPES = ("boolean", "score", "categorical")
OUTCOMES = ("improved", "regressed", "unchanged", "changed", "missing")
CACHE_RUNS = 16
RECORD_TAG = "\ndataset_record_id:"


@dataclass(frozen=True, slots=True)
class RunInfo:
    pk: int
    id: str
    name: str
    experiment: str
    status: str | None
    error: str | None
    project_pk: int
    project_id: str
    dataset_id: str | None
    dataset_name: str | None
    dataset_version: int | None
    config: dict[str, Any]
    author_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Result:
    """One run's result for one dataset record (assembled on demand, for the records being shown)."""

    span_id: str
    trace_id: str
    error: bool
    duration_ns: float
    values: dict[str, Any] = field(default_factory=dict)
    metric_errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunData:
    """A run as columns: position i of span_ids, trace_ids and durations is the record index[i] names, and
    each metric is a {record id: value} column per type. No object per record: a 10,000-record run is a
    few lists and dicts, built in one pass over two narrow queries."""

    info: RunInfo
    index: dict[str, int]             # record id -> position in the lists below
    span_ids: list[str]
    trace_ids: list[str]
    durations: array[float]           # ns
    errored: frozenset[str]           # records whose span has status error
    metric_errors: dict[str, list[str]]  # record id -> labels whose value was an error or unusable
    # label -> (type -> how many values of that type): the label's type is its commonest.
    type_counts: dict[str, Counter[str]]
    # label -> type -> {record id: value}: what the cards and filters read, a dict lookup per record.
    columns: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    key: tuple[Any, ...] = ()  # what it was loaded from (see _fingerprint)

    def column(self, label: str, kind: str) -> dict[str, Any]:
        return self.columns.get(label, {}).get(kind, {})

    @property
    def results(self) -> Results:
        return Results(self)

    def flagged(self, record_id: str) -> bool:
        """Whether the record's span errored or one of its metrics had no usable value."""
        return record_id in self.errored or record_id in self.metric_errors

    def result(self, record_id: str) -> Result | None:
        at = self.index.get(record_id)
        if at is None:
            return None
        values = {label: col[record_id] for label, kinds in self.columns.items() for col in kinds.values()
                  if record_id in col}
        return Result(self.span_ids[at], self.trace_ids[at], record_id in self.errored, self.durations[at], values,
                      list(self.metric_errors.get(record_id, ())))


class Results(Mapping[str, Result]):
    """A run's results by record id, each assembled when asked for."""

    __slots__ = ("_run",)

    def __init__(self, run: RunData) -> None:
        self._run = run

    def __getitem__(self, record_id: str) -> Result:
        found = self._run.result(record_id)
        if found is None:
            raise KeyError(record_id)
        return found

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._run.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._run.index)

    def __len__(self) -> int:
        return len(self._run.index)


# Runs -----------------------------------------------------------------------------------------------

def run_info(row: Any) -> RunInfo:
    e, project_id, dataset_id, dataset_name = row
    return RunInfo(e.pk, e.id, e.name, e.experiment, e.status, e.error, e.project_pk, project_id, dataset_id,
                   dataset_name, e.dataset_version, e.config if isinstance(e.config, dict) else {}, e.author_id,
                   e.created_at, e.updated_at)


def run_infos(session: Session, run_ids: Sequence[str], *, parameter: str = "runs") -> list[RunInfo]:
    """The live runs named, in the order named; unknown ones and runs of different projects are a 400/404."""
    ids = [r.strip() for r in run_ids if r.strip()]
    if not ids:
        raise Invalid("name the runs to compare: runs=<id>,<id>", parameter=parameter)
    if len(set(ids)) != len(ids):
        raise Invalid("a run is named twice", parameter=parameter)
    if len(ids) > MAX_RUNS:
        raise Invalid(f"at most {MAX_RUNS} runs can be compared at once, got {len(ids)}", parameter=parameter)
    rows = session.execute(select(Experiment, Project.id, Dataset.id, Dataset.name)
                           .join(Project, Project.pk == Experiment.project_pk)
                           .outerjoin(Dataset, Dataset.pk == Experiment.dataset_pk)
                           .where(Experiment.id.in_(ids), Experiment.deleted_at.is_(None))).all()
    found = {r[0].id: run_info(tuple(r)) for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"run(s) not found: {', '.join(repr(m) for m in missing)}", parameter=parameter)
    infos = [found[i] for i in ids]
    projects = {i.project_id for i in infos}
    if len(projects) > 1:
        raise Invalid("the runs belong to different projects; compare runs of one project", parameter=parameter)
    return infos


# Loading, with a small cache --------------------------------------------------------------------------

_cache: OrderedDict[str, tuple[tuple[Any, ...], RunData]] = OrderedDict()
_cache_lock = threading.Lock()


def _value(kind: str | None, number: float | None, text: str | None) -> Any:
    """The value as the cards read it (bool, float or str), or None if the metric has none of its type."""
    if kind == "score":
        return number
    if kind == "boolean":
        return None if number is None else number != 0
    if kind == "categorical":
        return text
    return None


_AS_TYPE: dict[str, Any] = {"boolean": bool, "score": float, "categorical": str}
_KIND = operator.itemgetter(2)
_RAW = {"boolean": operator.itemgetter(3), "score": operator.itemgetter(3), "categorical": operator.itemgetter(4)}


def _fingerprint(session: Session, info: RunInfo) -> tuple[Any, ...]:
    """What the run was loaded from, as the database says, so that a change made through any server is seen:
    spans and metrics are only ever added. The span count also catches a span that commits after a newer
    one; a metric's newest pk is one probe of ix_llmobs_metrics_experiment_pk (counting the metrics would
    scan all of them on every request)."""
    conn = session.connection()
    spans = conn.execute(select(func.max(Span.pk), func.count()).where(Span.experiment_id == info.id)).one()
    metrics = conn.execute(select(func.max(SpanMetric.pk)).where(SpanMetric.experiment_pk == info.pk)).scalar()
    return (tuple(spans), metrics, info.updated_at, info.dataset_version)


def load_run(session: Session, info: RunInfo) -> RunData:
    key = _fingerprint(session, info)
    with _cache_lock:
        hit = _cache.get(info.id)
        if hit is not None and hit[0] == key:
            _cache.move_to_end(info.id)
            return replace(hit[1], info=info)
    data = _load(session, info)
    data.key = key
    with _cache_lock:
        _cache[info.id] = (key, data)
        _cache.move_to_end(info.id)
        while len(_cache) > CACHE_RUNS:
            _cache.popitem(last=False)
    return data


def _fetch(conn: Connection, stmt: Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The statement's rows as the driver's tuples. Only for columns that need no result processing (text,
    numbers): building a Row per row was a third of loading a run."""
    compiled = stmt.compile(dialect=conn.dialect)
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _load(session: Session, info: RunInfo) -> RunData:
    conn = session.connection()
    index: dict[str, int] = {}
    span_ids: list[str] = []
    trace_ids: list[str] = []
    durations = array("d")
    errored: list[str] = []
    record_of: dict[str, str] = {}
    rows = _fetch(conn, select(Span.span_id, Span.trace_id, Span.status, Span.duration, Span.tag_text)
                  .where(Span.experiment_id == info.id, Span.parent_id.is_(None)).order_by(Span.start_ns, Span.pk))
    skip = len(RECORD_TAG)
    for span_id, trace_id, status, duration, tag_text in rows:
        at = tag_text.find(RECORD_TAG)
        if at < 0:
            continue
        record_id = tag_text[at + skip:tag_text.index("\n", at + skip)]
        if record_id in index:
            continue  # a run of several iterations: the first is the one compared
        index[record_id] = len(span_ids)
        span_ids.append(span_id)
        trace_ids.append(trace_id)
        durations.append(float(duration or 0.0))
        if status == "error":
            errored.append(record_id)
        record_of[span_id] = record_id
    metric_rows = _fetch(conn, select(SpanMetric.span_id, SpanMetric.label, SpanMetric.metric_type,
                                      SpanMetric.number_value, SpanMetric.text_value)
                         .where(SpanMetric.experiment_pk == info.pk, SpanMetric.span_id != "")
                         .order_by(SpanMetric.pk.desc()))
    columns, metric_errors = _columns(metric_rows, record_of)
    type_counts = {label: Counter({kind: len(col) for kind, col in kinds.items()}) for label, kinds in columns.items()}
    return RunData(info, index, span_ids, trace_ids, durations, frozenset(errored), metric_errors, type_counts,
                   columns)


def _columns(rows: Sequence[Any], record_of: dict[str, str]) -> tuple[
        dict[str, dict[str, dict[str, Any]]], dict[str, list[str]]]:
    """label -> type -> {record id: value}, and record id -> labels without a usable value, from rows
    (span id, label, type, number, text) newest first: a later row overwrites, so a record's first metric of a label
    (in pk order) is the one that counts."""
    chosen: dict[str, dict[str, Any]] = {}
    get = record_of.get
    for row in rows:
        record_id = get(row[0])
        if record_id is None:
            continue
        found = chosen.get(row[1])
        if found is None:
            found = chosen[row[1]] = {}
        found[record_id] = row
    columns: dict[str, dict[str, dict[str, Any]]] = {}
    metric_errors: dict[str, list[str]] = {}
    for label, found in chosen.items():
        kinds = set(map(_KIND, found.values()))
        kind = next(iter(kinds))
        if len(kinds) == 1 and kind in _AS_TYPE:
            raw = dict(zip(found, map(_RAW[kind], found.values()), strict=True))
            if None not in raw.values():
                # The usual case, one type and every value present: converted a column at a time, in C.
                columns[label] = {kind: dict(zip(raw, map(_AS_TYPE[kind], raw.values()), strict=True))}
                continue
        by_kind: dict[str, dict[str, Any]] = {}
        for record_id, row in found.items():
            value = _value(row[2], row[3], row[4])
            if value is None:
                metric_errors.setdefault(record_id, []).append(label)
            else:
                by_kind.setdefault(row[2], {})[record_id] = value
        if by_kind:
            columns[label] = by_kind
    return columns, metric_errors


# Directions -----------------------------------------------------------------------------------------

def directions(session: Session, project_pk: int) -> dict[str, bool]:
    return dict(session.execute(select(MetricDirection.label, MetricDirection.higher_is_better)
                                .where(MetricDirection.project_pk == project_pk)).all())


def set_direction(session: Session, *, project_id: str, label: str, higher_is_better: bool) -> None:
    from kennel.db.base import utcnow
    from kennel.projects.service import get_project

    project = get_project(session, project_id=project_id)
    row = session.scalars(select(MetricDirection).where(MetricDirection.project_pk == project.pk,
                                                        MetricDirection.label == label)).first()
    if row is None:
        session.add(MetricDirection(project_pk=project.pk, label=label, higher_is_better=higher_is_better,
                                    updated_at=utcnow()))
    else:
        row.higher_is_better = higher_is_better
        row.updated_at = utcnow()
    session.flush()


# The comparison ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class RunFigure:
    run_id: str
    n: int                      # records with a value
    value: float | None         # pass rate or mean; None for categorical or no values
    distribution: list[tuple[str, int]] = field(default_factory=list)
    delta: float | None = None  # against the baseline's value
    counts: dict[str, int] = field(default_factory=dict)
    test: stats.TestResult | None = None


@dataclass(slots=True)
class Card:
    label: str
    kind: str
    higher_is_better: bool
    figures: list[RunFigure]


@dataclass
class Comparison:
    runs: list[RunData]
    baseline: RunData
    labels: dict[str, str]          # label -> type, in card order
    higher: dict[str, bool]
    record_ids: list[str]           # the union of the runs' records, sorted
    warnings: list[str]

    def run(self, run_id: str) -> RunData:
        for r in self.runs:
            if r.info.id == run_id:
                return r
        raise KeyError(run_id)


def compare(session: Session, run_ids: Sequence[str], baseline_id: str | None, *,
            metrics: Sequence[str] = ()) -> Comparison:
    infos = run_infos(session, run_ids)
    if len(infos) < 2:
        raise Invalid("compare needs at least two runs", parameter="runs")
    baseline_id = baseline_id or min(infos, key=lambda i: i.pk).id
    if baseline_id not in {i.id for i in infos}:
        raise Invalid(f"baseline {baseline_id!r} is not one of the runs compared", parameter="baseline")
    # The baseline first, then the others in the order named: cards and columns read left to right from it.
    infos.sort(key=lambda i: i.id != baseline_id)
    runs = [load_run(session, i) for i in infos]
    baseline = runs[0]
    counts: dict[str, Counter[str]] = {}
    for r in runs:
        for label, c in r.type_counts.items():
            counts.setdefault(label, Counter()).update(c)
    labels = {label: c.most_common(1)[0][0] for label, c in sorted(counts.items())
              if c.most_common(1)[0][0] in VALUE_TYPES}
    if metrics:
        unknown = [m for m in metrics if m not in labels]
        if unknown:
            raise Invalid(f"unknown metric(s) {', '.join(repr(u) for u in unknown)}; these runs have: "
                          f"{', '.join(labels) or 'no metrics'}", parameter="metrics")
        labels = {m: labels[m] for m in metrics}
    higher = {**dict.fromkeys(labels, True), **directions(session, infos[0].project_pk)}
    return Comparison(runs, baseline, labels, higher, _record_ids(runs), _warnings(runs))


_unions: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()


def _record_ids(runs: list[RunData]) -> list[str]:
    """The sorted union of the runs' records, kept for as long as the runs are unchanged (paging re-reads it)."""
    key = tuple((r.info.id, r.key) for r in sorted(runs, key=lambda r: r.info.id))
    with _cache_lock:
        hit = _unions.get(key)
        if hit is not None:
            _unions.move_to_end(key)
            return hit
    ids: set[str] = set()
    for r in runs:
        ids.update(r.index)
    union = sorted(ids)
    with _cache_lock:
        _unions[key] = union
        while len(_unions) > CACHE_RUNS:
            _unions.popitem(last=False)
    return union


def _warnings(runs: list[RunData]) -> list[str]:
    out = []
    datasets = {(r.info.dataset_id, r.info.dataset_name) for r in runs}
    if len(datasets) > 1:
        out.append("These runs used different datasets: " + "; ".join(
            f"{r.info.name} on {r.info.dataset_name or 'no dataset'}" for r in runs)
            + ". Only records both runs have are paired.")
    elif len({r.info.dataset_version for r in runs}) > 1:
        out.append("These runs used different versions of the dataset: " + "; ".join(
            f"{r.info.name} on version {r.info.dataset_version}" for r in runs)
            + ". Records may have changed between versions.")
    return out


def pick_run(comp: Comparison, run_id: str | None, field: str, *, pointer: str | None = None) -> str:
    """One of the compared runs (default: the first after the baseline), or a 400 naming `field`."""
    ids = [r.info.id for r in comp.runs]
    chosen = run_id or next(i for i in ids if i != comp.baseline.info.id)
    if chosen not in ids:
        detail = f"{field} {chosen!r} is not one of the runs compared"
        raise Invalid(detail, pointer=pointer) if pointer else Invalid(detail, parameter=field)
    return chosen


def value_of(result: Result | None, label: str, kind: str) -> Any:
    """The record's value of this metric in this run, or None (missing) if absent or not of the metric's type."""
    if result is None:
        return None
    v = result.values.get(label)
    if kind == "boolean":
        return v if isinstance(v, bool) else None
    if kind == "score":
        return v if isinstance(v, float) and not isinstance(v, bool) else None
    return v if isinstance(v, str) else None


def outcome(base: Any, other: Any, kind: str, higher: bool) -> str:
    if base is None or other is None:
        return "missing"
    if base == other:
        return "unchanged"
    if kind == "categorical":
        return "changed"
    better = (other > base) if higher else (other < base)
    return "improved" if better else "regressed"


def _counts(base: dict[str, Any], other: dict[str, Any], total: int, kind: str,
            higher: bool) -> tuple[dict[str, int], list[Any], list[Any]]:
    """Outcome counts over the comparison's `total` records, and the paired values (baseline's, other's) of
    the records both runs have a value for. map() over operator functions keeps the per-record work in C."""
    common = base.keys() & other.keys()
    # Record order, so that the bootstrap's resamples (and so its interval) never depend on set order.
    keys = sorted(common) if len(common) <= stats.BOOTSTRAP_MAX else list(common)
    a, b = list(map(base.__getitem__, keys)), list(map(other.__getitem__, keys))
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["missing"] = total - len(keys)
    same = sum(map(operator.eq, a, b))
    counts["unchanged"] = same
    if kind == "categorical":
        counts["changed"] = len(keys) - same
    else:
        up = sum(map(operator.gt, b, a))
        down = len(keys) - same - up
        counts["improved"], counts["regressed"] = (up, down) if higher else (down, up)
    return counts, a, b


def cards(comp: Comparison, *, with_tests: bool = True) -> list[Card]:
    out = []
    base = comp.baseline
    total = len(comp.record_ids)
    for label, kind in comp.labels.items():
        higher = comp.higher.get(label, True)
        base_values = base.column(label, kind)
        figures = []
        base_value = None
        for run in comp.runs:
            values = run.column(label, kind)
            fig = RunFigure(run.info.id, len(values), None)
            if kind == "categorical":
                fig.distribution = Counter(values.values()).most_common()
            elif values:
                fig.value = math.fsum(values.values()) / len(values)
            if run is base:
                base_value = fig.value
            else:
                if fig.value is not None and base_value is not None:
                    fig.delta = fig.value - base_value
                fig.counts, a, b = _counts(base_values, values, total, kind, higher)
                if with_tests and a and kind != "categorical":
                    fig.test = stats.mcnemar_exact(a, b) if kind == "boolean" else stats.paired_mean_test(a, b)
            figures.append(fig)
        out.append(Card(label, kind, higher, figures))
    return out


def config_diff(comp: Comparison) -> tuple[list[tuple[str, list[str]]], int]:
    """(key, each run's value as text) for config keys whose values differ, and how many keys agree."""
    flat = [_flatten(r.info.config) for r in comp.runs]
    keys = sorted(set().union(*flat))
    differ, same = [], 0
    for key in keys:
        values = [f.get(key, "—") for f in flat]
        if len(set(values)) > 1:
            differ.append((key, values))
        else:
            same += 1
    return differ, same


def _flatten(config: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(config, dict) and config:
        out: dict[str, str] = {}
        for k, v in config.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if not prefix:
        return {}
    return {prefix: config if isinstance(config, str) else orjson.dumps(config).decode()}
