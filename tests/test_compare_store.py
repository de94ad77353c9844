"""A run's compare columns stored in the database (experiments/compare_store.py).

A run big enough to be stored is pushed over the events API; the server stores its columns after the
intake commits. A fresh cache (this test process's, or a new server's) then reads the stored form instead
of every span and metric, as it is or brought up to date, and gets what a full read computes; a stored form
that cannot be used is passed over, never an error.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kennel.db.engine import make_engine
from kennel.experiments import compare_load, compare_store
from kennel.experiments.compare_load import load_run
from kennel.experiments.compare_run import RunInfo
from kennel.experiments.models import Experiment, RunColumns
from tests.conftest import Server, start_server, stop_server, unique
from tests.test_experiment_compare import _same_run

V2 = "/api/v2/llm-obs/v1"
UNSTABLE = "/api/unstable/llm-obs/v1"
RECORDS = 600  # 600 spans and 1,800+ metrics: past compare_store.MIN_ROWS


def _push(http: httpx.Client, eid: str, spans: list[Any], metrics: list[Any]) -> None:
    r = http.post(f"{UNSTABLE}/experiments/{eid}/events", json={"data": {"type": "experiments", "attributes": {
        "scope": "experiments", "spans": spans, "metrics": metrics}}})
    assert r.status_code == 202, r.text


def _span(eid: str, name: str, i: int, record: str, *, at: int | None = None, status: str = "ok") -> dict[str, Any]:
    return {"trace_id": f"{name}-t{i}", "span_id": f"{name}-{i}", "parent_id": "undefined", "name": "task",
            "start_ns": 1_700_000_000_000_000_000 + (i if at is None else at), "duration": 1000 + i, "status": status,
            "meta": {"span": {"kind": "experiment"}, "input": {"i": i}, "output": f"out {i}"}, "metrics": {},
            "tags": [f"experiment_id:{eid}", f"dataset_record_id:{record}"]}


def _metrics(name: str, i: int) -> list[dict[str, Any]]:
    base = {"span_id": f"{name}-{i}", "trace_id": f"{name}-t{i}", "timestamp_ms": 1}
    out = [{**base, "metric_type": "boolean", "label": "exact", "boolean_value": i % 3 == 0},
           {**base, "metric_type": "score", "label": "close", "score_value": (i * 0.37) % 1 + 1e-9 * i},
           {**base, "metric_type": "categorical", "label": "tone", "categorical_value": ("polite", "curt")[i % 2]}]
    if i % 50 == 7:
        out.append({**base, "metric_type": "score", "label": "close", "score_value": None, "status": "ERROR"})
        out[1] = {**out[1], "label": "close_first"}
    if i % 40 == 5:
        out[0] = {**base, "metric_type": "categorical", "label": "exact", "categorical_value": "odd"}
    return out


@pytest.fixture(scope="module")
def run(server: Server) -> dict[str, Any]:
    http = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60)
    project = http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
        "name": unique("store")}}}).json()["data"]["id"]
    dataset = http.post(f"{V2}/{project}/datasets", json={"data": {"type": "datasets", "attributes": {
        "name": unique("ds")}}}).json()["data"]["id"]
    records = [unique("rec") for _ in range(RECORDS + 20)]
    r = http.post(f"{V2}/{project}/datasets/{dataset}/records", json={"data": {"type": "records", "attributes": {
        "records": [{"id": rid, "input": {"i": i}} for i, rid in enumerate(records)]}}})
    assert r.status_code in (200, 201), r.text
    eids = []
    for name in ("a", "b"):
        r = http.post(f"{UNSTABLE}/experiments", json={"data": {"type": "experiments", "attributes": {
            "name": unique(name), "project_id": project, "dataset_id": dataset}}})
        eid = r.json()["data"]["id"]
        for at in range(0, RECORDS, 200):
            _push(http, eid, [_span(eid, name, i, records[i], status="error" if i % 97 == 0 else "ok")
                              for i in range(at, at + 200)],
                  [m for i in range(at, at + 200) for m in _metrics(name, i)]
                  + [{"span_id": "", "trace_id": "", "timestamp_ms": 1, "metric_type": "score", "label": "acc",
                      "score_value": 0.5, "metric_source": "summary"}])
        eids.append(eid)
    return {"project": project, "dataset": dataset, "records": records, "runs": eids, "http": http}


def _info(session: Session, eid: str, run: dict[str, Any]) -> RunInfo:
    e = session.scalars(select(Experiment).where(Experiment.id == eid)).one()
    return RunInfo(e.pk, e.id, e.name, e.experiment, e.status, e.error, e.project_pk, run["project"], run["dataset"],
                   None, e.dataset_version, {}, None, e.created_at, e.updated_at)


def _stored_key(engine: Any, pk: int) -> str | None:
    with Session(engine) as session:
        return session.execute(select(RunColumns.key).where(RunColumns.experiment_pk == pk)).scalar()


def _load_counting_full_reads(engine: Any, info: RunInfo, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, int]:
    """load_run as a new process would do it (nothing in its cache), and how many full reads it made."""
    reads = []
    real = compare_load._load

    def counted(session: Any, run: RunInfo) -> Any:
        reads.append(run.id)
        return real(session, run)

    with compare_load.cache_lock:
        compare_load._cache.clear()
    monkeypatch.setattr(compare_load, "_load", counted)
    try:
        with Session(engine) as session:
            got = load_run(session, info, store=False)
    finally:
        monkeypatch.setattr(compare_load, "_load", real)
    return got, len(reads)


def _full_read(engine: Any, info: RunInfo) -> Any:
    with Session(engine) as session:
        return compare_load._load(session, info)


def _wait_stored(engine: Any, info: RunInfo) -> None:
    """Until the server has stored the run as it is now (its fingerprint)."""
    with Session(engine) as session:
        want = compare_store.key_text(compare_load.fingerprint(session, info))
    deadline = time.monotonic() + 40
    while _stored_key(engine, info.pk) != want:
        assert time.monotonic() < deadline, f"the run was not stored at {want}: {_stored_key(engine, info.pk)}"
        time.sleep(0.1)


def test_the_intake_stores_a_run_and_a_fresh_cache_reads_it_instead_of_the_spans_and_metrics(
        server: Server, run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(server.database_url)
    try:
        for eid in run["runs"]:
            with Session(engine) as session:
                info = _info(session, eid, run)
            _wait_stored(engine, info)
            got, reads = _load_counting_full_reads(engine, info, monkeypatch)
            assert reads == 0, "the stored run was not used"
            want = _full_read(engine, info)
            _same_run(got, want)
            assert got.errored and got.metric_errors and len(got.type_counts["exact"]) == 2  # the odd cases are in it
            # The encoding gives back exactly what it was given, list positions included.
            want.key = got.key
            assert compare_store.decode(compare_store.encode(want) or b"", info) == want
    finally:
        engine.dispose()


def test_a_stored_run_behind_the_database_is_brought_up_to_date_and_a_bad_one_is_passed_over(
        server: Server, run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Records added after the run was stored are read on top of it (no full read); a stored form from an
    older code (another format) or that does not decode is passed over for a full read, with no error."""
    engine = make_engine(server.database_url)
    http: httpx.Client = run["http"]
    eid = run["runs"][1]
    try:
        with Session(engine) as session:
            info = _info(session, eid, run)
        _wait_stored(engine, info)
        with Session(engine) as session:
            old_key = session.execute(select(RunColumns.key).where(RunColumns.experiment_pk == info.pk)).scalar()
            old_data = session.execute(select(RunColumns.data).where(RunColumns.experiment_pk == info.pk)).scalar()
        records = run["records"]
        new = [RECORDS + k for k in range(10)]
        _push(http, eid, [_span(eid, "b", i, records[i]) for i in new], [m for i in new for m in _metrics("b", i)])
        _wait_stored(engine, info)
        # Put the stored form back as it was before the push: behind the database by the records added.
        with Session(engine) as session, session.begin():
            session.execute(update(RunColumns).where(RunColumns.experiment_pk == info.pk)
                            .values(key=old_key, data=old_data))
        got, reads = _load_counting_full_reads(engine, info, monkeypatch)
        assert reads == 0, "a stored run that only lacked the newest records was read afresh"
        _same_run(got, _full_read(engine, info))
        assert all(records[i] in got.index for i in new)

        for bad in ({"format": compare_store.FORMAT + 1}, {"data": b"{not json"},
                    {"data": orjson.dumps({"records": ["x"], "span_ids": []})}):
            with Session(engine) as session, session.begin():
                session.execute(update(RunColumns).where(RunColumns.experiment_pk == info.pk)
                                .values(format=compare_store.FORMAT, data=old_data).values(**bad))
            got, reads = _load_counting_full_reads(engine, info, monkeypatch)
            assert reads == 1, f"{bad}: not passed over"
            _same_run(got, _full_read(engine, info))
    finally:
        engine.dispose()


def test_a_new_server_process_compares_from_the_stored_runs_as_the_first_one_did(
        server: Server, run: dict[str, Any], tmp_path: Any) -> None:
    """What a second `kennel serve` on the same database answers (its cache empty) is what the first did."""
    runs = ",".join(run["runs"])
    path = f"/api/kennel/v1/experiments/compare?runs={runs}&baseline={run['runs'][0]}"
    first = run["http"].get(path)
    assert first.status_code == 200, first.text
    other = start_server(server.database_url, server.backend, tmp_path)
    try:
        with httpx.Client(base_url=other.base_url, headers=other.headers, timeout=60) as http:
            second = http.get(path)
    finally:
        stop_server(other)
    assert second.status_code == 200, second.text
    assert orjson.loads(second.content) == orjson.loads(first.content)
