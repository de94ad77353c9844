"""annotation queues: the owner's gold values (adjudications), and annotations in item order per queue

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import JSONType, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation_adjudications",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("queue_pk", sa.Integer(), nullable=False),
        sa.Column("interaction_pk", sa.Integer(), nullable=False),
        sa.Column("label_values", JSONType, nullable=False),
        sa.Column("author_key_id", sa.String(36), nullable=False),
        sa.Column("adjudicated_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_annotation_adjudications")),
        sa.UniqueConstraint("id", name=op.f("uq_annotation_adjudications_id")),
        sa.UniqueConstraint("interaction_pk", name=op.f("uq_annotation_adjudications_interaction_pk")),
        sa.ForeignKeyConstraint(["queue_pk"], ["annotation_queues.pk"], ondelete="CASCADE",
                                name=op.f("fk_annotation_adjudications_queue_pk_annotation_queues")),
        sa.ForeignKeyConstraint(["interaction_pk"], ["annotation_interactions.pk"], ondelete="CASCADE",
                                name=op.f("fk_annotation_adjudications_interaction_pk_annotation_interactions")),
    )
    op.create_index(op.f("ix_annotation_adjudications_queue_pk"), "annotation_adjudications", ["queue_pk"])
    op.create_index("ix_annotations_queue_interaction", "annotations", ["queue_pk", "interaction_pk", "pk"])


def downgrade() -> None:
    op.drop_index("ix_annotations_queue_interaction", table_name="annotations")
    op.drop_index(op.f("ix_annotation_adjudications_queue_pk"), table_name="annotation_adjudications")
    op.drop_table("annotation_adjudications")
