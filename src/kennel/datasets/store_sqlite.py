"""The record store on SQLite (see store.py; store_postgres.py is the same shape, method for method).

SQLite works in this thread, in one writer's transaction: there is nothing to overlap, so each write is
as few statements as it can be, and everything happens here and now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    String,
    Text,
    exists,
    func,
    literal_column,
    select,
    text,
    type_coerce,
)

from kennel.datasets.models import REVISION_COLUMNS, Dataset
from kennel.datasets.plan import RecordState
from kennel.datasets.store import (
    HASH_ROWS_IN_TRANSACTION,
    HASHES,
    JSON_FIELDS,
    PAGE_FIELDS,
    PENDING,
    TIME_FIELDS,
    R,
    RecordStore,
    chunks,
    row_maker,
)

# Rows one INSERT carries. One statement steps through them all, where executemany binds, steps and
# resets once per row.
ROWS_PER_INSERT = 100

_INSERT_REVISIONS = f"INSERT INTO dataset_records ({', '.join(REVISION_COLUMNS)})"
# JSON goes in as its text, timestamps as the text SQLAlchemy's SQLite DateTime reads back.
_ROW = row_maker(json="dumps({}).decode()", time="stamp({})")


def insert_rows(conn: Any, head: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """INSERT `rows` of `width` values each; `head` is the statement up to VALUES.

    Full statements of ROWS_PER_INSERT rows, then the rest row by row: two statements in all for
    SQLite's statement cache, whatever the number of rows.
    """
    one = f"({', '.join('?' * width)})"
    n = ROWS_PER_INSERT
    full = len(rows) - len(rows) % n
    if full:
        sql = f"{head} VALUES {', '.join([one] * n)}"
        for start in range(0, full, n):
            conn.exec_driver_sql(sql, tuple(chain.from_iterable(rows[start:start + n])))
    if full < len(rows):
        conn.exec_driver_sql(f"{head} VALUES {one}", list(rows[full:]))


def sqlite_datetime(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime writes and reads back (naive UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteStore(RecordStore):
    dialect = "sqlite"

    def settle(self, dataset: Dataset) -> None:
        if not dataset.closures_pending:
            return
        # Correlated rather than UPDATE ... FROM (SQLite 3.33+): `seq IN (...)` drives lookups on the
        # (dataset_pk, seq) index of open rows, whatever SQLite the Python build links.
        self.session.execute(text(
            "UPDATE dataset_records SET valid_to = (SELECT c.valid_to FROM dataset_pending_closures c "
            "WHERE c.dataset_pk = :pk AND c.seq = dataset_records.seq "
            "AND c.valid_from = dataset_records.valid_from) "
            "WHERE dataset_pk = :pk AND valid_to IS NULL "
            "AND seq IN (SELECT seq FROM dataset_pending_closures WHERE dataset_pk = :pk)"),
            {"pk": dataset.pk})
        self.session.execute(PENDING.delete().where(PENDING.c.dataset_pk == dataset.pk))
        dataset.closures_pending = False
        self.session.flush()

    def _append_closures(self, rows: list[tuple[int, int, int, int]]) -> None:
        self.session.connection().exec_driver_sql(
            "INSERT INTO dataset_pending_closures (dataset_pk, seq, valid_from, valid_to) VALUES (?, ?, ?, ?)", rows)

    def current(self, dataset_pk: int, keys: Sequence[str], columns: Sequence[Any]) -> list[Row[Any]]:
        # SQLite picks the (record_id, dataset_pk) index of open rows on its own.
        found: list[Row[Any]] = []
        for part in chunks(list(keys)):
            found.extend(self.session.execute(
                select(*columns).where(R.dataset_pk == dataset_pk, R.valid_to.is_(None), R.record_id.in_(part))
            ).all())
        return found

    def insert(self, dataset_pk: int, version: int, states: Iterable[RecordState]) -> None:
        # Every row is made before the first goes out: a state that raises stops the write before it starts.
        stamps: dict[datetime, str] = {}

        def stamp(value: datetime) -> str:
            # A change's rows share one or two timestamps: each is formatted once.
            text_ = stamps.get(value)
            if text_ is None:
                text_ = stamps[value] = sqlite_datetime(value)
            return text_

        make, dumps = _ROW, orjson.dumps
        rows = [make(dataset_pk, version, s, dumps, stamp) for s in states]
        if not rows:
            return
        insert_rows(self.session.connection(), _INSERT_REVISIONS, len(REVISION_COLUMNS), rows)

    def new_canonical_ids(self) -> ColumnElement[str]:
        # SQLite has no uuid function; randomblob() is evaluated per row.
        return literal_column(
            "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
            "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || "
            "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))", Text)

    def refresh_statistics(self, before: int, after: int) -> None:
        """Nothing to do: SQLite plans these statements from the indexes alone (the queries that need it
        fix their join order themselves, see existing_hashes)."""

    def index_hashes(self, dataset_pk: int, states: Sequence[RecordState]) -> None:
        if not states:
            return
        self.session.info[HASH_ROWS_IN_TRANSACTION] = True
        insert_rows(self.session.connection(),
                    "INSERT OR IGNORE INTO dataset_record_hashes (content_hash, dataset_pk, record_id)", 3,
                    [(s.content_hash, dataset_pk, s.record_id) for s in states])

    def index_hashes_from(self, rows: Select[Any]) -> None:
        self.session.info[HASH_ROWS_IN_TRANSACTION] = True
        self.session.execute(HASHES.insert().from_select(["content_hash", "dataset_pk", "record_id"], rows)
                             .prefix_with("OR IGNORE"))

    def existing_hashes(self, dataset_pk: int, parts: Iterable[Sequence[str]]) -> set[str]:
        # One lookup for all parts, as few statements as can be.
        found: set[str] = set()
        for keys in chunks(sorted({key for part in parts for key in part})):
            marks = ", ".join("?" * len(keys))
            # CROSS JOIN fixes the loop order in SQLite: hashes outside, records probed by id. Left to
            # itself (no statistics yet) it walked every record of the dataset instead.
            sql = ("SELECT DISTINCT x.content_hash FROM dataset_record_hashes x CROSS JOIN dataset_records r "
                   "ON r.record_id = x.record_id AND r.dataset_pk = x.dataset_pk "
                   "AND r.valid_to IS NULL AND r.content_hash = x.content_hash "
                   f"WHERE x.dataset_pk = ? AND x.content_hash IN ({marks})")
            found.update(self.session.connection().exec_driver_sql(sql, (dataset_pk, *keys)).scalars().all())
        return found

    def valid_from_for_reads(self) -> ColumnElement[Any]:
        # Without statistics SQLite's planner takes `valid_from <= v` for a selective range and reads a past
        # version through ix_dataset_records_opened, sorting every matching revision before it can answer
        # the first page (seconds at a million records). `+ 0` keeps the term off that index, so pages walk
        # ix_dataset_records_seq in keyset order as they do for the current version.
        return R.valid_from + 0

    def page_columns(self) -> tuple[ColumnElement[Any], ...]:
        # JSON is stored as text already; timestamps come as SQLAlchemy's text form (views.py renders it).
        return tuple(type_coerce(R[name], Text).label(name) if name in JSON_FIELDS
                     else type_coerce(R[name], String).label(name) if name in TIME_FIELDS
                     else R[name] for name in PAGE_FIELDS)

    def tags_any(self, tags: Sequence[str]) -> ColumnElement[bool]:
        each = func.json_each(R.tags).table_valued("value")
        return exists(select(literal_column("1")).select_from(each).where(each.c.value.in_(list(tags))))
