"""Connection settings every SQLite connection gets (the brief's durability and concurrency rules)."""

from __future__ import annotations

from kennel.db.engine import make_engine


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
            # The background checkpointer does the work; the backstop sits above one large upload.
            assert pragma("wal_autocheckpoint") == 250000
            assert pragma("journal_size_limit") == 256 * 1024 * 1024
    finally:
        engine.dispose()
