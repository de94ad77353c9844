"""Connection settings every SQLite connection gets (the brief's durability and concurrency rules), and
PostgreSQL's plans."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.orm import Session

from kennel.db.engine import AUTOCHECKPOINT_BYTES, PAGE_SIZE, defer_checkpoint, make_engine
from kennel.db.migrate import upgrade


def test_sqlite_connections_are_configured(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/k.db")
    try:
        with engine.connect() as conn:
            def pragma(name: str):
                return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("busy_timeout") == 30000
            assert pragma("foreign_keys") == 1
            assert pragma("page_size") == PAGE_SIZE == 16384
            # 200 MB of WAL, counted in the file's pages.
            assert pragma("wal_autocheckpoint") == AUTOCHECKPOINT_BYTES // PAGE_SIZE == 12_800
            assert pragma("journal_size_limit") == 256 * 1024 * 1024
            # Files, not MEMORY: with MEMORY, cloning or restoring a 100k-record dataset raised the
            # server's RSS by ~140 MB (statement journals and INSERT ... SELECT copies held in RAM).
            assert pragma("temp_store") == 0
    finally:
        engine.dispose()


def test_a_database_made_with_other_pages_keeps_them_and_the_same_wal_backstop(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:  # as servers before 16 KiB pages made them
        raw.execute("PRAGMA page_size=4096")
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE t (x)")
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 4096
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_BYTES // 4096
        with Session(engine) as session:
            defer_checkpoint(session)
            session.commit()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_BYTES // 4096
    finally:
        engine.dispose()


def test_migrations_hand_back_connections_that_enforce_foreign_keys(tmp_path):
    # Migrations switch SQLite's foreign keys off while they run (see migrations/env.py); the pooled
    # connection they used must get them back, or cascades silently stop for whoever reuses it.
    engine = make_engine(f"sqlite:///{tmp_path}/k.db")
    try:
        for _ in range(2):  # a fresh database, then one already at head
            upgrade(engine)
            assert engine.pool.checkedin() == 1
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_a_deferred_checkpoint_lasts_one_transaction(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/k.db")
    try:
        with Session(engine) as session:
            defer_checkpoint(session)
            conn = session.connection()
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            session.commit()
        assert engine.pool.checkedout() == 0
        # The pooled connection comes back with the usual backstop.
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_BYTES // PAGE_SIZE
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # psycopg's prepared statements
def test_postgres_plans_each_execution_for_its_own_parameters(database_url):
    """psycopg prepares a statement on its fifth run on a connection; PostgreSQL would then use a plan made
    for any parameters (the compare's page of span inputs took 5x as long that way)."""
    from sqlalchemy import select, text

    from kennel.spans.models import Span

    engine = make_engine(database_url)
    upgrade(engine)
    try:
        with engine.connect() as conn:
            for n in range(12):
                conn.execute(select(Span.pk).where(Span.span_id == f"probe-{n}", Span.experiment_id == "x")).all()
            plans = conn.execute(text("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                                      "WHERE statement LIKE :span AND statement LIKE :experiment"),
                                 {"span": "%llmobs_spans.span_id = %", "experiment": "%experiment_id%"}).all()
        assert plans, "the statement was never prepared: the test no longer tests anything"
        assert all(generic == 0 for generic, _ in plans), plans
    finally:
        engine.dispose()
