"""annotation queues

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import JSONType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation_queues",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("label_schemas", JSONType, nullable=False),
        sa.Column("reviewer_emails", JSONType, nullable=False),
        sa.Column("restrict_to_assignees", sa.Boolean(), nullable=False),
        sa.Column("restrict_to_reviewers", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("modified_by", sa.String(200), nullable=False),
        sa.Column("owned_by", sa.String(200), nullable=False),
        sa.Column("owner_key_id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_annotation_queues")),
        sa.UniqueConstraint("id", name=op.f("uq_annotation_queues_id")),
        sa.ForeignKeyConstraint(["project_pk"], ["projects.pk"], ondelete="CASCADE",
                                name=op.f("fk_annotation_queues_project_pk_projects")),
    )
    op.create_index(op.f("ix_annotation_queues_project_pk"), "annotation_queues", ["project_pk"])

    op.create_table(
        "annotation_interactions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("queue_pk", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("content_id", sa.String(255), nullable=False),
        sa.Column("display_block", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_annotation_interactions")),
        sa.UniqueConstraint("id", name=op.f("uq_annotation_interactions_id")),
        sa.UniqueConstraint("queue_pk", "type", "content_id", name="uq_annotation_interactions_content"),
        sa.ForeignKeyConstraint(["queue_pk"], ["annotation_queues.pk"], ondelete="CASCADE",
                                name=op.f("fk_annotation_interactions_queue_pk_annotation_queues")),
    )
    op.create_index(op.f("ix_annotation_interactions_queue_pk"), "annotation_interactions", ["queue_pk"])
    op.create_index("ix_annotation_interactions_content_id", "annotation_interactions", ["content_id"])

    op.create_table(
        "annotations",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("queue_pk", sa.Integer(), nullable=False),
        sa.Column("interaction_pk", sa.Integer(), nullable=False),
        sa.Column("author_key_id", sa.String(36), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("modified_by", sa.String(200), nullable=False),
        sa.Column("label_values", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_annotations")),
        sa.UniqueConstraint("id", name=op.f("uq_annotations_id")),
        sa.UniqueConstraint("interaction_pk", "author_key_id", name="uq_annotations_interaction_author"),
        sa.ForeignKeyConstraint(["queue_pk"], ["annotation_queues.pk"], ondelete="CASCADE",
                                name=op.f("fk_annotations_queue_pk_annotation_queues")),
        sa.ForeignKeyConstraint(["interaction_pk"], ["annotation_interactions.pk"], ondelete="CASCADE",
                                name=op.f("fk_annotations_interaction_pk_annotation_interactions")),
    )
    op.create_index(op.f("ix_annotations_queue_pk"), "annotations", ["queue_pk"])


def downgrade() -> None:
    op.drop_index(op.f("ix_annotations_queue_pk"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_index("ix_annotation_interactions_content_id", table_name="annotation_interactions")
    op.drop_index(op.f("ix_annotation_interactions_queue_pk"), table_name="annotation_interactions")
    op.drop_table("annotation_interactions")
    op.drop_index(op.f("ix_annotation_queues_project_pk"), table_name="annotation_queues")
    op.drop_table("annotation_queues")
