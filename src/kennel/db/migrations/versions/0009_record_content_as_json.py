"""record content kept as written: PostgreSQL `json`, not `jsonb`, for input, expected output, metadata

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("input", "expected_output", "metadata")


def _retype(to: str) -> None:
    # SQLite keeps JSON as text either way. On PostgreSQL one statement, so the table is rewritten once.
    if op.get_bind().dialect.name != "postgresql":
        return
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in COLUMNS)
    op.execute(f"ALTER TABLE dataset_records {changes}")


def upgrade() -> None:
    # Records already stored keep the key order jsonb gave them; new ones keep the order they were sent in.
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
