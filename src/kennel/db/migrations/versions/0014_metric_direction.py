"""experiments: whether higher is better, per project and metric label (the compare view's counts), and an
index on a run's metrics in arrival order (the compare view reads a run by it)

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiment_metric_directions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_pk", sa.Integer(), sa.ForeignKey("projects.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("higher_is_better", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_pk", "label", name="uq_experiment_metric_directions_label"),
    )
    op.create_index("ix_llmobs_metrics_experiment_pk", "llmobs_metrics", ["experiment_pk", "pk"])


def downgrade() -> None:
    op.drop_index("ix_llmobs_metrics_experiment_pk", table_name="llmobs_metrics")
    op.drop_table("experiment_metric_directions")
