"""Experiment events: metrics (and inline spans) pushed by the clients, read back joined with the spans
that reached the intake. Spans and metrics are joined at read time, so their arrival order is free."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from kennel.errors import Invalid
from kennel.experiments.compare_store import request_store
from kennel.experiments.models import Experiment
from kennel.experiments.views import span_with_evals
from kennel.spans.intake import ItemError, metric_body, metric_row, span_row, storable_below
from kennel.spans.models import Span, SpanMetric
from kennel.spans.service import insert_metrics, insert_spans, start_order_page


def push_events(session: Session, *, exp: Experiment, metrics: list[Any] | None,
                spans: list[Any] | None) -> None:
    """All or nothing: every bad metric or span is reported (400) and nothing is stored."""
    base = "/data/attributes"
    errors: list[dict[str, Any]] = []
    metric_rows: list[dict[str, Any]] = []
    check = not storable_below(metrics, 1)
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
            body = metric_body(metric, pointer, span_id=span_id, trace_id=trace_id, default_source=source,
                               check=check)
            row = metric_row(body, experiment_pk=exp.pk)
            if body["metric_source"] == "summary":
                # Summary metrics are stored under the empty span id, so one index probe finds them all.
                row["span_id"] = ""
            metric_rows.append(row)
        except ItemError as exc:
            errors.append(exc.item())
    span_rows: list[dict[str, Any]] = []
    check = not storable_below(spans, 1)
    for index, span in enumerate(spans or []):
        try:
            span_rows.append(span_row(span, f"{base}/spans/{index}", scope="experiments", experiment_id=exp.id,
                                      check=check))
        except ItemError as exc:
            errors.append(exc.item())
    if errors:
        first = errors[0]
        raise Invalid(first["detail"], pointer=first["source"]["pointer"], errors=errors[1:])
    insert_spans(session, span_rows)
    insert_metrics(session, metric_rows)
    if any(row["span_id"] for row in metric_rows):
        # Summary metrics (span id "") are in no record's column; the next compare reads them on top.
        request_store(session, [exp.id])


# `meta` and metric bodies come back as JSON text and go out as such: a pull of a large experiment
# would otherwise spend most of its time parsing and re-serialising span inputs and outputs.
_SPAN_COLS = (Span.pk, Span.start_ns, Span.span_id, Span.body, cast(Span.meta, Text).label("meta_text"))


def _metrics(session: Session, exp: Experiment, span_ids: list[str] | None) -> dict[str, list[bytes]]:
    stmt = select(SpanMetric.span_id, cast(SpanMetric.body, Text)).where(SpanMetric.experiment_pk == exp.pk,
                                                                         SpanMetric.span_id != "")
    if span_ids is not None:
        if not span_ids:
            return {}
        stmt = stmt.where(SpanMetric.span_id.in_(span_ids))
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for span_id, text in session.execute(stmt.order_by(SpanMetric.pk)):
        grouped[span_id].append(text.encode())
    return grouped


def summary_metrics(session: Session, exp: Experiment) -> list[dict[str, Any]]:
    stmt = (select(SpanMetric.body)
            .where(SpanMetric.experiment_pk == exp.pk, SpanMetric.span_id == "")
            .order_by(SpanMetric.pk))
    return list(session.scalars(stmt))


def all_spans(session: Session, exp: Experiment) -> list[tuple[str, bytes]]:
    """Every span of the experiment in span order (start time), each with its metrics: (span id, JSON)."""
    metrics = _metrics(session, exp, None)
    rows = session.execute(select(*_SPAN_COLS).where(Span.experiment_id == exp.id)
                           .order_by(Span.start_ns, Span.pk)).all()
    return [(r.span_id, span_with_evals(r.body, r.meta_text, metrics.get(r.span_id, ()))) for r in rows]


def span_page(session: Session, exp: Experiment, *, cursor: str | None,
              limit: int) -> tuple[list[bytes], str | None]:
    rows, after = start_order_page(session, select(*_SPAN_COLS).where(Span.experiment_id == exp.id), cursor=cursor,
                                   limit=limit)
    metrics = _metrics(session, exp, [r.span_id for r in rows])
    return [span_with_evals(r.body, r.meta_text, metrics.get(r.span_id, ())) for r in rows], after
