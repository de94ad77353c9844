"""the content-hash index leads with the dataset

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _recreate(key: list[str]) -> None:
    # The table only indexes what dataset_records holds, so it is rebuilt rather than copied: every
    # dataset starts unindexed again and its next deduplicating insert fills it (models.DatasetRecordHash).
    op.drop_table("dataset_record_hashes")
    op.create_table(
        "dataset_record_hashes",
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("dataset_pk", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_dataset_record_hashes")),
        sa.ForeignKeyConstraint(["dataset_pk"], ["datasets.pk"], ondelete="CASCADE",
                                name=op.f("fk_dataset_record_hashes_dataset_pk_datasets")),
        sqlite_with_rowid=False,
    )
    op.execute(sa.text("UPDATE datasets SET content_indexed = false WHERE content_indexed"))


def upgrade() -> None:
    _recreate(["dataset_pk", "content_hash", "record_id"])


def downgrade() -> None:
    _recreate(["content_hash", "dataset_pk", "record_id"])
