"""Span storage and queries: set-based intake, keyset-paginated search, spans of one trace."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Select, Table, insert, not_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from kennel.experiments.compare_store import request_store
from kennel.jsonapi import decode_cursor, encode_cursor
from kennel.spans.models import Span, SpanMetric
from kennel.spans.query import SpanFilter, Term
from kennel.spans.views import evaluation_map, span_resource

# The columns every read needs; selecting them (not ORM objects) keeps large reads cheap.
SPAN_COLUMNS = (Span.pk, Span.trace_id, Span.span_id, Span.parent_id, Span.name, Span.span_kind, Span.ml_app,
                Span.session_id, Span.status, Span.start_ns, Span.duration, Span.meta, Span.body)


def insert_spans(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One statement for the whole batch; a span already stored (a retried POST) is kept as it was."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    # The Core table, not the ORM entity: a plain executemany without the ORM's per-row bookkeeping.
    table = cast(Table, Span.__table__)
    stmt: Executable
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=["trace_id", "span_id"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["trace_id", "span_id"])
    else:  # pragma: no cover - only the two supported databases reach here
        stmt = insert(table)
    session.execute(stmt, list(rows))
    # Spans tagged with an experiment (from the span intake too, not only the experiment events route)
    # change that run's stored compare columns.
    runs = {row["experiment_id"] for row in rows if row.get("experiment_id")}
    if runs:
        request_store(session, runs)


def insert_metrics(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(cast(Table, SpanMetric.__table__)), list(rows))


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _term_clause(term: Term):
    if term.column is None:
        if term.value.endswith("*"):
            clause = Span.tag_text.like(f"%\n{_like_escape(term.value[:-1])}%", escape="\\")
        else:
            clause = Span.tag_text.like(f"%\n{_like_escape(term.value)}\n%", escape="\\")
    else:
        column = getattr(Span, term.column)
        if term.value.endswith("*"):
            clause = column.like(f"{_like_escape(term.value[:-1])}%", escape="\\")
        else:
            clause = column == term.value
    return not_(clause) if term.negate else clause


def metrics_by_span(session: Session, span_ids: Sequence[str], *,
                    experiment_pk: int | None = None) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not span_ids:
        return grouped
    stmt = select(SpanMetric.span_id, SpanMetric.body).where(SpanMetric.span_id.in_(list(set(span_ids))))
    if experiment_pk is not None:
        stmt = stmt.where(SpanMetric.experiment_pk == experiment_pk)
    for span_id, body in session.execute(stmt.order_by(SpanMetric.pk)):
        grouped[span_id].append(body)
    return grouped


def search_spans(session: Session, *, flt: SpanFilter, sort: str, descending: bool, cursor: str | None,
                 limit: int, cursor_param: str = "page[cursor]") -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(*SPAN_COLUMNS).where(Span.start_ns >= flt.from_ns, Span.start_ns <= flt.to_ns)
    for term in flt.terms:
        stmt = stmt.where(_term_clause(term))
    if cursor:
        start_ns, pk = decode_cursor(cursor, (int, int), cursor_param, prefix=(sort,))
        # Row values let both databases seek the (start_ns, pk) index instead of filtering.
        key, bound = tuple_(Span.start_ns, Span.pk), tuple_(start_ns, pk)
        stmt = stmt.where(key < bound if descending else key > bound)
    order = (Span.start_ns.desc(), Span.pk.desc()) if descending else (Span.start_ns, Span.pk)
    rows = session.execute(stmt.order_by(*order).limit(limit + 1)).all()
    after = encode_cursor(sort, rows[limit - 1].start_ns, rows[limit - 1].pk) if len(rows) > limit else None
    rows = rows[:limit]
    metrics = metrics_by_span(session, [r.span_id for r in rows])
    data = [span_resource(r, r.meta, r.body, evaluation_map(metrics[r.span_id]) if r.span_id in metrics else None)
            for r in rows]
    return data, after


def start_order_page(session: Session, stmt: Select[Any], *, cursor: str | None, limit: int,
                     parameter: str = "page[cursor]") -> tuple[list[Row[Any]], str | None]:
    """One page of spans (`stmt` selects at least `start_ns` and `pk`) in start order, keyset on
    (start_ns, pk), and the opaque cursor of the next page (None on the last one)."""
    if cursor:
        start_ns, pk = decode_cursor(cursor, (int, int), parameter)
        stmt = stmt.where(tuple_(Span.start_ns, Span.pk) > tuple_(start_ns, pk))
    rows = list(session.execute(stmt.order_by(Span.start_ns, Span.pk).limit(limit + 1)).all())
    after = encode_cursor(rows[limit - 1].start_ns, rows[limit - 1].pk) if len(rows) > limit else None
    return rows[:limit], after


def root_span_meta(session: Session, *, trace_id: str) -> dict[str, Any]:
    """The meta of a trace's root span (an experiment's record input, expected output and output), or {}."""
    meta = session.scalars(select(Span.meta).where(Span.trace_id == trace_id, Span.parent_id.is_(None))
                           .limit(1)).first()
    return meta if isinstance(meta, dict) else {}


def spans_for_trace(session: Session, *, trace_id: str, cursor: str | None = None,
                    limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    """The spans of one trace as wire dicts (oldest first) and the cursor of the next page, if any.

    Annotation queues show these as the `events` of a `trace` interaction: each is
    `{"id": span_id, "type": "span", "attributes": {...}}`, the attributes being those of the spans
    search. The cursor is opaque; a malformed one is a 400 naming the `cursor` parameter.
    """
    rows, after = start_order_page(session, select(*SPAN_COLUMNS).where(Span.trace_id == trace_id), cursor=cursor,
                                   limit=limit, parameter="cursor")
    metrics = metrics_by_span(session, [r.span_id for r in rows])
    return [span_resource(r, r.meta, r.body, evaluation_map(metrics[r.span_id]) if r.span_id in metrics else None)
            for r in rows], after


def elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
