"""Bulk SQL for record revisions: the statements whose cost grows with the batch or the page.

These bypass SQLAlchemy's per-row parameter and result processing on purpose: for a 1,000-record
request that processing costs more CPU than the database work itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from typing import Any

import orjson
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import (DateTime, String, Text, bindparam, cast, delete, exists, func, literal_column, select, text,
                        true, type_coerce)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset, DatasetPendingClosure, DatasetRecord, DatasetRecordHash
from kennel.db.engine import make_engine
from kennel.db.maintenance import request_upkeep

R = DatasetRecord.__table__.c
HASHES = DatasetRecordHash.__table__
PENDING = DatasetPendingClosure.__table__
P = PENDING.c
# Far below SQLite's 32,766 bound-parameter limit, and a sensible unit for PostgreSQL too.
CHUNK = 5000

INSERT_COLUMNS = ("dataset_pk", "record_id", "canonical_id", "seq", "valid_from", "valid_to", "input",
                  "expected_output", "metadata", "tags", "content_hash", "author_id", "created_at", "updated_at")
# PostgreSQL types of INSERT_COLUMNS, for the binary COPY: each value is sent in its column's own form.
COPY_TYPES = ("integer", "varchar", "varchar", "bigint", "integer", "integer", "json", "json", "json", "jsonb",
              "varchar", "varchar", "timestamptz", "timestamptz")


class _EncodedJson:
    """Stands for JSON that orjson has encoded already (a key for the dumpers below, never made)."""


class _EncodedJsonDumper(Dumper):
    """json's binary form is the JSON text itself: the bytes orjson made go out as they are.

    Text COPY cost more at both ends (measured, 1,000 records of 1.2 KB into a 300k-row table): the
    PostgreSQL backend 2.8 ms more CPU, un-escaping every backslash of the JSON and parsing each number
    and timestamp, and this process 5.5 ms more, escaping them and decoding orjson's bytes to str.
    """

    format = Format.BINARY
    oid = postgres.types["json"].oid

    def dump(self, obj: Any) -> bytes:
        return obj


class _EncodedJsonbDumper(_EncodedJsonDumper):
    """jsonb's binary form is a version byte, then the JSON text."""

    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + obj


def chunks(values: Sequence[Any], size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Rows one SQLite INSERT carries. One statement steps through them all, where executemany binds, steps
# and resets once per row: 1,000 records went in in 3.2-3.4 ms instead of 4.0-6.0, their index rows in
# 0.6 ms instead of 1.1-1.7 (measured on the benchmark machine).
SQLITE_ROWS_PER_INSERT = 100


def sqlite_insert(conn: Any, head: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """INSERT `rows` of `width` values each on SQLite; `head` is the statement up to VALUES.

    Full statements of SQLITE_ROWS_PER_INSERT rows, then the rest row by row: two statements in all
    for SQLite's statement cache, whatever the number of rows.
    """
    one = f"({', '.join('?' * width)})"
    n = SQLITE_ROWS_PER_INSERT
    full = len(rows) - len(rows) % n
    if full:
        sql = f"{head} VALUES {', '.join([one] * n)}"
        for start in range(0, full, n):
            conn.exec_driver_sql(sql, tuple(chain.from_iterable(rows[start:start + n])))
    if full < len(rows):
        conn.exec_driver_sql(f"{head} VALUES {one}", list(rows[full:]))


def pg_keys(values: Sequence[str]) -> Any:
    """A list of strings as a PostgreSQL table of `key`s, sent as one JSON text parameter.

    psycopg adapts a list to a text[] in Python, element by element: about 1 ms per 1,000 keys, several
    times per request. orjson writes the JSON in microseconds and PostgreSQL splits it as fast.
    """
    keys = bindparam("keys", orjson.dumps(list(values)).decode(), type_=Text)
    return func.jsonb_array_elements_text(cast(keys, postgresql.JSONB)).table_valued("value").render_derived(
        name="k")


def lookup_current(session: Session, dataset_pk: int, keys: Sequence[str], columns: Sequence[Any]) -> list[Any]:
    """Open revisions of a dataset whose record id is one of `keys`.

    Results here are fetched with .all() (one driver call): iterating a result fetches row by row.

    On PostgreSQL each key is one probe of the partial index that leads with that key (pg_keys + LATERAL
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
            k = pg_keys(part)
            probe = (select(*columns)
                     .where(R.record_id == k.c.value, R.valid_to.is_(None),
                            R.dataset_pk + literal_column("0") == dataset_pk)
                     .limit(literal_column("1")).lateral("r"))
            stmt = select(*[probe.c[c.name] for c in columns]).select_from(k).join(probe, true())
        else:
            stmt = select(*columns).where(R.dataset_pk == dataset_pk, R.valid_to.is_(None), R.record_id.in_(part))
        found.extend(session.execute(stmt).all())
    return found


def has_open_records(session: Session, dataset_pk: int) -> bool:
    return bool(session.scalar(select(exists().where(R.dataset_pk == dataset_pk, R.valid_to.is_(None)))))


# Pending closures (see models.DatasetPendingClosure) ---------------------------------------------

def queue_closures(session: Session, dataset: Dataset, ids: Sequence[str], version: int) -> set[str]:
    """Close the open revisions of these record ids at `version` by listing them as pending; return the
    ids that were open. The dataset must be locked and settled (get_dataset(for_update=True) settles)."""
    found = lookup_current(session, dataset.pk, ids, (R.record_id, R.seq, R.valid_from))
    if not found:
        return set()
    conn = session.connection()
    if is_postgres(session):
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                "COPY dataset_pending_closures (dataset_pk, seq, valid_from, valid_to) FROM STDIN") as copy:
            for row in found:
                copy.write_row((dataset.pk, row.seq, row.valid_from, version))
    else:
        conn.exec_driver_sql(
            "INSERT INTO dataset_pending_closures (dataset_pk, seq, valid_from, valid_to) VALUES (?, ?, ?, ?)",
            [(dataset.pk, row.seq, row.valid_from, version) for row in found])
    dataset.closures_pending = True
    request_upkeep(session, SettleClosures(dataset.pk))
    return {row.record_id for row in found}


def not_pending(version: int | None = None) -> Any:
    """Leaves out revisions whose closing (at or before `version`, if given) is still pending."""
    where = [P.dataset_pk == R.dataset_pk, P.seq == R.seq, P.valid_from == R.valid_from]
    if version is not None:
        where.append(P.valid_to <= version)
    return ~exists().where(*where)


def settle_closures(session: Session, dataset: Dataset) -> None:
    """Write the dataset's pending closures into dataset_records (the dataset must be locked)."""
    if not dataset.closures_pending:
        return
    if is_postgres(session):
        session.execute(text(
            "UPDATE dataset_records SET valid_to = c.valid_to FROM dataset_pending_closures c "
            "WHERE c.dataset_pk = :pk AND dataset_records.dataset_pk = :pk AND dataset_records.seq = c.seq "
            "AND dataset_records.valid_from = c.valid_from AND dataset_records.valid_to IS NULL"),
            {"pk": dataset.pk})
    else:
        # Correlated rather than UPDATE ... FROM (SQLite 3.33+): `seq IN (...)` drives lookups on the
        # (dataset_pk, seq) index of open rows, whatever SQLite the Python build links.
        session.execute(text(
            "UPDATE dataset_records SET valid_to = (SELECT c.valid_to FROM dataset_pending_closures c "
            "WHERE c.dataset_pk = :pk AND c.seq = dataset_records.seq "
            "AND c.valid_from = dataset_records.valid_from) "
            "WHERE dataset_pk = :pk AND valid_to IS NULL "
            "AND seq IN (SELECT seq FROM dataset_pending_closures WHERE dataset_pk = :pk)"),
            {"pk": dataset.pk})
    session.execute(delete(PENDING).where(P.dataset_pk == dataset.pk))
    dataset.closures_pending = False
    session.flush()


@dataclass(frozen=True)
class SettleClosures:
    """Upkeep job: settle one dataset's pending closures, under its lock, after the delete commits."""

    dataset_pk: int

    def __call__(self, session: Session) -> None:
        dataset = session.scalars(select(Dataset).where(Dataset.pk == self.dataset_pk).with_for_update()).first()
        if dataset is not None:
            settle_closures(session, dataset)


def unsettled(session: Session) -> list[SettleClosures]:
    """Jobs for datasets left with pending closures (a server stopped before settling them)."""
    return [SettleClosures(pk) for pk in session.scalars(select(Dataset.pk).where(Dataset.closures_pending))]


# Content-hash index (see models.DatasetRecordHash) ----------------------------------------------------

# Pairs as one JSON parameter (see pg_keys for why not arrays).
_PG_INDEX_HASHES = text(
    "INSERT INTO dataset_record_hashes (content_hash, dataset_pk, record_id) "
    "SELECT p->>0, :dataset_pk, p->>1 FROM jsonb_array_elements(CAST(:pairs AS jsonb)) AS p ON CONFLICT DO NOTHING")


def _pg_pairs(states: Sequence[Any]) -> list[str]:
    """The (content_hash, record_id) pairs of `states` as _PG_INDEX_HASHES parameters, a chunk each."""
    return [orjson.dumps([(s.content_hash, s.record_id) for s in part]).decode() for part in chunks(states)]


# session.info key: this transaction has written index rows of its own (see start_index_hashes).
_HASH_ROWS_IN_TRANSACTION = "kennel_hash_rows_in_transaction"


def index_hashes(session: Session, dataset_pk: int, states: Sequence[Any]) -> None:
    """Add the content of new open revisions (RecordState-like: record_id, content_hash) to the index."""
    if not states:
        return
    session.info[_HASH_ROWS_IN_TRANSACTION] = True
    if is_postgres(session):
        for pairs in _pg_pairs(states):
            session.execute(_PG_INDEX_HASHES, {"dataset_pk": dataset_pk, "pairs": pairs})
        return
    sqlite_insert(session.connection(),
                  "INSERT OR IGNORE INTO dataset_record_hashes (content_hash, dataset_pk, record_id)", 3,
                  [(s.content_hash, dataset_pk, s.record_id) for s in states])


class _Alongside:
    """Threads and connections of their own for index rows written alongside a request's transaction.

    Its own pool, as many connections as threads: a request waiting for a second connection from the
    request pool could wait for ever behind other requests that each hold one and wait for the lock
    this request holds.
    """

    WORKERS = 4

    def __init__(self, url: Any) -> None:
        self.engine = make_engine(url.render_as_string(hide_password=False), pool_size=self.WORKERS, max_overflow=0)
        self.threads = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="kennel-hash-index")


_alongside: dict[str, _Alongside] = {}
_alongside_lock = threading.Lock()


def start_index_hashes(session: Session, dataset_pk: int, states: Sequence[Any]) -> Callable[[], None]:
    """Start adding the content of new open revisions to the index; the returned call waits for it.

    On PostgreSQL the rows go in on a connection of their own, committed by themselves, while this
    transaction sends its records: a second backend does on the second core what this one would do
    after its COPY (about 8 ms per 1,000 records, the index key being random). That is safe because
    the index is only ever read joined back to the open revision of each record id (existing_hashes):
    entries whose records are not committed yet, or never will be, match nothing. On SQLite, whose
    single writer is this transaction, they go in here and now.

    The side transaction must never need a lock this one holds: the table has no foreign key to
    `datasets` (models.NO_FOREIGN_KEY), whose check would wait for the dataset row locked FOR UPDATE
    here, and keys this transaction wrote itself send the rows through it instead (see below).
    """
    if not states:
        return lambda: None
    if not is_postgres(session) or session.info.get(_HASH_ROWS_IN_TRANSACTION):
        # Index rows this transaction wrote itself are not committed: the side connection could meet
        # one of their keys (a record whose tags alone changed keeps its hash) and wait for this
        # transaction, which would be waiting for it.
        index_hashes(session, dataset_pk, states)
        return lambda: None
    url = session.get_bind().url
    key = url.render_as_string(hide_password=False)
    with _alongside_lock:
        side = _alongside.get(key)
        if side is None:
            side = _alongside[key] = _Alongside(url)
    work = _pg_pairs(states)

    def run() -> None:
        with side.engine.begin() as conn:
            for pairs in work:
                conn.execute(_PG_INDEX_HASHES, {"dataset_pk": dataset_pk, "pairs": pairs})

    future = side.threads.submit(run)
    # A bound, so that a wait this code did not foresee ends in an error rather than a hung request.
    return lambda: future.result(timeout=120)


def index_hashes_from(session: Session, rows: Any) -> None:
    """Add the content of the revisions a SELECT of (content_hash, dataset_pk, record_id) yields."""
    session.info[_HASH_ROWS_IN_TRANSACTION] = True
    names = ["content_hash", "dataset_pk", "record_id"]
    if is_postgres(session):
        stmt = postgresql.insert(HASHES).from_select(names, rows).on_conflict_do_nothing()
    else:
        stmt = HASHES.insert().from_select(names, rows).prefix_with("OR IGNORE")
    session.execute(stmt)


def build_hash_index(session: Session, dataset_pk: int) -> None:
    """Index the open records of a dataset that has not needed the index before (one statement).

    A plain INSERT, without the conflict handling the other writers need: an unindexed dataset has no
    rows in the table (only indexed datasets get them, and migrations that rebuild the table clear the
    flag), and its open records have distinct ids. On PostgreSQL the conflict check alone cost a quarter
    of building the index of 1M records.
    """
    session.info[_HASH_ROWS_IN_TRANSACTION] = True
    # Sorted, so the index is written in key order rather than page by scattered page.
    if is_postgres(session):
        session.execute(text("SET LOCAL work_mem = '256MB'"))
    rows = (select(R.content_hash, R.dataset_pk, R.record_id)
            .where(R.dataset_pk == dataset_pk, R.valid_to.is_(None)).order_by(R.content_hash))
    session.execute(HASHES.insert().from_select(["content_hash", "dataset_pk", "record_id"], rows))


# One probe per key (LATERAL ... LIMIT 1), as in lookup_current: written as EXISTS, the planner hashed
# every index row of the dataset, joined to its records, for each request. `r.dataset_pk + 0` keeps it
# on the record-id index.
_PG_EXISTING = ("SELECT k.h FROM jsonb_array_elements_text(CAST(%s AS jsonb)) AS k(h) CROSS JOIN LATERAL ("
                "SELECT 1 FROM dataset_record_hashes x JOIN dataset_records r "
                "ON r.record_id = x.record_id AND r.dataset_pk + 0 = x.dataset_pk "
                "WHERE x.content_hash = k.h AND x.dataset_pk = %s "
                "AND r.valid_to IS NULL AND r.content_hash = k.h LIMIT 1) AS m")


def existing_hashes(session: Session, dataset_pk: int, parts: Iterable[Sequence[str]]) -> set[str]:
    """Which of these content hashes an open record of the dataset has (the dataset must be indexed).

    An index row counts only while the open revision of its record id still has that hash. `parts` may
    be a generator that computes the hashes: on PostgreSQL each part's probe is sent as soon as the part
    is made (pipeline mode), so the database answers it while the next part is computed.
    """
    found: set[str] = set()
    if is_postgres(session):
        raw = session.connection().connection.driver_connection
        cursors = []
        with raw.pipeline():
            for part in parts:
                for keys in chunks(sorted(set(part))):
                    cur = raw.cursor()
                    cur.execute(_PG_EXISTING, (orjson.dumps(keys).decode(), dataset_pk))
                    cursors.append(cur)
        # Leaving the pipeline has fetched every answer.
        for cur in cursors:
            found.update(row[0] for row in cur.fetchall())
            cur.close()
        return found
    # SQLite works in this thread: nothing to overlap, so one lookup for all parts, as few statements as can be.
    for keys in chunks(sorted({key for part in parts for key in part})):
        marks = ", ".join("?" * len(keys))
        # CROSS JOIN fixes the loop order in SQLite: hashes outside, records probed by id. Left to
        # itself (no statistics yet) it walked every record of the dataset instead.
        sql = ("SELECT DISTINCT x.content_hash FROM dataset_record_hashes x CROSS JOIN dataset_records r "
               "ON r.record_id = x.record_id AND r.dataset_pk = x.dataset_pk "
               "AND r.valid_to IS NULL AND r.content_hash = x.content_hash "
               f"WHERE x.dataset_pk = ? AND x.content_hash IN ({marks})")
        found.update(session.connection().exec_driver_sql(sql, (dataset_pk, *keys)).scalars().all())
    return found


def _sqlite_ts(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime writes and reads back (naive UTC).
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def insert_revisions(session: Session, dataset_pk: int, version: int, states: Iterable[Any],
                     meanwhile: Callable[[], None] | None = None) -> None:
    """Insert open revisions (valid from `version`) for record states, JSON encoded once by orjson:
    executemany on SQLite, COPY on PostgreSQL. States carry the RecordState attributes.

    States may come from a generator (never an empty one), consumed as the rows are sent on PostgreSQL.
    On SQLite, whose database works in this thread, they are all made first, so that one that raises
    stops the write before it starts.

    `meanwhile` runs once every row is sent. PostgreSQL goes on taking them in on its own core for a
    further 10-23 ms per 1,000 records (measured on a 2-core machine); this thread would otherwise only
    wait for it, and 8 ms of work put there shortened the wait by 7 ms.
    """
    if isinstance(states, Sequence) and not states:
        return
    conn = session.connection()
    dumps = orjson.dumps
    if is_postgres(session):
        raw = conn.connection.driver_connection
        sql = f"COPY dataset_records ({', '.join(INSERT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cur:
            # On this cursor only: set_types picks each column's dumper by its type's oid.
            cur.adapters.register_dumper(_EncodedJson, _EncodedJsonDumper)
            cur.adapters.register_dumper(_EncodedJson, _EncodedJsonbDumper)
            with cur.copy(sql) as copy:
                copy.set_types(COPY_TYPES)
                for s in states:
                    copy.write_row((
                        dataset_pk, s.record_id, s.canonical_id, s.seq, version, None, dumps(s.input),
                        dumps(s.expected_output), dumps(s.metadata), dumps(s.tags), s.content_hash, s.author_id,
                        s.created_at, s.updated_at))
                if meanwhile is not None:
                    meanwhile()
        return
    states = list(states)
    stamps: dict[datetime, str] = {}

    def ts(value: datetime) -> str:
        text_ = stamps.get(value)
        if text_ is None:
            text_ = stamps[value] = _sqlite_ts(value)
        return text_

    sqlite_insert(conn, f"INSERT INTO dataset_records ({', '.join(INSERT_COLUMNS)})", len(INSERT_COLUMNS), [(
        dataset_pk, s.record_id, s.canonical_id, s.seq, version, None, dumps(s.input).decode(),
        dumps(s.expected_output).decode(), dumps(s.metadata).decode(), dumps(s.tags).decode(), s.content_hash,
        s.author_id, ts(s.created_at), ts(s.updated_at),
    ) for s in states])
    if meanwhile is not None:
        meanwhile()


# Only the columns queries filter and sort on: sampling the JSON columns costs most of the time.
ANALYZE_RECORDS = "ANALYZE dataset_records (dataset_pk, record_id, seq, valid_from, valid_to, content_hash)"


def refresh_statistics(session: Session, before: int, after: int) -> None:
    """Have the records table re-ANALYZEd on PostgreSQL each time a dataset's size passes a power of two,
    while the dataset is a sizeable part (an eighth or more) of what the statistics know of the table.

    Old-version reads and deletes are planned from statistics; a server with autovacuum off (or one
    that has not run yet) would otherwise plan a fast-growing table as if it were empty. A dataset that
    stays small next to the table is planned well as it is (as rare), and an ANALYZE samples the whole
    table: 340 ms at 1M records, which a 20,000-record dataset used to pay three times. It runs after the
    commit, off the request path (maintenance.UpkeepRunner).
    """
    if after >= 4096 and before.bit_length() != after.bit_length() and is_postgres(session):
        known = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'dataset_records'::regclass"))
        if after * 8 >= (known or 0):
            request_upkeep(session, ANALYZE_RECORDS)


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
