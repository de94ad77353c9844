"""datasets, versions, record revisions

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = sa.text("deleted_at IS NULL")
CURRENT = sa.text("valid_to IS NULL")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("metadata", JSONType, nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("next_seq", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("draft_holder_id", sa.String(36), nullable=True),
        sa.Column("draft_holder_name", sa.String(200), nullable=True),
        sa.Column("drafting_since", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_datasets")),
        sa.UniqueConstraint("id", name=op.f("uq_datasets_id")),
        sa.ForeignKeyConstraint(["project_pk"], ["projects.pk"], ondelete="CASCADE",
                                name=op.f("fk_datasets_project_pk_projects")),
    )
    op.create_index(op.f("ix_datasets_project_pk"), "datasets", ["project_pk"])
    op.create_index("uq_datasets_live_name", "datasets", ["project_pk", "name"], unique=True,
                    sqlite_where=LIVE, postgresql_where=LIVE)

    op.create_table(
        "dataset_versions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("dataset_pk", sa.Integer(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint("id", name=op.f("uq_dataset_versions_id")),
        sa.UniqueConstraint("dataset_pk", "version_number", name="uq_dataset_versions_number"),
        sa.ForeignKeyConstraint(["dataset_pk"], ["datasets.pk"], ondelete="CASCADE",
                                name=op.f("fk_dataset_versions_dataset_pk_datasets")),
    )

    op.create_table(
        "dataset_records",
        sa.Column("pk", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("dataset_pk", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("canonical_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("input", JSONType, nullable=False),
        sa.Column("expected_output", JSONType, nullable=True),
        sa.Column("metadata", JSONType, nullable=True),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("author_id", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_dataset_records")),
        sa.ForeignKeyConstraint(["dataset_pk"], ["datasets.pk"], ondelete="CASCADE",
                                name=op.f("fk_dataset_records_dataset_pk_datasets")),
    )
    op.create_index("ix_dataset_records_seq", "dataset_records", ["dataset_pk", "seq"])
    op.create_index("ix_dataset_records_current_seq", "dataset_records", ["dataset_pk", "seq"],
                    sqlite_where=CURRENT, postgresql_where=CURRENT)
    op.create_index("uq_dataset_records_current_id", "dataset_records", ["record_id", "dataset_pk"], unique=True,
                    sqlite_where=CURRENT, postgresql_where=CURRENT)
    op.create_index("ix_dataset_records_current_hash", "dataset_records", ["content_hash", "dataset_pk"],
                    sqlite_where=CURRENT, postgresql_where=CURRENT)


def downgrade() -> None:
    op.drop_table("dataset_records")
    op.drop_table("dataset_versions")
    op.drop_index("uq_datasets_live_name", table_name="datasets")
    op.drop_index(op.f("ix_datasets_project_pk"), table_name="datasets")
    op.drop_table("datasets")
