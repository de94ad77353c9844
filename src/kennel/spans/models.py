"""Spans from the intake and the evaluation metrics attached to them.

A span row keeps the columns that queries filter and sort on, plus the span as received (`meta` and
`body`), so a read returns what the tracer sent without re-assembling it from many columns. Experiment spans live
here too (tagged `experiment_id:`); the experiment events routes read them by that column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, JSONType, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Span(Base):
    __tablename__ = "llmobs_spans"

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    trace_id: Mapped[str] = mapped_column(String(64))
    span_id: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(512))
    span_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ml_app: Mapped[str | None] = mapped_column(String(255), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    start_ns: Mapped[int] = mapped_column(BigInteger)
    duration: Mapped[float] = mapped_column(Float)
    scope: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Taken from the `experiment_id:` tag (or the events route that pushed the span inline).
    experiment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # "\n"-delimited, with a leading and trailing "\n": `tag:value` terms become one portable LIKE.
    tag_text: Mapped[str] = mapped_column(Text)
    # The span as received, split in two: `meta` (input, output, ...: the bulk of the bytes) apart, so
    # that large reads can pass it through as JSON text without parsing and re-serialising it.
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # A retried intake POST (ddtrace retries on timeouts) must not duplicate spans.
        Index("uq_llmobs_spans_trace_span", "trace_id", "span_id", unique=True),
        Index("ix_llmobs_spans_start", "start_ns", "pk"),
        Index("ix_llmobs_spans_ml_app_start", "ml_app", "start_ns", "pk"),
        Index("ix_llmobs_spans_span_id", "span_id"),
        Index("ix_llmobs_spans_experiment", "experiment_id", "start_ns", "pk"),
        # A session's traces, for the session page; most spans have no session, so they are left out.
        Index("ix_llmobs_spans_session", "session_id", "start_ns", "pk",
              sqlite_where=text("session_id IS NOT NULL"), postgresql_where=text("session_id IS NOT NULL")),
    )


class SpanMetric(Base):
    """An evaluation metric: from the eval-metric intake (no experiment) or an experiment's events."""

    __tablename__ = "llmobs_metrics"

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    experiment_pk: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.pk", ondelete="CASCADE"), nullable=True)
    span_id: Mapped[str] = mapped_column(String(64))
    trace_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(512))
    metric_source: Mapped[str] = mapped_column(String(32))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    # The metric in its wire form (the shape the events routes return).
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Its type and value, from the body (see intake.metric_row): a boolean as 1.0 or 0.0 and a score in
    # number_value, a category in text_value; both NULL when it has no value or its status is ERROR.
    metric_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    number_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    text_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_llmobs_metrics_experiment_span", "experiment_pk", "span_id"),
        Index("ix_llmobs_metrics_span", "span_id"),
    )
