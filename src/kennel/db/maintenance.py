"""Background upkeep that keeps slow, bursty work off the request path."""

from __future__ import annotations

import gc
import logging
import threading

from sqlalchemy import Engine

log = logging.getLogger("kennel")


class SQLiteCheckpointer:
    """Copy the WAL back into the database file from a background thread.

    With SQLite's automatic checkpoint, whichever request happens to cross the threshold pays for
    copying tens of megabytes (we saw 70-90 ms added to one import request in ten). A PASSIVE
    checkpoint never blocks readers or writers, and sqlite3 releases the GIL while it runs.
    Connections keep a large automatic threshold as a backstop should this thread fall behind.
    """

    def __init__(self, engine: Engine, interval: float = 0.5) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kennel-sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # noqa: BLE001 - upkeep must never take the server down
                log.exception("background WAL checkpoint failed; SQLite's own checkpoint still applies")


def tune_gc() -> None:
    """Keep the collector from scanning the whole heap during large requests.

    A 1,000-record request allocates hundreds of thousands of short-lived containers, which triggered
    full collections costing ~60 ms in one request out of five. The objects alive after start-up
    (modules, routes, metadata) never become garbage, so they are frozen out of every scan, and the
    youngest generation is allowed to grow before a collection runs.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
