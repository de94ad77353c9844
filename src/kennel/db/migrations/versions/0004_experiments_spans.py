"""experiments and spans

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import JSONType, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_pk", sa.Integer(), nullable=False),
        sa.Column("dataset_pk", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("experiment", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("config", JSONType, nullable=True),
        sa.Column("metadata", JSONType, nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("parent_experiment_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("author_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_experiments")),
        sa.UniqueConstraint("id", name=op.f("uq_experiments_id")),
        sa.ForeignKeyConstraint(["project_pk"], ["projects.pk"], ondelete="CASCADE",
                                name=op.f("fk_experiments_project_pk_projects")),
        sa.ForeignKeyConstraint(["dataset_pk"], ["datasets.pk"], ondelete="CASCADE",
                                name=op.f("fk_experiments_dataset_pk_datasets")),
    )
    op.create_index("ix_experiments_project", "experiments", ["project_pk", "pk"])
    op.create_index("ix_experiments_dataset", "experiments", ["dataset_pk", "pk"])
    op.create_index("ix_experiments_experiment", "experiments", ["experiment", "pk"])
    op.create_index("ix_experiments_name", "experiments", ["name"])
    op.create_index("ix_experiments_parent", "experiments", ["parent_experiment_id"])

    op.create_table(
        "llmobs_spans",
        sa.Column("pk", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("span_id", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("span_kind", sa.String(64), nullable=True),
        sa.Column("ml_app", sa.String(255), nullable=True),
        sa.Column("session_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("scope", sa.String(32), nullable=True),
        sa.Column("experiment_id", sa.String(36), nullable=True),
        sa.Column("tag_text", sa.Text(), nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_llmobs_spans")),
    )
    op.create_index("uq_llmobs_spans_trace_span", "llmobs_spans", ["trace_id", "span_id"], unique=True)
    op.create_index("ix_llmobs_spans_start", "llmobs_spans", ["start_ns", "pk"])
    op.create_index("ix_llmobs_spans_ml_app_start", "llmobs_spans", ["ml_app", "start_ns", "pk"])
    op.create_index("ix_llmobs_spans_span_id", "llmobs_spans", ["span_id"])
    op.create_index("ix_llmobs_spans_experiment", "llmobs_spans", ["experiment_id", "start_ns", "pk"])

    op.create_table(
        "llmobs_metrics",
        sa.Column("pk", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("experiment_pk", sa.Integer(), nullable=True),
        sa.Column("span_id", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("metric_source", sa.String(32), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_llmobs_metrics")),
        sa.ForeignKeyConstraint(["experiment_pk"], ["experiments.pk"], ondelete="CASCADE",
                                name=op.f("fk_llmobs_metrics_experiment_pk_experiments")),
    )
    op.create_index("ix_llmobs_metrics_experiment_span", "llmobs_metrics", ["experiment_pk", "span_id"])
    op.create_index("ix_llmobs_metrics_span", "llmobs_metrics", ["span_id"])


def downgrade() -> None:
    op.drop_table("llmobs_metrics")
    op.drop_table("llmobs_spans")
    op.drop_table("experiments")
