"""Experiment events: metrics (and inline spans) pushed by the clients, read back joined with the spans
that reached the intake. Spans and metrics are joined at read time, so their arrival order is free."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from kennel.errors import Invalid
from kennel.experiments.models import Experiment
from kennel.experiments.views import span_with_evals
from kennel.jsonapi import decode_cursor, encode_cursor
from kennel.spans.intake import ItemError, metric_body, metric_row, span_row
from kennel.spans.models import Span, SpanMetric
from kennel.spans.service import insert_metrics, insert_spans


def push_events(session: Session, *, exp: Experiment, metrics: list[Any] | None,
                spans: list[Any] | None) -> None:
    """All or nothing: every bad metric or span is reported (400) and nothing is stored."""
    base = "/data/attributes"
    errors: list[dict[str, Any]] = []
    metric_rows: list[dict[str, Any]] = []
    for index, metric in enumerate(metrics or []):
        pointer = f"{base}/metrics/{index}"
        try:
            if not isinstance(metric, dict):
                raise ItemError(pointer, "a metric must be a JSON object")
            span_id = metric.get("span_id", "")
            trace_id = metric.get("trace_id", "")
            if not isinstance(span_id, (str, int)) or isinstance(span_id, bool):
                raise ItemError(f"{pointer}/span_id", "span_id is required: a string (empty for a summary metric)")
            if not isinstance(trace_id, (str, int)) or isinstance(trace_id, bool):
                raise ItemError(f"{pointer}/trace_id", "trace_id must be a string")
            span_id, trace_id = str(span_id), str(trace_id)
            # The typed client has no metric_source: a metric tied to no span is experiment-level.
            source = "summary" if span_id == "" else "custom"
            body = metric_body(metric, pointer, span_id=span_id, trace_id=trace_id, default_source=source)
            metric_rows.append(metric_row(body, experiment_pk=exp.pk))
        except ItemError as exc:
            errors.append(exc.item())
    span_rows: list[dict[str, Any]] = []
    for index, span in enumerate(spans or []):
        try:
            span_rows.append(span_row(span, f"{base}/spans/{index}", scope="experiments", experiment_id=exp.id))
        except ItemError as exc:
            errors.append(exc.item())
    if errors:
        first = errors[0]
        raise Invalid(first["detail"], pointer=first["source"]["pointer"], errors=errors[1:])
    insert_spans(session, span_rows)
    insert_metrics(session, metric_rows)


_SPAN_COLS = (Span.pk, Span.start_ns, Span.span_id, Span.body)


def _metrics(session: Session, exp: Experiment, span_ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
    stmt = select(SpanMetric.span_id, SpanMetric.body).where(SpanMetric.experiment_pk == exp.pk,
                                                             SpanMetric.metric_source != "summary")
    if span_ids is not None:
        if not span_ids:
            return {}
        stmt = stmt.where(SpanMetric.span_id.in_(span_ids))
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span_id, body in session.execute(stmt.order_by(SpanMetric.pk)):
        grouped[span_id].append(body)
    return grouped


def summary_metrics(session: Session, exp: Experiment) -> list[dict[str, Any]]:
    stmt = (select(SpanMetric.body)
            .where(SpanMetric.experiment_pk == exp.pk, SpanMetric.metric_source == "summary")
            .order_by(SpanMetric.pk))
    return list(session.scalars(stmt))


def all_spans(session: Session, exp: Experiment) -> list[dict[str, Any]]:
    """Every span of the experiment in span order (start time), each with its metrics."""
    metrics = _metrics(session, exp, None)
    rows = session.execute(select(*_SPAN_COLS).where(Span.experiment_id == exp.id)
                           .order_by(Span.start_ns, Span.pk)).all()
    return [span_with_evals(r.pk, r.body, metrics.get(r.span_id, [])) for r in rows]


def span_page(session: Session, exp: Experiment, *, cursor: str | None,
              limit: int) -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(*_SPAN_COLS).where(Span.experiment_id == exp.id)
    if cursor:
        start_ns, pk = decode_cursor(cursor, 2)
        stmt = stmt.where(or_(Span.start_ns > start_ns, and_(Span.start_ns == start_ns, Span.pk > pk)))
    rows = session.execute(stmt.order_by(Span.start_ns, Span.pk).limit(limit + 1)).all()
    after = encode_cursor(rows[limit - 1].start_ns, rows[limit - 1].pk) if len(rows) > limit else None
    rows = rows[:limit]
    metrics = _metrics(session, exp, [r.span_id for r in rows])
    return [span_with_evals(r.pk, r.body, metrics.get(r.span_id, [])) for r in rows], after
