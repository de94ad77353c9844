"""Loading a run for the compare: as columns (RunData), kept in a small per-process cache.

A run is one experiment row; its results are its root spans (one per dataset record, tagged
`dataset_record_id:`) and the evaluation metrics attached to them. Loading a run reads one narrow row
per span and per metric (each metric's type and value are columns of its row), never the
spans' inputs and outputs (those are read for the page's records only). A loaded run is kept keyed by
facts of the database (the newest pk and count of the run's spans, its newest metric, and the dataset
version it ran on), so paging, filtering and re-sorting do not reload it, and a run changed through any
server is seen by the next compare: brought up to date with the spans and metrics it gained, or read afresh
when what changed is not a plain addition.
"""

from __future__ import annotations

import operator
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Select, func, select
from sqlalchemy.orm import Session

from kennel.experiments import compare_store
from kennel.experiments.compare_run import RunData, RunInfo
from kennel.spans.models import Span, SpanMetric

CACHE_RUNS = 16
RECORD_TAG = "\ndataset_record_id:"


# Loading, with a small cache --------------------------------------------------------------------------

_cache: OrderedDict[str, tuple[tuple[Any, ...], RunData]] = OrderedDict()
cache_lock = threading.Lock()


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


def fingerprint(session: Session, info: RunInfo) -> tuple[Any, ...]:
    """What the run was loaded from, as the database says, so that a change made through any server is seen:
    spans and metrics are only ever added. The span count also catches a span that commits after a newer
    one; a metric's newest pk is one probe of ix_llmobs_metrics_experiment_pk (counting the metrics would
    scan all of them on every request). The experiment row's other changes (name, status, error, metadata)
    are not here: the results are read from the spans and metrics alone, and the RunInfo is replaced on
    every load."""
    conn = session.connection()
    spans = conn.execute(select(func.max(Span.pk), func.count()).where(Span.experiment_id == info.id)).one()
    metrics = conn.execute(select(func.max(SpanMetric.pk)).where(SpanMetric.experiment_pk == info.pk)).scalar()
    return (tuple(spans), metrics, info.dataset_version)


def load_run(session: Session, info: RunInfo, *, store: bool = True) -> RunData:
    """The run as of now: from this process's cache, else from its stored form (compare_store), either brought
    up to date if it is behind, else read from its spans and metrics. With `store`, a run read without a
    stored form as current to start from asks for one to be stored once the session commits."""
    key = fingerprint(session, info)
    with cache_lock:
        hit = _cache.get(info.id)
        if hit is not None and hit[0] == key:
            _cache.move_to_end(info.id)
            return replace(hit[1], info=info)
    data = None
    if hit is not None:
        data = _refresh(session, info, hit[1], key)
    stale = False
    if data is None:
        held = compare_store.stored(session, info)
        stale = held is None or held.key != key
        if held is not None:
            data = held if held.key == key else _refresh(session, info, held, key)
    if data is None:
        data = _load(session, info)
    data.key = key
    if store and stale and compare_store.worth_storing(data):
        compare_store.request_store(session, [info.id])
    with cache_lock:
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
    starts = array("q")
    errored: list[str] = []
    record_of: dict[str, str] = {}
    rows = _fetch(conn, select(Span.span_id, Span.trace_id, Span.status, Span.duration, Span.tag_text, Span.start_ns)
                  .where(Span.experiment_id == info.id, Span.parent_id.is_(None)).order_by(Span.start_ns, Span.pk))
    skip = len(RECORD_TAG)
    for span_id, trace_id, status, duration, tag_text, start_ns in rows:
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
        starts.append(start_ns)
        if status == "error":
            errored.append(record_id)
        record_of[span_id] = record_id
    record_of.pop("", None)  # the empty span id is the summary metrics'
    metric_rows = _fetch(conn, _metric_rows(info))
    columns, metric_errors = _columns(metric_rows, record_of)
    type_counts = {label: Counter({kind: len(col) for kind, col in kinds.items()}) for label, kinds in columns.items()}
    return RunData(info, index, span_ids, trace_ids, durations, starts, frozenset(errored), metric_errors,
                   type_counts, columns, record_of=record_of, metric_rows=len(metric_rows))


def _metric_rows(info: RunInfo, *, after_pk: int | None = None, up_to: int | None = None,
                 span_ids: Sequence[str] = ()) -> Select[*tuple[Any, ...]]:
    """The run's metrics (span id, label, type, number, text), newest first. Summary metrics (span id "") come
    too: no span has that id, so they are skipped like any metric of a span that is not compared, and they
    keep the count of rows read equal to the run's count of metrics (see _refresh)."""
    stmt = select(SpanMetric.span_id, SpanMetric.label, SpanMetric.metric_type, SpanMetric.number_value,
                  SpanMetric.text_value).where(SpanMetric.experiment_pk == info.pk)
    if after_pk is not None:
        stmt = stmt.where(SpanMetric.pk > after_pk)
    if up_to is not None:
        stmt = stmt.where(SpanMetric.pk <= up_to, SpanMetric.span_id.in_(span_ids))
    return stmt.order_by(SpanMetric.pk.desc())


# Beyond this many records gained, reading the run afresh costs about as much as the refresh.
_REFRESH_RECORDS = 1000


def _refresh(session: Session, info: RunInfo, old: RunData, key: tuple[Any, ...]) -> RunData | None:
    """The cached run brought up to `key` with the spans and metrics added since it was read (those with a
    higher pk), or None when that is not all that changed, and the run is read afresh: another dataset
    version; a span or metric that committed late, with a pk below the newest one read (the run's count
    then differs from the rows read before plus the rows read now); a span that would become a record's
    compared span in place of the one held.

    Spans and metrics are only ever added; a record's first root span (by start, then pk) and its first
    metric of a label (in pk order) are the ones that count, so a new metric counts only for a (record,
    label) the run had none for, and a new record's metrics are all read, those that arrived before its
    span included. The cached lists and dicts are shared with requests that are reading them: a changed one
    is copied, never written in place."""
    (old_max, old_count), old_metric, old_version = old.key
    (new_max, new_count), new_metric, new_version = key
    if old_version != new_version or old_max is None or new_max is None or new_max < old_max:
        return None
    if old_metric is not None and (new_metric is None or new_metric < old_metric):
        return None
    if new_max == old_max and new_count != old_count:
        return None
    conn = session.connection()
    run = replace(old, info=info)
    new_spans: list[str] = []
    if new_max != old_max:
        grown = _add_spans(conn, info, old, after_pk=old_max, up_to=new_max, count=new_count - old_count)
        if grown is None:
            return None
        run, new_spans = grown
    elif new_metric == old_metric:
        return run
    rows = _fetch(conn, _metric_rows(info, after_pk=old_metric))
    total = conn.execute(select(func.count()).where(SpanMetric.experiment_pk == info.pk)).scalar()
    if total != old.metric_rows + len(rows):
        return None
    if new_spans and old_metric is not None:
        # Older than every row above, so the rows stay newest first. Executed by SQLAlchemy, which expands
        # the IN list (_fetch sends the compiled text as it is).
        rows += [tuple(r) for r in conn.execute(_metric_rows(info, up_to=old_metric, span_ids=new_spans))]
    added, errors = _columns(rows, run.record_of)
    columns = dict(old.columns)
    metric_errors = dict(old.metric_errors)
    type_counts = dict(old.type_counts)
    for label, kinds in added.items():
        had = columns.get(label, {})
        merged = dict(had)
        changed = False
        for kind, values in kinds.items():
            fresh = {rid: v for rid, v in values.items()
                     if not any(rid in col for col in had.values()) and label not in old.metric_errors.get(rid, ())}
            if fresh:
                merged[kind] = {**merged.get(kind, {}), **fresh}
                changed = True
        if changed:
            columns[label] = merged
            type_counts[label] = Counter({kind: len(col) for kind, col in merged.items()})
    for rid, labels in errors.items():
        fresh_labels = [label for label in labels if label not in old.metric_errors.get(rid, ())
                        and not any(rid in col for col in old.columns.get(label, {}).values())]
        if fresh_labels:
            metric_errors[rid] = [*metric_errors.get(rid, ()), *fresh_labels]
    return replace(run, columns=columns, metric_errors=metric_errors, type_counts=type_counts, metric_rows=total)


def _add_spans(conn: Connection, info: RunInfo, old: RunData, *, after_pk: int, up_to: int,
               count: int) -> tuple[RunData, list[str]] | None:
    """The cached run with the records of the root spans in (after_pk, up_to], and the span ids of the
    records added; None if the run's spans other than those read were not all there before (`count` is how
    many were added), or if a new span would change a record the run holds."""
    rows = _fetch(conn, select(Span.start_ns, Span.pk, Span.parent_id, Span.span_id, Span.trace_id, Span.status,
                               Span.duration, Span.tag_text)
                  .where(Span.experiment_id == info.id, Span.pk > after_pk, Span.pk <= up_to))
    if len(rows) != count:
        return None
    roots = sorted((r for r in rows if r[2] is None), key=operator.itemgetter(0, 1))
    held = len(old.span_ids)
    index = dict(old.index)
    span_ids, trace_ids = list(old.span_ids), list(old.trace_ids)
    durations, starts = array("d", old.durations), array("q", old.starts)
    errored: list[str] = []
    record_of = dict(old.record_of)
    new_spans: list[str] = []
    skip = len(RECORD_TAG)
    for start_ns, _pk, _parent, span_id, trace_id, status, duration, tag_text in roots:
        at = tag_text.find(RECORD_TAG)
        if at < 0:
            continue
        record_id = tag_text[at + skip:tag_text.index("\n", at + skip)]
        known = index.get(record_id)
        if known is not None:
            if known < held and start_ns < old.starts[known]:
                return None  # it starts before the span held for the record, and would be the one compared
            continue
        if span_id in record_of or len(new_spans) >= _REFRESH_RECORDS:
            return None
        index[record_id] = len(span_ids)
        span_ids.append(span_id)
        trace_ids.append(trace_id)
        durations.append(float(duration or 0.0))
        starts.append(start_ns)
        if status == "error":
            errored.append(record_id)
        if span_id:
            record_of[span_id] = record_id
            new_spans.append(span_id)
    run = replace(old, info=info, index=index, span_ids=span_ids, trace_ids=trace_ids, durations=durations,
                  starts=starts, errored=old.errored.union(errored), record_of=record_of)
    return run, new_spans


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
