"""Each dataset version's facts (author, added, changed, deleted, record_count) as written with the version
row, checked against a recount of the records table done here, in Python, from every revision (both
backends): after inserts, updates, deletes, tag-only changes, amended versions, restores, clones,
deletes by id (pending closings), imports and workspace edits; and migration 0016's back-fill of a
database filled at 0015.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import select, text

from kennel.datasets import lifecycle
from kennel.datasets.models import Dataset, DatasetPendingClosure, DatasetRecord, DatasetVersion
from kennel.datasets.records import NewRecord, change_records
from kennel.datasets.schemas import RecordUpdateIn, TagOperations
from kennel.db.engine import make_engine
from kennel.db.migrate import alembic_config, upgrade
from kennel.db.session import make_sessionmaker, unit_of_work
from kennel.keys.service import Actor
from tests.conftest import create_database, new_dataset_via_services, unique
from tests.test_dataset_lifecycle_helpers import V1, make_dataset, make_project, ok_batch
from tests.test_upload import csv_bytes

ALICE = Actor(id="k-alice", name="alice")
BOB = Actor(id="k-bob", name="bob")
K = "/api/kennel/v1"
R = DatasetRecord.__table__.c
P = DatasetPendingClosure.__table__.c
V = DatasetVersion

Facts = dict[int, tuple[int, int, int, int]]


def recount(session: Any, dataset_id: str) -> Facts:
    """Every version's (added, changed, deleted, record_count), counted from the revisions alone."""
    dataset = session.scalars(select(Dataset).where(Dataset.id == dataset_id)).one()
    pending = {(seq, valid_from): valid_to for seq, valid_from, valid_to in session.execute(
        select(P.seq, P.valid_from, P.valid_to).where(P.dataset_pk == dataset.pk))}
    revisions = [(seq, valid_from, valid_to if valid_to is not None else pending.get((seq, valid_from)))
                 for seq, valid_from, valid_to in session.execute(
                     select(R.seq, R.valid_from, R.valid_to).where(R.dataset_pk == dataset.pk))]
    opened = Counter(valid_from for _, valid_from, _ in revisions)
    closed = Counter(valid_to for _, _, valid_to in revisions if valid_to is not None)
    closings = {(seq, valid_to) for seq, _, valid_to in revisions if valid_to is not None}
    same = Counter(valid_from for seq, valid_from, _ in revisions if (seq, valid_from) in closings)
    facts: Facts = {}
    for v in range(dataset.current_version + 1):
        held = sum(1 for _, valid_from, valid_to in revisions if valid_from <= v and (valid_to is None or valid_to > v))
        facts[v] = (opened[v] - same[v], same[v], closed[v] - same[v], held)
    return facts


def written(session: Any, dataset_id: str) -> tuple[Facts, dict[int, str | None]]:
    """The facts and authors the version rows hold."""
    rows = session.execute(select(V.version_number, V.added, V.changed, V.deleted, V.record_count, V.author_id)
                           .join(Dataset, Dataset.pk == V.dataset_pk).where(Dataset.id == dataset_id)).all()
    return ({r[0]: (r[1], r[2], r[3], r[4]) for r in rows}, {r[0]: r[5] for r in rows})


def check(factory: Any, dataset_id: str) -> dict[int, str | None]:
    """Assert the written facts equal the recount; return the versions' authors."""
    with unit_of_work(factory, write=False) as s:
        expected = recount(s, dataset_id)
        facts, authors = written(s, dataset_id)
    assert facts == expected
    return authors


def _change(factory: Any, ids: tuple[str, str], actor: Actor = ALICE, **kwargs: Any) -> int:
    with unit_of_work(factory, write=True) as s:
        _, result = change_records(s, project_id=ids[0], dataset_id=ids[1], actor=actor, **kwargs)
    return result.version


def _records(*ids: str, **content: Any) -> list[NewRecord]:
    return [NewRecord(id=rid, input={"q": rid, **content}) for rid in ids]


def test_facts_equal_a_recount_after_every_kind_of_change(factory):
    ids = new_dataset_via_services(factory, ALICE)
    assert _change(factory, ids, inserts=_records("a", "b", "c", "d")) == 1
    assert _change(factory, ids, actor=BOB, updates=[RecordUpdateIn(id="a", input={"q": "a2"})],
                   inserts=_records("e"), deletes=["b"]) == 2
    # A tag-only change is a change; an identical re-send changes nothing and makes no version.
    assert _change(factory, ids, updates=[RecordUpdateIn(id="c", tag_operations=TagOperations(add=["t"]))]) == 3
    assert _change(factory, ids, inserts=[NewRecord(id="d", input={"q": "d"})]) == 3
    # Amending version 4 (create_new_version=false) in three batches: the later ones replace and drop
    # revisions the version itself opened, both records it added (f, g) and records it changed (a, c).
    assert _change(factory, ids, inserts=_records("f", "g"), updates=[
        RecordUpdateIn(id="a", input={"q": "a3"}), RecordUpdateIn(id="c", input={"q": "c3"})]) == 4
    assert _change(factory, ids, create_new_version=False, inserts=_records("h"),
                   updates=[RecordUpdateIn(id="f", input={"q": "f2"}), RecordUpdateIn(id="a", input={"q": "a4"})],
                   deletes=["g"]) == 4
    assert _change(factory, ids, create_new_version=False, deletes=["c", "f"]) == 4
    assert check(factory, ids[1])[4] == ALICE.id
    # Amending with only new records (the append path).
    assert _change(factory, ids, create_new_version=False, inserts=_records("i", "j")) == 4
    # Deletes answered with 204 queue their closings; the recount reads them as closings.
    assert _change(factory, ids, actor=BOB, deletes=["d", "e"], report_content=False) == 5
    authors = check(factory, ids[1])
    assert authors == {0: None, 1: ALICE.id, 2: BOB.id, 3: ALICE.id, 4: ALICE.id, 5: BOB.id}
    # A later write settles them; the facts stay what they were.
    assert _change(factory, ids, inserts=_records("k")) == 6
    with unit_of_work(factory, write=False) as s:
        facts, _ = written(s, ids[1])
    assert facts[4] == (3, 1, 1, 6) and facts[5] == (0, 0, 2, 4) and facts[6] == (1, 0, 0, 5)
    check(factory, ids[1])


def test_restore_and_clone_record_their_facts_and_author(factory):
    ids = new_dataset_via_services(factory, ALICE)
    _change(factory, ids, inserts=_records("a", "b", "c"))
    _change(factory, ids, updates=[RecordUpdateIn(id="a", input={"q": "a2"})], deletes=["b"], inserts=_records("d"))
    _change(factory, ids, deletes=["c"], report_content=False)
    with unit_of_work(factory, write=True) as s:
        assert lifecycle.restore_version(s, project_id=ids[0], dataset_id=ids[1], version=1,
                                         actor=BOB).current_version == 4
    # Restoring the version that is current changes nothing, and still says who restored.
    with unit_of_work(factory, write=True) as s:
        lifecycle.restore_version(s, project_id=ids[0], dataset_id=ids[1], version=4, actor=ALICE)
    with unit_of_work(factory, write=True) as s:
        lifecycle.restore_version(s, project_id=ids[0], dataset_id=ids[1], version=0, actor=BOB)
    authors = check(factory, ids[1])
    assert (authors[4], authors[5], authors[6]) == (BOB.id, ALICE.id, BOB.id)
    with unit_of_work(factory, write=False) as s:
        facts, _ = written(s, ids[1])
    assert facts[4] == (2, 1, 1, 3) and facts[5] == (0, 0, 0, 3) and facts[6] == (0, 0, 3, 0)

    with unit_of_work(factory, write=True) as s:
        lifecycle.restore_version(s, project_id=ids[0], dataset_id=ids[1], version=2, actor=ALICE)
    with unit_of_work(factory, write=True) as s:
        clone = lifecycle.clone_dataset(s, project_id=ids[0], dataset_id=ids[1], name=unique("clone"),
                                        description=None, description_given=False, actor=BOB).id
    assert check(factory, clone) == {0: None, 1: BOB.id}
    with unit_of_work(factory, write=False) as s:
        assert written(s, clone)[0] == {0: (0, 0, 0, 0), 1: (3, 0, 0, 3)}
    _change(factory, (ids[0], clone), deletes=["a"])
    check(factory, clone)
    check(factory, ids[1])


def test_api_paths_and_the_versions_listing(server, http, factory):
    """Appends, batch updates, deletes by id, a ddtrace CSV import, workspace edits, restore and clone
    over HTTP; the Kennel versions listing shows each version's count and who made it."""
    name = unique("restorer")
    api, app = server.new_key(name)
    pid = make_project(http)
    did = make_dataset(http, pid)
    r = http.post(f"{V1}/{pid}/datasets/{did}/records", json={"data": {"type": "records", "attributes": {
        "records": [{"input": {"n": i}} for i in range(5)]}}})
    assert r.status_code == 200, r.text
    first = r.json()["data"][0]["id"]
    ok_batch(http, pid, did, inserts=[{"id": "x", "input": 1, "tags": ["a"]}],
             updates=[{"id": first, "tag_operations": {"add": ["t"]}}])
    r = http.post(f"{V1}/{pid}/datasets/{did}/records/delete",
                  json={"data": {"type": "records", "attributes": {"record_ids": [first, "x"]}}})
    assert r.status_code == 204, r.text
    r = http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload",
                  files={"file": ("data.csv", csv_bytes([[f"u{i}", f"q{i}", "", "", ""] for i in range(30)]),
                                  "text/csv")})
    assert r.status_code == 200, r.text
    r = http.post(f"{K}/datasets/{did}/records/save", json={"data": {"type": "records", "attributes": {
        "id": "u1", "input": "edited"}}})
    assert r.status_code == 200, r.text
    with server.client(headers={"DD-API-KEY": api, "DD-APPLICATION-KEY": app}) as restorer:
        for version in (2, 6):
            r = restorer.post(f"{V1}/{pid}/datasets/{did}/restore", json={"data": {
                "type": "datasets", "id": did, "attributes": {"dataset_version": version}}})
            assert r.status_code in (200, 204), r.text
    r = http.post(f"{V1}/{pid}/datasets/{did}/clone", json={"data": {"type": "datasets", "id": did,
                                                                     "attributes": {"name": unique("c")}}})
    assert r.status_code == 200, r.text
    clone = r.json()["data"]["id"]
    check(factory, did)
    check(factory, clone)

    r = http.get(f"{K}/datasets/{did}/versions")
    assert r.status_code == 200, r.text
    rows = {int(i["id"]): i["attributes"] for i in r.json()["data"]}
    assert [rows[v]["record_count"] for v in range(8)] == [0, 5, 6, 4, 34, 34, 6, 6]
    assert rows[1]["author"] == "test-suite" and rows[1]["author_id"]
    assert (rows[6]["added"], rows[6]["changed"], rows[6]["deleted"]) == (2, 0, 30)
    # Restoring the current version changes nothing, and says who restored.
    assert rows[6]["author"] == rows[7]["author"] == name
    assert (rows[7]["added"], rows[7]["changed"], rows[7]["deleted"]) == (0, 0, 0)
    r = http.get(f"{K}/datasets", params={"project_id": pid})
    counts = {d["id"]: (d["attributes"]["record_count"], d["attributes"]["last_author"]) for d in r.json()["data"]}
    assert counts == {did: (6, name), clone: (6, "test-suite")}


def test_versions_listing_is_documented(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    answer = spec["paths"]["/api/kennel/v1/datasets/{dataset_id}/versions"]["get"]["responses"]["200"]
    ref = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    resource = spec["components"]["schemas"][ref]["properties"]["data"]["items"]["$ref"].rsplit("/", 1)[-1]
    attributes = spec["components"]["schemas"][resource]["properties"]["attributes"]["$ref"].rsplit("/", 1)[-1]
    assert {"record_count", "author", "author_id", "added", "changed", "deleted"} <= set(
        spec["components"]["schemas"][attributes]["properties"])


# Migration 0016 ---------------------------------------------------------------------------------------

def _migration() -> Any:
    path = Path(__file__).resolve().parent.parent / "src/kennel/db/migrations/versions/0016_version_facts.py"
    spec = importlib.util.spec_from_file_location("migration_0016", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fresh(backend, tmp_path_factory):
    """An engine on a database of its own (migrations go down and up on it)."""
    gen = create_database(backend, tmp_path_factory)
    engine = make_engine(next(gen))
    upgrade(engine)
    yield engine
    engine.dispose()
    next(gen, None)


def _fill(factory: Any) -> list[str]:
    """Two datasets with every kind of version, closings of the last delete left pending."""
    ids = new_dataset_via_services(factory, ALICE)
    _change(factory, ids, inserts=_records("a", "b", "c", "d"))
    _change(factory, ids, actor=BOB, updates=[RecordUpdateIn(id="a", input={"q": "a2"})], deletes=["b"])
    _change(factory, ids, updates=[RecordUpdateIn(id="c", tag_operations=TagOperations(add=["t"]))])
    _change(factory, ids, create_new_version=False, inserts=_records("e"), deletes=["c"])
    with unit_of_work(factory, write=True) as s:
        lifecycle.restore_version(s, project_id=ids[0], dataset_id=ids[1], version=2, actor=BOB)
    with unit_of_work(factory, write=True) as s:
        clone = lifecycle.clone_dataset(s, project_id=ids[0], dataset_id=ids[1], name=unique("clone"),
                                        description=None, description_given=False, actor=BOB).id
    _change(factory, ids, deletes=["a", "d"], report_content=False)
    with unit_of_work(factory, write=False) as s:
        assert s.scalar(select(Dataset.closures_pending).where(Dataset.id == ids[1]))
    return [ids[1], clone]


@pytest.mark.parametrize("update_from", [True, False], ids=["update-from", "correlated"])
def test_migration_backfills_the_facts_of_a_database_filled_at_0015(fresh, backend, update_from):
    if backend != "sqlite" and not update_from:
        pytest.skip("the correlated form is SQLite's before 3.33")
    factory = make_sessionmaker(fresh)
    datasets = _fill(factory)
    with unit_of_work(factory, write=False) as s:
        live = {d: written(s, d) for d in datasets}
    cfg = alembic_config(fresh)
    command.downgrade(cfg, "0015")
    with fresh.begin() as conn:
        columns = {row[1] for row in conn.execute(text("SELECT * FROM dataset_versions LIMIT 0")).cursor.description}
    assert "record_count" not in columns
    if update_from:
        command.upgrade(cfg, "head")
    else:
        # The same steps as the migration's upgrade, with the fallback for SQLite without UPDATE ... FROM.
        command.upgrade(cfg, "0015")
        with fresh.begin() as conn:
            for name in ("added", "changed", "deleted", "record_count"):
                conn.execute(text(f"ALTER TABLE dataset_versions ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0"))
            conn.execute(text("ALTER TABLE dataset_versions ADD COLUMN author_id VARCHAR(36)"))
            _migration().backfill(conn, update_from=False)
            conn.execute(text("UPDATE alembic_version SET version_num = '0016'"))
    for dataset_id in datasets:
        authors = check(factory, dataset_id)
        with unit_of_work(factory, write=False) as s:
            facts, _ = written(s, dataset_id)
            pk = s.scalar(select(Dataset.pk).where(Dataset.id == dataset_id))
            opened_by: dict[int, set[str]] = {}
            for valid_from, author in s.execute(select(R.valid_from, R.author_id).where(R.dataset_pk == pk)):
                opened_by.setdefault(valid_from, set()).add(author)
        assert facts == live[dataset_id][0]
        # A back-filled author is one of a revision the version opened (none for a pure delete).
        assert authors == {v: max(opened_by[v]) if v in opened_by else None for v in facts}
