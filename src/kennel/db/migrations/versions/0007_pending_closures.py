"""closings decided by a delete, written into dataset_records in the background

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("closures_pending", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.create_table(
        "dataset_pending_closures",
        sa.Column("dataset_pk", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_pk", "seq", "valid_from", name=op.f("pk_dataset_pending_closures")),
        sa.ForeignKeyConstraint(["dataset_pk"], ["datasets.pk"], ondelete="CASCADE",
                                name=op.f("fk_dataset_pending_closures_dataset_pk_datasets")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # Write any closings still pending into the records first, so no deleted record comes back.
    bind = op.get_bind()
    bind.execute(sa.text(
        "UPDATE dataset_records SET valid_to = (SELECT c.valid_to FROM dataset_pending_closures c "
        "WHERE c.dataset_pk = dataset_records.dataset_pk AND c.seq = dataset_records.seq "
        "AND c.valid_from = dataset_records.valid_from) "
        "WHERE valid_to IS NULL AND EXISTS (SELECT 1 FROM dataset_pending_closures c "
        "WHERE c.dataset_pk = dataset_records.dataset_pk AND c.seq = dataset_records.seq "
        "AND c.valid_from = dataset_records.valid_from)"))
    op.drop_table("dataset_pending_closures")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("closures_pending")
