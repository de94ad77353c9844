from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, JSONType, UTCDateTime, new_id, utcnow
from kennel.spans.models import SpanMetric


class Experiment(Base):
    __tablename__ = "experiments"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"))
    dataset_pk: Mapped[int | None] = mapped_column(ForeignKey("datasets.pk", ondelete="CASCADE"), nullable=True)
    # The run name (`<experiment>-<epoch ms>` with ensure_unique) and the logical name it came from.
    name: Mapped[str] = mapped_column(String(512))
    experiment: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType, nullable=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run_count: Mapped[int] = mapped_column(Integer, default=1)
    parent_experiment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    author_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_experiments_project", "project_pk", "pk"),
        Index("ix_experiments_dataset", "dataset_pk", "pk"),
        Index("ix_experiments_experiment", "experiment", "pk"),
        Index("ix_experiments_name", "name"),
        Index("ix_experiments_parent", "parent_experiment_id"),
    )


class MetricDirection(Base):
    """Whether a higher value of an evaluation metric (by label) is better, per project. A label without a
    row is taken as higher-is-better; comparing runs reads this to count improvements and regressions."""

    __tablename__ = "experiment_metric_directions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(512))
    higher_is_better: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("project_pk", "label", name="uq_experiment_metric_directions_label"),)


# A run's metrics in arrival order: what the compare view reads a run by, and how it learns whether a run it
# holds in its cache gained metrics since (max(pk) is one index probe). Declared here, with the experiment
# workspace that needs it, on the spans package's table.
Index("ix_llmobs_metrics_experiment_pk", SpanMetric.experiment_pk, SpanMetric.pk)


class RunColumns(Base):
    """A run's compare columns as compare_store encodes them: a cache of what its spans and metrics say, at
    the fingerprint in `key`, so that a new server process need not read them all (see compare_store)."""

    __tablename__ = "experiment_run_columns"

    experiment_pk: Mapped[int] = mapped_column(ForeignKey("experiments.pk", ondelete="CASCADE"), primary_key=True,
                                               autoincrement=False)
    format: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
