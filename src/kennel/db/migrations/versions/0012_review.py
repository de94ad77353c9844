"""review: queue review settings, each reviewer's state per item (leases, skips, flags, drafts), the undo log

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import JSONType, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_settings",
        sa.Column("queue_pk", sa.Integer(), nullable=False),
        sa.Column("assignment", sa.String(16), nullable=False),
        sa.Column("reviewers_per_item", sa.Integer(), nullable=True),
        sa.Column("blind", sa.Boolean(), nullable=True),
        sa.Column("lease_seconds", sa.Integer(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["queue_pk"], ["annotation_queues.pk"], ondelete="CASCADE",
                                name=op.f("fk_review_settings_queue_pk_annotation_queues")),
        sa.PrimaryKeyConstraint("queue_pk", name=op.f("pk_review_settings")),
    )
    op.create_table(
        "review_states",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue_pk", sa.Integer(), nullable=False),
        sa.Column("interaction_pk", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.String(36), nullable=False),
        sa.Column("reviewer_name", sa.String(200), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("skipped_seq", sa.Integer(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("draft", JSONType, nullable=True),
        sa.Column("draft_schema", JSONType, nullable=True),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["queue_pk"], ["annotation_queues.pk"], ondelete="CASCADE",
                                name=op.f("fk_review_states_queue_pk_annotation_queues")),
        sa.ForeignKeyConstraint(["interaction_pk"], ["annotation_interactions.pk"], ondelete="CASCADE",
                                name=op.f("fk_review_states_interaction_pk_annotation_interactions")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_review_states")),
        sa.UniqueConstraint("interaction_pk", "reviewer_id", name="uq_review_states_interaction_reviewer"),
    )
    op.create_index("ix_review_states_queue_reviewer", "review_states", ["queue_pk", "reviewer_id", "skipped_seq"])
    op.create_table(
        "review_actions",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue_pk", sa.Integer(), nullable=False),
        sa.Column("interaction_pk", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("before_values", JSONType, nullable=True),
        sa.Column("before_skip", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("undone_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["queue_pk"], ["annotation_queues.pk"], ondelete="CASCADE",
                                name=op.f("fk_review_actions_queue_pk_annotation_queues")),
        sa.ForeignKeyConstraint(["interaction_pk"], ["annotation_interactions.pk"], ondelete="CASCADE",
                                name=op.f("fk_review_actions_interaction_pk_annotation_interactions")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_review_actions")),
    )
    op.create_index("ix_review_actions_queue_reviewer", "review_actions", ["queue_pk", "reviewer_id", "pk"])
    op.create_index("ix_annotations_queue_author", "annotations", ["queue_pk", "author_key_id"])


def downgrade() -> None:
    op.drop_index("ix_annotations_queue_author", table_name="annotations")
    op.drop_table("review_actions")
    op.drop_table("review_states")
    op.drop_table("review_settings")
