"""the per-record tables of datasets carry no foreign key

Revision ID: 0008
Revises: 0007
"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("dataset_records", "dataset_record_hashes", "dataset_pending_closures")


def _fk(table: str) -> str:
    return f"fk_{table}_dataset_pk_datasets"


def _rebuild_sqlite(table: str, change) -> None:
    """SQLite cannot drop or add a constraint: make the table anew from its own CREATE statement
    (changed by `change`), copy the rows, and re-create its indexes from their own statements.
    Foreign keys are off while migrations run (env.py), so dropping the old table cascades nowhere."""
    bind = op.get_bind()
    create = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                          {"t": table}).scalar_one()
    indexes = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                                   "AND sql IS NOT NULL"), {"t": table}).scalars().all()
    temp = f"_new_{table}"
    # A table renamed before (by an earlier rebuild) has its name quoted in sqlite_master.
    new_create = re.sub(rf'^CREATE TABLE "?{table}"?', f"CREATE TABLE {temp}", change(create), count=1)
    if new_create == create or temp not in new_create:
        raise RuntimeError(f"unexpected schema for {table}: {create}")
    bind.execute(sa.text(new_create))
    bind.execute(sa.text(f"INSERT INTO {temp} SELECT * FROM {table}"))
    bind.execute(sa.text(f"DROP TABLE {table}"))
    bind.execute(sa.text(f"ALTER TABLE {temp} RENAME TO {table}"))
    for sql in indexes:
        bind.execute(sa.text(sql))


def _without_fk(table: str):
    pattern = re.compile(r",\s*CONSTRAINT " + _fk(table) + r" FOREIGN KEY\s*\(dataset_pk\) REFERENCES datasets "
                         r"\(pk\) ON DELETE CASCADE")
    return lambda sql: pattern.sub("", sql)


def _with_fk(table: str):
    clause = f",\n\tCONSTRAINT {_fk(table)} FOREIGN KEY(dataset_pk) REFERENCES datasets (pk) ON DELETE CASCADE\n"
    return lambda sql: re.sub(r"\s*\)(\s*WITHOUT ROWID)?\s*$", lambda m: clause + ")" + (m.group(1) or ""), sql)


def upgrade() -> None:
    for table in TABLES:
        if op.get_bind().dialect.name == "sqlite":
            _rebuild_sqlite(table, _without_fk(table))
        else:
            op.drop_constraint(_fk(table), table, type_="foreignkey")


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        # Rows of datasets that no longer exist would break the constraint: they were unreachable anyway.
        bind.execute(sa.text(f"DELETE FROM {table} WHERE dataset_pk NOT IN (SELECT pk FROM datasets)"))
        if bind.dialect.name == "sqlite":
            _rebuild_sqlite(table, _with_fk(table))
        else:
            op.create_foreign_key(_fk(table), table, "datasets", ["dataset_pk"], ["pk"], ondelete="CASCADE")
