"""Engine construction: driver selection, SQLite pragmas and write-transaction handling."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session


def normalize_url(url: str) -> str:
    """Accept the plain `postgresql://` form users write and pick the driver we ship (psycopg 3)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        return create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            pool_pre_ping=True,
            # Raw timestamps read past SQLAlchemy's processing (bulk pages) then come back in UTC.
            # psycopg prepares a statement run five times on a connection, and PostgreSQL may then plan it
            # once for any parameters: the compare's page of span inputs (`experiment_id = $1 AND span_id
            # IN ($2..$51)`) went from 4.5 to 25 ms a run that way, through the experiment's whole index.
            # Kennel's parameters are ids of very differently sized things (a 10-record and a 1M-record
            # dataset), so each execution is planned for its own.
            connect_args={"options": "-c timezone=UTC -c plan_cache_mode=force_custom_plan"},
            **kwargs,
        )
    raise SystemExit(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://user:pass@host:port/db")


# Pages of a database this server creates. Records are ~1.2 KB: a 1,000-record write dirties a quarter
# as many 16 KiB pages as 4 KiB ones, and each WAL frame costs the commit its own writes. Measured
# (interleaved A/B, 1,000-record requests on a 2-core machine): typed append +7%, import +6%, paged
# read +6%. A database created with other pages keeps them (WAL mode cannot change them).
PAGE_SIZE = 16384
# The WAL size at which the commit that crosses it checkpoints itself (see _on_connect).
AUTOCHECKPOINT_BYTES = 200 * 1024 * 1024
_CHECKPOINT_DEFERRED = "kennel_checkpoint_deferred"
_AUTOCHECKPOINT_PAGES = "kennel_autocheckpoint_pages"


def autocheckpoint_pages(page_size: int) -> int:
    return AUTOCHECKPOINT_BYTES // page_size


def defer_checkpoint(session: Session) -> None:
    """Let this transaction's commit skip SQLite's automatic checkpoint; a no-op on PostgreSQL.

    For single writes larger than the backstop (a 100,000-row upload can put more than 200 MB in the
    WAL): their commit would otherwise copy the whole WAL into the database itself, 0.5-0.75 s of
    a 4.5 s upload. The background checkpointer does it instead, right after. The connection gets
    the usual setting back when it returns to the pool.
    """
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        conn.info[_CHECKPOINT_DEFERRED] = True


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):  # pragma: no cover - exercised by every SQLite test
        # pysqlite's implicit transactions fight with ours; we issue BEGIN ourselves below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # Takes effect only while the file is still empty, so it must come before journal_mode.
        cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # Per connection, and the pool holds several: the OS page cache does the rest.
        cur.execute("PRAGMA cache_size=-16384")
        # temp_store stays at its default (files): a multi-row UPDATE inside a transaction keeps the
        # original of every page it changes in a statement journal, which MEMORY holds in the process.
        # Settling a 10,000-record delete in a 300k-record dataset put 175 MB there (16 KiB pages).
        # Checkpoints normally run in the background (db/maintenance.py); this backstop, run by the commit
        # that crosses it, is what bounds the WAL under sustained writes, when the background checkpoint
        # never quite catches up. Readers pay for a long WAL (each page lookup searches its index), so it
        # stays at 200 MB; single large writes opt out of it for their own commit (defer_checkpoint).
        # SQLite counts it in pages, whose size is the file's own.
        pages = record.info[_AUTOCHECKPOINT_PAGES] = autocheckpoint_pages(
            cur.execute("PRAGMA page_size").fetchone()[0])
        cur.execute(f"PRAGMA wal_autocheckpoint={pages}")
        # Once a checkpoint has caught up, a WAL file grown by a large write is cut back to 256 MB.
        cur.execute("PRAGMA journal_size_limit=268435456")
        cur.close()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn, record):  # pragma: no cover - tests/test_engine.py
        if record.info.pop(_CHECKPOINT_DEFERRED, False) and dbapi_conn is not None:
            try:
                dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={record.info[_AUTOCHECKPOINT_PAGES]}")
            except sqlite3.Error as exc:
                # A connection that cannot take the setting back is not handed out again.
                record.invalidate(exc)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A writer takes the lock up front: a deferred transaction that reads and then writes can
        # fail with SQLITE_BUSY at once (busy_timeout does not apply to lock upgrades).
        if conn.get_execution_options().get("kennel_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
