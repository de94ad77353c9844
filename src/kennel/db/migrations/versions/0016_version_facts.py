"""dataset versions: who made each version, what it added, changed and deleted, and how many records it holds

Revision ID: 0016
Revises: 0015

The facts of existing versions are counted from the records' validity intervals, set-based: a revision
opened at v is an addition, a revision closed at v a deletion, and an opening whose record (same seq)
closed at that very version is one change, not both. Pending closings count as closings. A version's
record count is the running sum of openings minus closings up to it. The author of an existing version
is the author of a revision it opened (none for a version that only deleted).
"""
import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

FACTS = ("added", "changed", "deleted", "record_count")

_CREATE = """
CREATE TEMPORARY TABLE version_facts_0016 (
    dataset_pk INTEGER NOT NULL,
    version_number INTEGER NOT NULL,
    opened INTEGER NOT NULL,
    closed INTEGER NOT NULL,
    same INTEGER NOT NULL,
    author_id VARCHAR(36),
    PRIMARY KEY (dataset_pk, version_number)
)"""

# One row per (dataset, version) that opened or closed anything.
_FILL = """
INSERT INTO version_facts_0016 (dataset_pk, version_number, opened, closed, same, author_id)
SELECT dataset_pk, v, SUM(o), SUM(c), SUM(s), MAX(a) FROM (
    SELECT r.dataset_pk, r.valid_from AS v, 1 AS o, 0 AS c,
           CASE WHEN EXISTS (SELECT 1 FROM dataset_records x WHERE x.dataset_pk = r.dataset_pk AND x.seq = r.seq
                                                            AND x.valid_to = r.valid_from)
                  OR EXISTS (SELECT 1 FROM dataset_pending_closures p WHERE p.dataset_pk = r.dataset_pk
                                                                      AND p.seq = r.seq AND p.valid_to = r.valid_from)
                THEN 1 ELSE 0 END AS s,
           r.author_id AS a
    FROM dataset_records r
    UNION ALL
    SELECT dataset_pk, valid_to, 0, 1, 0, NULL FROM dataset_records WHERE valid_to IS NOT NULL
    UNION ALL
    SELECT dataset_pk, valid_to, 0, 1, 0, NULL FROM dataset_pending_closures
) AS x GROUP BY dataset_pk, v"""

# Every version row: its own facts (none if it opened and closed nothing) and the running count.
_UPDATE_FROM = """
UPDATE dataset_versions SET added = f.added, changed = f.changed, deleted = f.deleted,
                            record_count = f.record_count, author_id = f.author_id
FROM (
    SELECT v.dataset_pk, v.version_number,
           COALESCE(f.opened - f.same, 0) AS added, COALESCE(f.same, 0) AS changed,
           COALESCE(f.closed - f.same, 0) AS deleted, f.author_id,
           SUM(COALESCE(f.opened - f.closed, 0)) OVER (PARTITION BY v.dataset_pk ORDER BY v.version_number)
               AS record_count
    FROM dataset_versions v LEFT JOIN version_facts_0016 f
      ON f.dataset_pk = v.dataset_pk AND f.version_number = v.version_number
) AS f
WHERE dataset_versions.dataset_pk = f.dataset_pk AND dataset_versions.version_number = f.version_number"""

# The same for SQLite before 3.33, which has no UPDATE ... FROM: each version probes the facts' key.
_OWN = ("FROM version_facts_0016 f WHERE f.dataset_pk = dataset_versions.dataset_pk "
        "AND f.version_number = dataset_versions.version_number")
_UPDATE_CORRELATED = f"""
UPDATE dataset_versions SET
    added = COALESCE((SELECT f.opened - f.same {_OWN}), 0),
    changed = COALESCE((SELECT f.same {_OWN}), 0),
    deleted = COALESCE((SELECT f.closed - f.same {_OWN}), 0),
    author_id = (SELECT f.author_id {_OWN}),
    record_count = COALESCE((SELECT SUM(f.opened - f.closed) FROM version_facts_0016 f
                             WHERE f.dataset_pk = dataset_versions.dataset_pk
                               AND f.version_number <= dataset_versions.version_number), 0)"""


def backfill(bind: sa.Connection, *, update_from: bool) -> None:
    bind.execute(sa.text(_CREATE))
    try:
        bind.execute(sa.text(_FILL))
        bind.execute(sa.text(_UPDATE_FROM if update_from else _UPDATE_CORRELATED))
    finally:
        bind.execute(sa.text("DROP TABLE version_facts_0016"))


def _has_update_from(bind: sa.Connection) -> bool:
    if bind.dialect.name != "sqlite":
        return True
    return sqlite3.sqlite_version_info >= (3, 33, 0)


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("author_id", sa.String(36), nullable=True))
        for name in FACTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0")))
    bind = op.get_bind()
    backfill(bind, update_from=_has_update_from(bind))


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        for name in reversed(FACTS):
            batch.drop_column(name)
        batch.drop_column("author_id")
