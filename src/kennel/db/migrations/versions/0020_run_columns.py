"""experiment_run_columns: each run's compare columns, stored so that a new server process reads one row
instead of every span and metric of the run (experiments/compare_store.py)

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiment_run_columns",
        sa.Column("experiment_pk", sa.Integer(), sa.ForeignKey("experiments.pk", ondelete="CASCADE"),
                  primary_key=True, autoincrement=False),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Read whole by every first compare of a run: pglz would add ~5 ms to each read of a 1.6 MB value,
        # for a cache whose size matters less than the time to read it.
        op.execute("ALTER TABLE experiment_run_columns ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("experiment_run_columns")
