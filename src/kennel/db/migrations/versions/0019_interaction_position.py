"""annotation interactions: each item's number in its queue, so that "go to item N" and the progress line
read an index instead of counting the items before it

Revision ID: 0019
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("annotation_interactions", sa.Column("position", sa.Integer(), nullable=False,
                                                       server_default=sa.text("0")))
    op.execute("UPDATE annotation_interactions SET position = numbered.n FROM (SELECT pk, row_number() OVER "
               "(PARTITION BY queue_pk ORDER BY pk) AS n FROM annotation_interactions) AS numbered "
               "WHERE annotation_interactions.pk = numbered.pk")
    op.create_index("ix_annotation_interactions_queue_position", "annotation_interactions", ["queue_pk", "position"])


def downgrade() -> None:
    op.drop_index("ix_annotation_interactions_queue_position", table_name="annotation_interactions")
    with op.batch_alter_table("annotation_interactions") as batch:
        batch.drop_column("position")
