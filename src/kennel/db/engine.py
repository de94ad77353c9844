"""Engine construction: driver selection, SQLite pragmas and write-transaction handling."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


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
            connect_args={"options": "-c timezone=UTC"},
            **kwargs,
        )
    raise SystemExit(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://user:pass@host:port/db")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
        # pysqlite's implicit transactions fight with ours; we issue BEGIN ourselves below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # Per connection, and the pool holds several: the OS page cache does the rest.
        cur.execute("PRAGMA cache_size=-16384")
        cur.execute("PRAGMA temp_store=MEMORY")
        # Checkpoints normally run in the background (db/maintenance.py); this is only the backstop, set
        # above what one large write puts in the WAL. At 50,000 pages (200 MB) a 100,000-row upload
        # (120 MB of records, plus index pages written more than once as the cache spills) crossed it,
        # and its commit did the checkpoint itself: 0.5-0.75 s of a 4.5 s upload, against 0.12 s now.
        # Once a checkpoint has caught up, the WAL file is cut back to 256 MB.
        cur.execute("PRAGMA wal_autocheckpoint=250000")
        cur.execute("PRAGMA journal_size_limit=268435456")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A writer takes the lock up front: a deferred transaction that reads and then writes can
        # fail with SQLITE_BUSY at once (busy_timeout does not apply to lock upgrades).
        if conn.get_execution_options().get("kennel_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
