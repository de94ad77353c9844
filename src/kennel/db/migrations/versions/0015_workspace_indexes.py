"""dataset records: indexes for the dataset workspace (diffs and version counts read only what changed)

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

CLOSED = sa.text("valid_to IS NOT NULL")
CLOSED_WITH_ID = sa.text("valid_to IS NOT NULL AND record_id IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_dataset_records_opened", "dataset_records", ["dataset_pk", "valid_from", "seq"])
    op.create_index("ix_dataset_records_closed", "dataset_records", ["dataset_pk", "valid_to", "seq"],
                    sqlite_where=CLOSED, postgresql_where=CLOSED)
    op.create_index("ix_dataset_records_closed_id", "dataset_records", ["record_id"],
                    sqlite_where=CLOSED_WITH_ID, postgresql_where=CLOSED_WITH_ID)


def downgrade() -> None:
    op.drop_index("ix_dataset_records_closed_id", table_name="dataset_records")
    op.drop_index("ix_dataset_records_closed", table_name="dataset_records")
    op.drop_index("ix_dataset_records_opened", table_name="dataset_records")
