"""Bulk SQL for record revisions: the statements whose cost grows with the batch or the page.

These bypass SQLAlchemy's per-row parameter and result processing on purpose: for a 1,000-record
request that processing costs more CPU than the database work itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import (DateTime, String, Text, bindparam, cast, func, literal_column, select, text, true,
                        type_coerce, update)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from kennel.datasets.models import DatasetRecord

R = DatasetRecord.__table__.c
# Far below SQLite's 32,766 bound-parameter limit, and a sensible unit for PostgreSQL too.
CHUNK = 5000

INSERT_COLUMNS = ("dataset_pk", "record_id", "canonical_id", "seq", "valid_from", "valid_to", "input",
                  "expected_output", "metadata", "tags", "content_hash", "author_id", "created_at", "updated_at")


def chunks(values: Sequence[Any], size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lookup_current(session: Session, dataset_pk: int, column: Any, keys: Sequence[str],
                   columns: Sequence[Any]) -> list[Any]:
    """Open revisions of a dataset whose `column` (record_id or content_hash) is one of `keys`.

    On PostgreSQL each key is one probe of the partial index that leads with that key (unnest + LATERAL
    ... LIMIT 1), with the dataset condition written so that no index can use it (`dataset_pk + 0`).
    Otherwise the planner, whose statistics lag behind a dataset that is being filled, estimates one
    row for the dataset and is as happy to walk another (dataset_pk, ...) index and filter every row
    of the dataset for each key: a growing import turned quadratic that way. SQLite picks the key index
    on its own.
    """
    found: list[Any] = []
    postgres = is_postgres(session)
    for part in chunks(list(keys)):
        if postgres:
            keys_param = bindparam("keys", list(part), type_=postgresql.ARRAY(String))
            k = func.unnest(keys_param).table_valued("key").render_derived(name="k")
            probe = (select(*columns)
                     .where(column == k.c.key, R.valid_to.is_(None), R.dataset_pk + literal_column("0") == dataset_pk)
                     .limit(literal_column("1")).lateral("r"))
            stmt = select(*[probe.c[c.name] for c in columns]).select_from(k).join(probe, true())
        else:
            stmt = select(*columns).where(R.dataset_pk == dataset_pk, R.valid_to.is_(None), column.in_(part))
        found.extend(session.execute(stmt))
    return found


def close_current(session: Session, dataset_pk: int, ids: Sequence[str], version: int) -> set[str]:
    """Close the open revisions of these record ids at `version`; return the ids that were open.

    One UPDATE ... RETURNING per chunk, so a large delete neither reads the records back nor builds
    an object per record. The caller turns ids that were not open into a 404 (and its rollback undoes
    the rest).
    """
    closed: set[str] = set()
    table = DatasetRecord.__table__
    postgres = is_postgres(session)
    for part in chunks(list(ids)):
        stmt = update(table).values(valid_to=version).returning(R.record_id)
        if postgres:
            keys_param = bindparam("keys", list(part), type_=postgresql.ARRAY(String))
            k = func.unnest(keys_param).table_valued("key").render_derived(name="k")
            stmt = stmt.where(R.record_id == k.c.key, R.valid_to.is_(None),
                              R.dataset_pk + literal_column("0") == dataset_pk)
        else:
            stmt = stmt.where(R.dataset_pk == dataset_pk, R.valid_to.is_(None), R.record_id.in_(part))
        closed.update(session.scalars(stmt))
    return closed


def _sqlite_ts(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime writes and reads back (naive UTC).
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def insert_revisions(session: Session, dataset_pk: int, version: int, states: Sequence[Any]) -> None:
    """Insert open revisions (valid from `version`) for record states, JSON encoded once by orjson:
    executemany on SQLite, COPY on PostgreSQL. States carry the RecordState attributes."""
    if not states:
        return
    conn = session.connection()
    dumps = orjson.dumps
    if is_postgres(session):
        raw = conn.connection.driver_connection
        sql = f"COPY dataset_records ({', '.join(INSERT_COLUMNS)}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for s in states:
                copy.write_row((
                    dataset_pk, s.record_id, s.canonical_id, s.seq, version, None, dumps(s.input).decode(),
                    dumps(s.expected_output).decode(), dumps(s.metadata).decode(), dumps(s.tags).decode(),
                    s.content_hash, s.author_id, s.created_at, s.updated_at))
        return
    stamps: dict[datetime, str] = {}

    def ts(value: datetime) -> str:
        text_ = stamps.get(value)
        if text_ is None:
            text_ = stamps[value] = _sqlite_ts(value)
        return text_

    sql = (f"INSERT INTO dataset_records ({', '.join(INSERT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(INSERT_COLUMNS))})")
    conn.exec_driver_sql(sql, [(
        dataset_pk, s.record_id, s.canonical_id, s.seq, version, None, dumps(s.input).decode(),
        dumps(s.expected_output).decode(), dumps(s.metadata).decode(), dumps(s.tags).decode(), s.content_hash,
        s.author_id, ts(s.created_at), ts(s.updated_at),
    ) for s in states])


def refresh_statistics(session: Session, before: int, after: int) -> None:
    """Re-ANALYZE the records table on PostgreSQL each time a dataset's size passes a power of two.

    Old-version reads and deletes are planned from statistics; a server with autovacuum off (or one
    that has not run yet) would otherwise plan a fast-growing table as if it were empty.
    """
    if after >= 4096 and before.bit_length() != after.bit_length() and is_postgres(session):
        # Only the columns queries filter and sort on: sampling the JSON columns costs most of the time.
        session.execute(text("ANALYZE dataset_records (dataset_pk, record_id, seq, valid_from, valid_to, "
                             "content_hash)"))


def page_columns(session: Session) -> tuple[Any, ...]:
    """Columns of a read page, with JSON as its stored text and timestamps as they come.

    The JSON text goes into the response as it is (orjson.Fragment): no parse, no re-encode.
    """
    if is_postgres(session):
        js = [cast(c, Text).label(c.name) for c in (R.input, R.expected_output, R.metadata, R.tags)]
        stamps = [type_coerce(c, DateTime(timezone=True)).label(c.name) for c in (R.created_at, R.updated_at)]
    else:
        js = [type_coerce(c, Text).label(c.name) for c in (R.input, R.expected_output, R.metadata, R.tags)]
        stamps = [type_coerce(c, String).label(c.name) for c in (R.created_at, R.updated_at)]
    return (R.record_id, R.canonical_id, R.seq, *js, R.author_id, *stamps)
