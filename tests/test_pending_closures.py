"""A delete's closings wait in dataset_pending_closures until settled; every read leaves them out meanwhile.

These run the services without an upkeep runner, so nothing settles behind the test's back: the
pending state holds until a writer (or a job run here by hand) settles it.
"""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import func, select, text

from kennel.datasets import transfer
from kennel.datasets.lifecycle import clone_dataset, restore_version
from kennel.datasets.models import DatasetPendingClosure, DatasetRecord
from kennel.datasets.records import NewRecord, change_records, list_records
from kennel.datasets.service import get_dataset
from kennel.datasets.store import unsettled
from kennel.db.maintenance import UpkeepRunner
from kennel.db.session import unit_of_work
from kennel.errors import NotFound
from kennel.keys.service import Actor
from tests.conftest import new_dataset_via_services

ACTOR = Actor(id="k-test", name="test")


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(n)]


@pytest.fixture
def dataset(factory):
    """A dataset of 10 records (version 1), one of them updated (version 2), three deleted (version 3)."""
    ids = new_dataset_via_services(factory, ACTOR)
    with unit_of_work(factory, write=True) as s:
        change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR,
                       inserts=[NewRecord(id=rid, input={"q": rid}) for rid in _ids("r", 10)])
    with unit_of_work(factory, write=True) as s:
        change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR,
                       inserts=[NewRecord(id="r-000", input={"q": "changed"})])
    with unit_of_work(factory, write=True) as s:
        _, result = change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR,
                                   deletes=["r-000", "r-001", "r-002"], report_content=False)
        assert result.version == 3
    return ids


def _read(factory, ids, version=None) -> dict[str, str]:
    with unit_of_work(factory, write=False) as s:
        _, rows, cursor = list_records(s, project_id=ids[0], dataset_id=ids[1], version=version, tags=None,
                                       cursor=None, limit=100)
    assert cursor is None
    return {r.record_id: orjson.loads(r.input) for r in rows}


def _pending(factory, ids) -> tuple[int, list[int | None]]:
    """(pending closings of the dataset, valid_to of the deleted records' newest rows)."""
    with unit_of_work(factory, write=False) as s:
        ds = get_dataset(s, dataset_id=ids[1])
        n = s.scalar(select(func.count()).select_from(DatasetPendingClosure)
                     .where(DatasetPendingClosure.dataset_pk == ds.pk))
        ends = s.scalars(select(DatasetRecord.valid_to).where(
            DatasetRecord.dataset_pk == ds.pk, DatasetRecord.record_id.in_(["r-000", "r-001", "r-002"]))
            .order_by(DatasetRecord.record_id, DatasetRecord.valid_from.desc())).all()
        assert ds.closures_pending is (n > 0)
        return n, ends


def _export(factory, ids, version) -> list[str]:
    with unit_of_work(factory, write=False) as s:
        ds = get_dataset(s, dataset_id=ids[1])
        count = transfer.count_records(s, dataset=ds, version=version)
    body = b"".join(transfer.export_stream(factory, dataset=ds, version=version, fmt="jsonl"))
    lines = [line for line in body.decode().splitlines() if line]
    assert len(lines) == count
    return sorted(line.split('"')[3] for line in lines)


def test_reads_leave_pending_closings_out_at_every_version(factory, dataset):
    count, ends = _pending(factory, dataset)
    # Queued, not yet written into the records' rows (r-000 has a closed older revision and an open one).
    assert count == 3 and ends == [None, 2, None, None]
    assert sorted(_read(factory, dataset)) == _ids("r", 10)[3:]
    assert len(_read(factory, dataset, version=2)) == 10
    assert _read(factory, dataset, version=2)["r-000"] == {"q": "changed"}
    assert _read(factory, dataset, version=1)["r-000"] == {"q": "r-000"}
    assert _export(factory, dataset, 3) == _ids("r", 10)[3:]
    assert _export(factory, dataset, 2) == _ids("r", 10)


def test_a_writer_settles_first_and_sees_deleted_ids_as_gone(factory, dataset):
    # Deleting an id whose closing is pending: the writer settles, then finds the id not current.
    with pytest.raises(NotFound), unit_of_work(factory, write=True) as s:
        change_records(s, project_id=dataset[0], dataset_id=dataset[1], actor=ACTOR, deletes=["r-001"],
                       report_content=False)
    assert _pending(factory, dataset)[0] == 3, "the failed request's settling was rolled back with it"
    with unit_of_work(factory, write=True) as s:
        change_records(s, project_id=dataset[0], dataset_id=dataset[1], actor=ACTOR,
                       inserts=[NewRecord(id="r-001", input={"q": "back"})])
    count, ends = _pending(factory, dataset)
    assert count == 0 and ends == [3, 2, None, 3, 3]
    current = _read(factory, dataset)
    assert sorted(current) == ["r-001", *_ids("r", 10)[3:]]
    assert len(_read(factory, dataset, version=3)) == 7


def test_clone_and_restore_settle_and_copy_what_the_version_shows(factory, dataset):
    with unit_of_work(factory, write=True) as s:
        clone = clone_dataset(s, project_id=dataset[0], dataset_id=dataset[1], name="copy", description=None,
                              description_given=False, actor=ACTOR)
        clone_ids = (dataset[0], clone.id)
    assert _pending(factory, dataset)[0] == 0
    assert sorted(_read(factory, clone_ids)) == _ids("r", 10)[3:]
    # Delete again (pending), then restore version 2: all ten records are back.
    with unit_of_work(factory, write=True) as s:
        change_records(s, project_id=dataset[0], dataset_id=dataset[1], actor=ACTOR, deletes=["r-005"],
                       report_content=False)
    with unit_of_work(factory, write=True) as s:
        restore_version(s, project_id=dataset[0], dataset_id=dataset[1], version=2, actor=ACTOR)
    assert sorted(_read(factory, dataset)) == _ids("r", 10)
    assert sorted(_read(factory, dataset, version=4)) == sorted(set(_ids("r", 10)[3:]) - {"r-005"})


def test_upkeep_settles_after_commit_and_at_start_up(factory, dataset):
    with unit_of_work(factory, write=False) as s:
        jobs = unsettled(s)
    with unit_of_work(factory, write=False) as s:
        ds_pk = get_dataset(s, dataset_id=dataset[1]).pk
    assert any(job.dataset_pk == ds_pk for job in jobs)
    runner = UpkeepRunner(factory.kw["bind"], factory)
    runner.start()
    try:
        runner.submit(jobs)  # what the app does at start-up
        deadline = time.monotonic() + 15
        while _pending(factory, dataset)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        count, ends = _pending(factory, dataset)
        assert count == 0 and ends == [3, 2, 3, 3]
        # A delete committed while the runner is up is settled without anyone asking.
        with unit_of_work(factory, write=True) as s:
            change_records(s, project_id=dataset[0], dataset_id=dataset[1], actor=ACTOR, deletes=["r-009"],
                           report_content=False)
        deadline = time.monotonic() + 15
        while _pending(factory, dataset)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pending(factory, dataset)[0] == 0
        with unit_of_work(factory, write=False) as s:
            ds = get_dataset(s, dataset_id=dataset[1])
            closed = s.scalar(select(DatasetRecord.valid_to).where(DatasetRecord.dataset_pk == ds.pk,
                                                                   DatasetRecord.record_id == "r-009"))
        assert closed == 4
    finally:
        runner.stop()
    assert sorted(_read(factory, dataset)) == _ids("r", 10)[3:9]


def test_a_delete_naming_a_missing_id_queues_nothing(factory, dataset):
    with pytest.raises(NotFound), unit_of_work(factory, write=True) as s:
        change_records(s, project_id=dataset[0], dataset_id=dataset[1], actor=ACTOR,
                       deletes=["r-004", "nope"], report_content=False)
    with unit_of_work(factory, write=False) as s:
        assert s.scalar(text("SELECT count(*) FROM dataset_pending_closures c JOIN datasets d "
                             "ON d.pk = c.dataset_pk WHERE d.id = :id"), {"id": dataset[1]}) == 3
    assert "r-004" in _read(factory, dataset)


def test_a_server_settles_what_an_earlier_one_left_pending(factory, dataset, database_url, backend, tmp_path):
    # As if a server had stopped between a delete's commit and its settling: the next one to start
    # finishes the work (app lifespan: upkeep.submit(unsettled(...))).
    from tests.conftest import start_server, stop_server

    assert _pending(factory, dataset)[0] == 3
    srv = start_server(database_url, backend, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while _pending(factory, dataset)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pending(factory, dataset) == (0, [3, 2, 3, 3])
    finally:
        stop_server(srv)
        assert "Traceback" not in srv.log(), srv.log()
