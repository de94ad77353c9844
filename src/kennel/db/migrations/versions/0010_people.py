"""people: users, browser sessions, the first-admin link, sign-in failures; key pairs belong to users

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from kennel.db.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_users")),
        sa.UniqueConstraint("id", name=op.f("uq_users_id")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
        sa.ForeignKeyConstraint(["user_pk"], ["users.pk"], ondelete="CASCADE",
                                name=op.f("fk_web_sessions_user_pk_users")),
    )
    op.create_index(op.f("ix_web_sessions_user_pk"), "web_sessions", ["user_pk"])
    op.create_table(
        "setup_tokens",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_setup_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_setup_tokens_token_hash")),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_sign_in_failures")),
        sa.UniqueConstraint("subject", name=op.f("uq_sign_in_failures_subject")),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("user_pk", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_api_keys_user_pk_users"), "users", ["user_pk"], ["pk"], ondelete="CASCADE")
        batch.create_index(op.f("ix_api_keys_user_pk"), ["user_pk"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_user_pk"))
        batch.drop_constraint(op.f("fk_api_keys_user_pk_users"), type_="foreignkey")
        batch.drop_column("user_pk")
    op.drop_table("sign_in_failures")
    op.drop_table("setup_tokens")
    op.drop_index(op.f("ix_web_sessions_user_pk"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("users")
