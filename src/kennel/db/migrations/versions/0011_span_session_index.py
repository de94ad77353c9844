"""spans: an index on session_id (partial: most spans belong to no session), for the session page

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

IN_SESSION = sa.text("session_id IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_llmobs_spans_session", "llmobs_spans", ["session_id", "start_ns", "pk"],
                    sqlite_where=IN_SESSION, postgresql_where=IN_SESSION)


def downgrade() -> None:
    op.drop_index("ix_llmobs_spans_session", table_name="llmobs_spans")
