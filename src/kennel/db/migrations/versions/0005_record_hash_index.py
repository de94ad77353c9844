"""content hashes move to their own table, kept only for datasets that deduplicate

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CURRENT = sa.text("valid_to IS NULL")


def upgrade() -> None:
    # Existing datasets start unindexed: their first deduplicating insert fills the table from their
    # open records (see kennel.datasets.models.DatasetRecordHash), so no data is copied here.
    op.add_column("datasets", sa.Column("content_indexed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "dataset_record_hashes",
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("dataset_pk", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("content_hash", "dataset_pk", "record_id", name=op.f("pk_dataset_record_hashes")),
        sa.ForeignKeyConstraint(["dataset_pk"], ["datasets.pk"], ondelete="CASCADE",
                                name=op.f("fk_dataset_record_hashes_dataset_pk_datasets")),
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_dataset_records_current_hash", table_name="dataset_records")


def downgrade() -> None:
    op.create_index("ix_dataset_records_current_hash", "dataset_records", ["content_hash", "dataset_pk"],
                    sqlite_where=CURRENT, postgresql_where=CURRENT)
    op.drop_table("dataset_record_hashes")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("content_indexed")
