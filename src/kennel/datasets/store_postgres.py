"""The record store on PostgreSQL (see store.py; store_sqlite.py is the same shape, method for method).

PostgreSQL works in its own process, on the other core: rows go out by binary COPY as they are made,
lookups are sent as one JSON parameter and probed key by key, and the content index of new records can
be written by a second connection (SideWriter) while this one sends the records.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Engine,
    Row,
    Select,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.base import PGDialect

from kennel.datasets.models import REVISION_COLUMNS, Dataset
from kennel.datasets.plan import RecordState
from kennel.datasets.store import (
    HASH_ROWS_IN_TRANSACTION,
    HASHES,
    JSON_FIELDS,
    PAGE_FIELDS,
    TIME_FIELDS,
    R,
    RecordStore,
    chunks,
    row_maker,
)
from kennel.db.engine import make_engine
from kennel.db.maintenance import request_upkeep


def _copy_type(name: str) -> str:
    # The column's type as PostgreSQL names it, without its length: `varchar`, `json`, `timestamp with time zone`.
    return re.sub(r"\(.*\)", "", R[name].type.compile(dialect=PGDialect())).lower()


# PostgreSQL types of REVISION_COLUMNS, for the binary COPY: each value is sent in its column's own form.
COPY_TYPES = tuple(_copy_type(name) for name in REVISION_COLUMNS)
# JSON goes out as the bytes orjson makes (see _EncodedJsonDumper), timestamps as they are.
_ROW = row_maker(json="dumps({})", time="{}")
_COPY_REVISIONS = f"COPY dataset_records ({', '.join(REVISION_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def _same(value: Any) -> Any:
    return value


class _EncodedJson:
    """Stands for JSON that orjson has encoded already (a key for the dumpers below, never made)."""


class _EncodedJsonDumper(Dumper):
    """json's binary form is the JSON text itself: the bytes orjson made go out as they are.

    Text COPY cost more at both ends: the backend un-escaping every backslash of the JSON and parsing each
    number and timestamp, and this process escaping them and decoding orjson's bytes to str.
    """

    format = Format.BINARY
    oid = postgres.types["json"].oid

    def dump(self, obj: bytes) -> bytes:
        return obj


class _EncodedJsonbDumper(_EncodedJsonDumper):
    """jsonb's binary form is a version byte, then the JSON text."""

    oid = postgres.types["jsonb"].oid

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


def json_keys(values: Sequence[str]) -> Any:
    """A list of strings as a table of `value`s, sent as one JSON text parameter.

    psycopg adapts a list to a text[] in Python, element by element; orjson writes the JSON in
    microseconds and PostgreSQL splits it as fast.
    """
    keys = bindparam("keys", orjson.dumps(list(values)).decode(), type_=Text)
    return func.jsonb_array_elements_text(cast(keys, postgresql.JSONB)).table_valued("value").render_derived(
        name="k")


# Pairs as one JSON parameter (see json_keys for why not arrays).
_INDEX_HASHES = text(
    "INSERT INTO dataset_record_hashes (content_hash, dataset_pk, record_id) "
    "SELECT p->>0, :dataset_pk, p->>1 FROM jsonb_array_elements(CAST(:pairs AS jsonb)) AS p ON CONFLICT DO NOTHING")


def _pairs(states: Sequence[RecordState]) -> list[str]:
    """The (content_hash, record_id) pairs of `states` as _INDEX_HASHES parameters, a chunk each."""
    return [orjson.dumps([(s.content_hash, s.record_id) for s in part]).decode() for part in chunks(states)]


# One probe per key (LATERAL ... LIMIT 1), as in `current`: written as EXISTS, the planner hashed every
# index row of the dataset, joined to its records, for each request. `r.dataset_pk + 0` keeps it on the
# record-id index.
_EXISTING = ("SELECT k.h FROM jsonb_array_elements_text(CAST(%s AS jsonb)) AS k(h) CROSS JOIN LATERAL ("
             "SELECT 1 FROM dataset_record_hashes x JOIN dataset_records r "
             "ON r.record_id = x.record_id AND r.dataset_pk + 0 = x.dataset_pk "
             "WHERE x.content_hash = k.h AND x.dataset_pk = %s "
             "AND r.valid_to IS NULL AND r.content_hash = k.h LIMIT 1) AS m")

# Only the columns queries filter and sort on: sampling the JSON columns costs most of the time.
ANALYZE_RECORDS = "ANALYZE dataset_records (dataset_pk, record_id, seq, valid_from, valid_to, content_hash)"

# session.info key under which the app (or a CLI command) hands its SideWriter to the stores.
SIDE_WRITER = "kennel_side_writer"


class SideWriter:
    """Threads and connections of their own for index rows written alongside a request's transaction.

    Created by the app that uses it (app.py's lifespan) and closed when it stops. Its own pool, as many
    connections as threads: a request waiting for a second connection from the request pool could wait
    for ever behind other requests that each hold one and wait for the lock this request holds.
    """

    WORKERS = 4

    def __init__(self, engine: Engine) -> None:
        self.engine = make_engine(engine.url.render_as_string(hide_password=False), pool_size=self.WORKERS,
                                  max_overflow=0)
        self.threads = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="kennel-hash-index")
        self._closed = threading.Event()

    def submit(self, dataset_pk: int, work: list[str]) -> Callable[[], None]:
        def run() -> None:
            with self.engine.begin() as conn:
                for pairs in work:
                    conn.execute(_INDEX_HASHES, {"dataset_pk": dataset_pk, "pairs": pairs})

        future = self.threads.submit(run)
        # A bound, so that a wait this code did not foresee ends in an error rather than a hung request.
        return lambda: future.result(timeout=120)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self.threads.shutdown(wait=True)
            self.engine.dispose()


class PostgresStore(RecordStore):
    dialect = "postgresql"

    def _driver(self) -> Any:
        """The psycopg connection under this session's transaction, for COPY and pipelines."""
        raw = self.session.connection().connection.driver_connection
        assert raw is not None, "the session's connection is open"
        return raw

    def settle(self, dataset: Dataset) -> None:
        if not dataset.closures_pending:
            return
        self.session.execute(text(
            "UPDATE dataset_records SET valid_to = c.valid_to FROM dataset_pending_closures c "
            "WHERE c.dataset_pk = :pk AND dataset_records.dataset_pk = :pk AND dataset_records.seq = c.seq "
            "AND dataset_records.valid_from = c.valid_from AND dataset_records.valid_to IS NULL"),
            {"pk": dataset.pk})
        self.session.execute(text("DELETE FROM dataset_pending_closures WHERE dataset_pk = :pk"), {"pk": dataset.pk})
        dataset.closures_pending = False
        self.session.flush()

    def _append_closures(self, rows: list[tuple[int, int, int, int]]) -> None:
        raw = self._driver()
        with raw.cursor() as cur, cur.copy(
                "COPY dataset_pending_closures (dataset_pk, seq, valid_from, valid_to) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def current(self, dataset_pk: int, keys: Sequence[str], columns: Sequence[Any]) -> list[Row[Any]]:
        """Each key is one probe of the partial index that leads with that key (json_keys + LATERAL ...
        LIMIT 1), with the dataset condition written so that no index can use it (`dataset_pk + 0`).
        Otherwise the planner, whose statistics lag behind a dataset that is being filled, estimates one
        row for the dataset and is as happy to walk another (dataset_pk, ...) index and filter every row
        of the dataset for each key: a growing import turned quadratic that way.
        """
        found: list[Row[Any]] = []
        for part in chunks(list(keys)):
            k = json_keys(part)
            probe = (select(*columns)
                     .where(R.record_id == k.c.value, R.valid_to.is_(None),
                            R.dataset_pk + literal_column("0") == dataset_pk)
                     .limit(literal_column("1")).lateral("r"))
            stmt = select(*[probe.c[c.name] for c in columns]).select_from(k).join(probe, true())
            found.extend(self.session.execute(stmt).all())
        return found

    def insert(self, dataset_pk: int, version: int, states: Iterable[RecordState]) -> None:
        """Rows go out as they are made, by binary COPY: the database takes in the first ones while this
        thread makes the next."""
        if isinstance(states, Sequence) and not states:
            return
        make, dumps = _ROW, orjson.dumps
        raw = self._driver()
        with raw.cursor() as cur:
            # On this cursor only: set_types picks each column's dumper by its type's oid.
            cur.adapters.register_dumper(_EncodedJson, _EncodedJsonDumper)
            cur.adapters.register_dumper(_EncodedJson, _EncodedJsonbDumper)
            with cur.copy(_COPY_REVISIONS) as copy:
                copy.set_types(COPY_TYPES)
                for state in states:
                    copy.write_row(make(dataset_pk, version, state, dumps, _same))

    def new_canonical_ids(self) -> ColumnElement[str]:
        return func.gen_random_uuid().cast(Text)

    def refresh_statistics(self, before: int, after: int) -> None:
        """Have the records table re-ANALYZEd each time a dataset's size passes a power of two, while the
        dataset is a sizeable part (an eighth or more) of what the statistics know of the table.

        Old-version reads and deletes are planned from statistics; a server with autovacuum off (or one
        that has not run yet) would otherwise plan a fast-growing table as if it were empty. A dataset
        that stays small next to the table is planned well as it is, and an ANALYZE samples the whole
        table, so it runs after the commit, off the request path (maintenance.UpkeepRunner).
        """
        if after >= 4096 and before.bit_length() != after.bit_length():
            known = self.session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'dataset_records'::regclass"))
            if after * 8 >= (known or 0):
                request_upkeep(self.session, ANALYZE_RECORDS)

    def index_hashes(self, dataset_pk: int, states: Sequence[RecordState]) -> None:
        if not states:
            return
        self.session.info[HASH_ROWS_IN_TRANSACTION] = True
        for pairs in _pairs(states):
            self.session.execute(_INDEX_HASHES, {"dataset_pk": dataset_pk, "pairs": pairs})

    def start_index_hashes(self, dataset_pk: int, states: Sequence[RecordState]) -> Callable[[], None]:
        """The rows go in on the app's SideWriter, committed by themselves, while this transaction sends
        its records: a second backend does on the second core what this one would do after its COPY.

        That is safe because the index is only ever read joined back to the open revision of each record
        id (existing_hashes): entries whose records are not committed yet, or never will be, match
        nothing. The side transaction must never need a lock this one holds: the table has no foreign key
        to `datasets` (models.NO_FOREIGN_KEY), whose check would wait for the dataset row locked FOR
        UPDATE here, and keys this transaction wrote itself send the rows through it instead.
        """
        side: SideWriter | None = self.session.info.get(SIDE_WRITER)
        if not states or side is None or self.session.info.get(HASH_ROWS_IN_TRANSACTION):
            # Index rows this transaction wrote itself are not committed: the side connection could meet
            # one of their keys (a record whose tags alone changed keeps its hash) and wait for this
            # transaction, which would be waiting for it.
            self.index_hashes(dataset_pk, states)
            return lambda: None
        return side.submit(dataset_pk, _pairs(states))

    def index_hashes_from(self, rows: Select[Any]) -> None:
        self.session.info[HASH_ROWS_IN_TRANSACTION] = True
        self.session.execute(postgresql.insert(HASHES).from_select(["content_hash", "dataset_pk", "record_id"], rows)
                             .on_conflict_do_nothing())

    def build_hash_index(self, dataset_pk: int) -> None:
        # Room to sort the whole dataset's hashes in memory (see RecordStore.build_hash_index).
        self.session.execute(text("SET LOCAL work_mem = '256MB'"))
        super().build_hash_index(dataset_pk)

    def existing_hashes(self, dataset_pk: int, parts: Iterable[Sequence[str]]) -> set[str]:
        """Each part's probe is sent as soon as the part is made (pipeline mode), so the database answers
        it while the next part is computed."""
        found: set[str] = set()
        raw = self._driver()
        cursors = []
        with raw.pipeline():
            for part in parts:
                for keys in chunks(sorted(set(part))):
                    cur = raw.cursor()
                    cur.execute(_EXISTING, (orjson.dumps(keys).decode(), dataset_pk))
                    cursors.append(cur)
        # Leaving the pipeline has fetched every answer.
        for cur in cursors:
            found.update(row[0] for row in cur.fetchall())
            cur.close()
        return found

    def page_columns(self) -> tuple[ColumnElement[Any], ...]:
        # JSON as its stored text (a cast); timestamps as the datetimes psycopg makes, which orjson writes.
        return tuple(cast(R[name], Text).label(name) if name in JSON_FIELDS
                     else type_coerce(R[name], DateTime(timezone=True)).label(name) if name in TIME_FIELDS
                     else R[name] for name in PAGE_FIELDS)

    def tags_any(self, tags: Sequence[str]) -> ColumnElement[bool]:
        return R.tags.op("?|")(postgresql.array(list(tags)))
