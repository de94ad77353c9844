"""Background upkeep that keeps slow, bursty work off the request path."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from kennel.db.session import unit_of_work
from kennel.errors import out_of_space

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
        disk_full = False
        while not self._stop.wait(self.interval):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:
                if out_of_space(exc) is None:
                    log.exception("background WAL checkpoint failed; SQLite's own checkpoint still applies")
                elif not disk_full:
                    # It fails twice a second for as long as the disk stays full: say so once, and when it ends.
                    log.error("background WAL checkpoint: the disk holding the SQLite database is full; the "
                              "WAL is copied back into the database once there is room")
                    disk_full = True
            else:
                if disk_full:
                    log.warning("background WAL checkpoint: there is disk space again")
                disk_full = False


# session.info key: work (e.g. ANALYZE) the session's transaction asks to have run once it commits.
AFTER_COMMIT_UPKEEP = "kennel_after_commit_upkeep"


class UnitsJob(Protocol):
    """A job that opens its own units of work: to read in one and write in a short other, so that on SQLite
    the write lock is not held while it reads. It may set, as class attributes, `quiet` (seconds): it then
    runs once it has not been asked for again for that long (asks in a burst make one run, after it), but
    no later than `max_wait` seconds after the first ask, and no sooner than `cost_factor` times its last
    run's duration after that run ended; and `flush_on_stop`, to run when the runner stops if it is waiting."""

    def run(self, factory: sessionmaker[Session]) -> None: ...


# A job is an SQL statement, a hashable callable that does its work in the session it is given (one
# unit of work of its own), or a hashable UnitsJob. Equal jobs asked for before the runner gets to them run once.
Job = str | Callable[[Session], None] | UnitsJob


def request_upkeep(session: Session, job: Job) -> None:
    """Ask for `job` to run in the background once this session's transaction commits."""
    session.info.setdefault(AFTER_COMMIT_UPKEEP, set()).add(job)


class UpkeepRunner:
    """Run work that requests ask for (request_upkeep) on a background thread, after they commit.

    For ANALYZE on PostgreSQL: on a 1M-record table it takes about 340 ms, which the request that
    happened to pass a size threshold used to pay in full (three of the twenty requests of a 20,000-record
    append sample). For a delete's pending closings (datasets.store.SettleClosures). For storing a run's
    compare columns (experiments.compare_store.StoreRun). Requests asking while one runs are folded into one
    more run; a rolled-back transaction asks for nothing. Without a runner (the CLI, tests of services),
    requests are ignored: pending closings then wait for the next writer to their dataset or the next server
    start, a run's columns for the next compare that reads it, and reads stay correct meanwhile.
    """

    def __init__(self, engine: Engine, factory: sessionmaker[Session], *, flush_seconds: float = 8.0) -> None:
        self.engine = engine
        self.factory = factory
        self.flush_seconds = flush_seconds
        self._pending: set[Job] = set()
        # A quiet job asked for -> (when it runs, when it was first asked for), in time.monotonic().
        self._waiting: dict[Job, tuple[float, float]] = {}
        self._next_ok: dict[Job, float] = {}  # a quiet job that ran -> when it may run again
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kennel-upkeep", daemon=True)

    def start(self) -> None:
        event.listen(self.factory, "after_commit", self._committed)
        event.listen(self.factory, "after_rollback", self._rolled_back)
        self._thread.start()

    def stop(self) -> None:
        event.remove(self.factory, "after_commit", self._committed)
        event.remove(self.factory, "after_rollback", self._rolled_back)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.flush_seconds + 2)

    def submit(self, jobs: Iterable[Job]) -> None:
        now = time.monotonic()
        with self._lock:
            for job in jobs:
                quiet = getattr(job, "quiet", None)
                if quiet is None:
                    self._pending.add(job)
                    continue
                first = self._waiting.get(job, (now, now))[1]
                due = min(now + quiet, first + getattr(job, "max_wait", quiet))
                self._waiting[job] = (max(due, self._next_ok.get(job, 0.0)), first)
        self._wake.set()

    def _committed(self, session: Session) -> None:
        jobs = session.info.pop(AFTER_COMMIT_UPKEEP, None)
        if jobs:
            self.submit(jobs)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(AFTER_COMMIT_UPKEEP, None)

    def _take(self) -> list[Job]:
        """The jobs to run now; a quiet job that has come due moves to them."""
        now = time.monotonic()
        with self._lock:
            jobs, self._pending = self._pending, set()
            for job, (due, _first) in list(self._waiting.items()):
                if due <= now:
                    del self._waiting[job]
                    jobs.add(job)
            for job, due in list(self._next_ok.items()):
                if due <= now:
                    del self._next_ok[job]  # ran long enough ago not to hold back the next one
            return sorted(jobs, key=str)

    def _wait(self) -> float | None:
        with self._lock:
            return max(0.0, min(due for due, _ in self._waiting.values()) - time.monotonic()) if self._waiting else None

    def _run(self) -> None:
        while True:
            self._wake.wait(self._wait())
            if self._stop.is_set():
                self._flush()
                return
            self._wake.clear()
            jobs = self._take()
            for at, job in enumerate(jobs):
                if self._stop.is_set():
                    with self._lock:
                        self._pending.update(jobs[at:])  # for _flush
                    break
                self._run_one(job)

    def _flush(self) -> None:
        """On stop: run once more, within flush_seconds, the waiting jobs that ask for it."""
        deadline = time.monotonic() + self.flush_seconds
        with self._lock:
            jobs = sorted((j for j in (*self._pending, *self._waiting) if getattr(j, "flush_on_stop", False)), key=str)
            self._pending.clear()
            self._waiting.clear()
        for job in jobs:
            if time.monotonic() > deadline:
                log.warning("background upkeep: stopping with %d job(s) not run", len(jobs) - jobs.index(job))
                return
            self._run_one(job)

    def _run_one(self, job: Job) -> None:
        began = time.monotonic()
        try:
            if isinstance(job, str):
                with self.engine.connect() as conn:
                    conn.exec_driver_sql(job)
                    conn.commit()
            elif hasattr(job, "run"):
                job.run(self.factory)
            else:
                with unit_of_work(self.factory, write=True) as session:
                    job(session)
        except Exception as exc:
            if out_of_space(exc) is None:
                log.exception("background upkeep failed: %s", job)
            else:
                log.error("background upkeep failed, the database being out of disk space: %s", job)
        finally:
            if getattr(job, "quiet", None) is not None:
                ended = time.monotonic()
                with self._lock:
                    self._next_ok[job] = ended + getattr(job, "cost_factor", 0.0) * (ended - began)


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


class _Pauses:
    lock = threading.Lock()
    active = 0
    resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block.

    For work that builds a large, acyclic working set and drops it at the end (a whole queue's ratings:
    tuples, lists and sets by the hundred thousand): reference counting frees all of it, yet the young
    generation fills several times on the way and each collection traverses everything still alive, for
    nothing. Pauses from several threads nest: the collector resumes when the last one ends, if it ran
    before the first began.
    """
    with _Pauses.lock:
        if _Pauses.active == 0:
            _Pauses.resume = gc.isenabled()
            gc.disable()
        _Pauses.active += 1
    try:
        yield
    finally:
        with _Pauses.lock:
            _Pauses.active -= 1
            if _Pauses.active == 0 and _Pauses.resume:
                gc.enable()
