"""staged imports: a file being imported into a dataset, and its bytes in ~1 MiB chunks

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import JSONType, UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staged_imports",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("dataset_pk", sa.Integer(), sa.ForeignKey("datasets.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("who", sa.String(36), nullable=False),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("file_kind", sa.String(8), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("mapping_guess", JSONType, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("records_done", sa.Integer(), nullable=False),
        sa.Column("records_total", sa.Integer(), nullable=False),
        sa.Column("records_created", sa.Integer(), nullable=False),
        sa.Column("records_updated", sa.Integer(), nullable=False),
        sa.Column("records_skipped", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_staged_imports_dataset_pk", "staged_imports", ["dataset_pk"])
    op.create_index("ix_staged_imports_expires_at", "staged_imports", ["expires_at"])
    op.create_table(
        "staged_import_chunks",
        sa.Column("import_pk", sa.Integer(), sa.ForeignKey("staged_imports.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("staged_import_chunks")
    op.drop_index("ix_staged_imports_expires_at", table_name="staged_imports")
    op.drop_index("ix_staged_imports_dataset_pk", table_name="staged_imports")
    op.drop_table("staged_imports")
