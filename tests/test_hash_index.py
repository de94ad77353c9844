"""The content-hash index of `deduplicate`: entries written beside a transaction that rolls back match nothing.

On PostgreSQL the index rows of an insert are committed on a connection of their own while the
records go in (PostgresStore.start_index_hashes, on the SideWriter that a server opens with
datasets.service.open_resources), so a request that fails afterwards leaves them behind.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from kennel.datasets.models import DatasetRecordHash
from kennel.datasets.records import NewRecord, change_records, list_records
from kennel.datasets.service import get_dataset, open_resources
from kennel.db.session import unit_of_work
from kennel.keys.service import Actor
from tests.conftest import new_dataset_via_services

ACTOR = Actor(id="k-test", name="test")


class Boom(Exception):
    pass


@pytest.fixture
def served(factory):
    """The factory with what a server opens beside its requests (the side writer, on PostgreSQL)."""
    close = open_resources(factory.kw["bind"], factory)
    try:
        yield factory
    finally:
        close()


def test_index_rows_of_a_rolled_back_insert_do_not_deduplicate_anything(served):
    factory = served
    ids = new_dataset_via_services(factory, ACTOR)

    def append(*contents: str) -> int:
        with unit_of_work(factory, write=True) as s:
            _, result = change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR,
                                       inserts=[NewRecord(id=None, input={"q": c}) for c in contents])
            return len(result.records)

    assert append("a") == 1  # the first deduplicating insert indexes the dataset
    with pytest.raises(Boom), unit_of_work(factory, write=True) as s:
        change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR,
                       inserts=[NewRecord(id=None, input={"q": "b"})])
        raise Boom  # the request fails after its records (and index rows) were written
    with unit_of_work(factory, write=False) as s:
        dpk = get_dataset(s, dataset_id=ids[1]).pk
        left = s.scalar(select(func.count()).select_from(DatasetRecordHash)
                        .where(DatasetRecordHash.dataset_pk == dpk))
    assert left == (2 if factory.kw["bind"].dialect.name == "postgresql" else 1)
    # "b" is not a record, whatever the index holds: it goes in; "a" is one and is skipped.
    assert append("b", "a") == 1
    with unit_of_work(factory, write=False) as s:
        _, rows, _ = list_records(s, project_id=ids[0], dataset_id=ids[1], version=None, tags=None,
                                  cursor=None, limit=10)
    assert sorted(r.input.replace(" ", "") for r in rows) == ['{"q":"a"}', '{"q":"b"}']


def test_indexing_a_dataset_and_changing_tags_in_one_request(factory):
    # The first deduplicating insert indexes the open records inside the request's transaction; a record
    # of the same request whose tags alone change keeps its content hash, so its index key is one that
    # transaction has just written. Written beside the transaction, that key would wait on it for ever.
    ids = new_dataset_via_services(factory, ACTOR)
    with unit_of_work(factory, write=True) as s:
        change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR, deduplicate=False,
                       inserts=[NewRecord(id="r1", input={"q": "same"})])
    with unit_of_work(factory, write=True) as s:
        _, result = change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR, inserts=[
            NewRecord(id=None, input={"q": "new"}),
            NewRecord(id="r1", input={"q": "same"}, tags=["t:1"])])
    assert sorted(r.record_id == "r1" and r.tags == ["t:1"] for r in result.records) == [False, True]


@pytest.mark.parametrize("size", [1, 99, 100, 101, 250])
def test_every_record_and_index_row_of_an_insert_goes_in_whatever_its_size(factory, size):
    # SQLite writes rows in multi-row statements of storage.SQLITE_ROWS_PER_INSERT, then the rest one by one.
    ids = new_dataset_via_services(factory, ACTOR)

    def append(tag: str) -> list[str]:
        with unit_of_work(factory, write=True) as s:
            _, result = change_records(s, project_id=ids[0], dataset_id=ids[1], actor=ACTOR,
                                       inserts=[NewRecord(id=None, input={"n": i}, tags=[tag]) for i in range(size)])
            return [r.record_id for r in result.records]

    assert len(append("first")) == size
    assert append("again") == []  # each record's index row went in: all of them are duplicates now
    with unit_of_work(factory, write=False) as s:
        _, rows, _ = list_records(s, project_id=ids[0], dataset_id=ids[1], version=None, tags=None,
                                  cursor=None, limit=1000)
    assert sorted(int(r.input.split(":")[1].rstrip("}")) for r in rows) == list(range(size))
    assert {r.tags.replace(" ", "") for r in rows} == {'["first"]'}
