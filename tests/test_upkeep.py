"""Work a request asks for after its commit (maintenance.UpkeepRunner): runs only if the request commits."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import inspect, text

from kennel.db.engine import make_engine
from kennel.db.maintenance import UpkeepRunner, request_upkeep
from kennel.db.session import make_sessionmaker
from tests.conftest import unique


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_upkeep_runs_after_commit_and_never_after_rollback(database_url):
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    runner = UpkeepRunner(engine, factory)
    runner.start()
    rolled, committed = (f"upkeep_probe_{uuid.uuid4().hex[:10]}" for _ in range(2))

    def exists(name: str) -> bool:
        return inspect(engine).has_table(name)

    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
            request_upkeep(session, f"CREATE TABLE {rolled} (x integer)")
            session.rollback()
        with factory() as session:
            session.execute(text("SELECT 1"))
            request_upkeep(session, f"CREATE TABLE {committed} (x integer)")
            session.commit()
        assert _wait_for(lambda: exists(committed)), "the committed request's upkeep never ran"
        # Both were queued in order; the runner works serially, so the rolled-back one had its chance.
        assert not exists(rolled)
    finally:
        runner.stop()
        with engine.begin() as conn:
            for name in (rolled, committed):
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # statistics are a PostgreSQL matter
def test_growing_dataset_gets_fresh_statistics_on_postgres(server, http, database_url):
    engine = make_engine(database_url)

    def analyzed() -> int:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT analyze_count FROM pg_stat_user_tables "
                                    "WHERE relname = 'dataset_records'")) or 0

    try:
        with engine.connect() as conn:
            known = conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'dataset_records'")) or 0
        # The dataset must pass a power of two while it is an eighth or more of what ANALYZE last saw.
        size = 4096
        while size * 8 < known:
            size *= 2
        before = analyzed()
        pid = http.post("/api/v2/llm-obs/v1/projects", json={"data": {"type": "projects", "attributes": {
            "name": unique("stats")}}}).json()["data"]["id"]
        ds = http.post(f"/api/v2/llm-obs/v1/{pid}/datasets", json={"data": {"type": "datasets", "attributes": {
            "name": "stats"}}}).json()["data"]["id"]
        for start in range(0, size + 1000, 1000):
            body = {"data": {"type": "datasets", "id": ds, "attributes": {
                "insert_records": [{"id": f"s{i}", "input": {"i": i}} for i in range(start, start + 1000)]}}}
            assert http.post(f"/api/v2/llm-obs/v1/{pid}/datasets/{ds}/batch_update", json=body).status_code == 200
        # Passing `size` records asks for an ANALYZE, which the server runs after the commit.
        assert _wait_for(lambda: analyzed() > before), "dataset_records was never re-analyzed"
    finally:
        engine.dispose()


class _Quiet:
    """A job that opens its own unit of work and records when it ran (class attributes as StoreRun's)."""

    runs: dict[str, list[float]] = {}
    quiet = 0.4
    max_wait = 1.5
    cost_factor = 0.0

    def __init__(self, name: str, flush: bool) -> None:
        self.name = name
        self.flush_on_stop = flush

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Quiet) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"_Quiet({self.name})"

    def run(self, factory) -> None:
        with factory() as session:
            session.execute(text("SELECT 1"))
        _Quiet.runs.setdefault(self.name, []).append(time.monotonic())


def _ask_for(runner: UpkeepRunner, job: _Quiet, seconds: float) -> tuple[float, float]:
    """Ask for the job every 50 ms for `seconds`; when the first and the last ask were made."""
    began = last = time.monotonic()
    while time.monotonic() - began < seconds:
        last = time.monotonic()
        runner.submit([job])
        time.sleep(0.05)
    return began, last


def test_a_quiet_job_runs_once_after_a_burst_of_asks_within_max_wait_and_at_stop(database_url):
    """StoreRun's timing: asked for again and again, it runs once the asks have paused for `quiet` seconds,
    and during a long burst no later than `max_wait` after the first ask; asked for and still waiting when
    the server stops, it runs then if it is flush_on_stop, and not otherwise."""
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    runner = UpkeepRunner(engine, factory)
    runner.start()
    job, other = _Quiet(unique("quiet"), True), _Quiet(unique("other"), False)
    try:
        _, ended = _ask_for(runner, job, 1.0)
        assert job.name not in _Quiet.runs, "it ran while it was still being asked for"
        assert _wait_for(lambda: len(_Quiet.runs.get(job.name, ())) == 1)
        assert _Quiet.runs[job.name][0] - ended >= _Quiet.quiet
        time.sleep(0.6)
        assert len(_Quiet.runs[job.name]) == 1, "one burst of asks ran it more than once"

        began, ended = _ask_for(runner, job, 2.6)
        during = [t for t in _Quiet.runs[job.name][1:] if t < ended]
        assert during and during[0] - began <= _Quiet.max_wait + 0.3, "a long burst held it back past max_wait"
        assert _wait_for(lambda: _Quiet.runs[job.name][-1] > ended), "it did not run after the burst"

        runner.submit([job, other])  # both must wait `quiet`: the stop comes first
    finally:
        runner.stop()
        engine.dispose()
    assert _Quiet.runs[job.name][-1] > ended + 0.0 and len(_Quiet.runs[job.name]) >= 4, \
        "a flush_on_stop job waiting at stop did not run"
    assert other.name not in _Quiet.runs, "a job that is not flush_on_stop ran at stop"
