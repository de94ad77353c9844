"""Every column of a record revision survives every path that copies revisions (both backends).

Restore and clone copy revisions in SQL; they once listed their own columns and dropped each record's
author. These tests compare the copied rows with their sources over all of the table's columns, so a
column added to the model and left out of a copy path fails here, whatever its name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kennel.datasets.models import (
    RECORD_FIELDS,
    REVISION_COLUMNS,
    Dataset,
    DatasetRecord,
)
from kennel.db.session import unit_of_work
from tests.conftest import unique
from tests.test_dataset_lifecycle_helpers import (
    V1,
    make_dataset,
    make_project,
    ok_batch,
)

T = DatasetRecord.__table__
# The columns a copy sets itself; every other column of the table must be carried over.
INTERVAL = {"pk", "dataset_pk", "valid_from", "valid_to"}


def _rows(factory: Any, dataset_id: str) -> list[dict[str, Any]]:
    """Every revision of a dataset, every column, as the table holds it."""
    with unit_of_work(factory, write=False) as s:
        pk = s.scalar(select(Dataset.pk).where(Dataset.id == dataset_id))
        return [dict(row._mapping) for row in s.execute(select(T).where(T.c.dataset_pk == pk).order_by(T.c.pk))]


def _carried(row: dict[str, Any], leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in INTERVAL | leave_out}


def test_the_column_lists_cover_the_table() -> None:
    assert set(REVISION_COLUMNS) | {"pk"} == {c.name for c in T.c}
    assert set(RECORD_FIELDS) == {c.name for c in T.c} - INTERVAL


def _history(server: Any) -> tuple[str, str]:
    """A dataset whose records were written by another key than the one that restores or clones it."""
    api, app = server.new_key(unique("writer"))
    with server.client(headers={"DD-API-KEY": api, "DD-APPLICATION-KEY": app}) as writer:
        pid = make_project(writer)
        did = make_dataset(writer, pid)
        ok_batch(writer, pid, did, inserts=[
            {"id": "a", "input": {"q": "a"}, "expected_output": "A", "metadata": {"m": 1}, "tags": ["t:1"]},
            {"id": "b", "input": "b", "tags": ["x", "y"]},
            {"id": "c", "input": [1, 2], "expected_output": {"x": None}},
        ])
        ok_batch(writer, pid, did, updates=[{"id": "a", "input": {"q": "a2"}}], deletes=["b"])
    return pid, did


def test_restore_keeps_every_column(server, http, factory) -> None:
    pid, did = _history(server)
    before = _rows(factory, did)
    at_v1 = {r["record_id"]: r for r in before if r["valid_from"] <= 1 and (r["valid_to"] is None or r["valid_to"] > 1)}
    r = http.post(f"{V1}/{pid}/datasets/{did}/restore",
                  json={"data": {"type": "datasets", "id": did, "attributes": {"dataset_version": 1}}})
    assert r.status_code == 200, r.text
    after = _rows(factory, did)
    copies = {row["record_id"]: row for row in after if row["valid_from"] == 3}
    # a (changed since) and b (deleted since) come back as copies; c never changed and stays as it was.
    assert sorted(copies) == ["a", "b"]
    for rid, copy in copies.items():
        assert copy["author_id"] is not None
        assert _carried(copy) == _carried(at_v1[rid]), rid
    # And the API reads back what was restored, authors included.
    page = http.get(f"{V1}/{pid}/datasets/{did}/records").json()["data"]
    assert {item["id"]: item["attributes"]["author"]["id"] for item in page} == {
        rid: row["author_id"] for rid, row in at_v1.items()}


def test_clone_keeps_every_column_but_the_canonical_id(server, http, factory) -> None:
    pid, did = _history(server)
    source = {r["record_id"]: r for r in _rows(factory, did) if r["valid_to"] is None}
    r = http.post(f"{V1}/{pid}/datasets/{did}/clone",
                  json={"data": {"type": "datasets", "id": did, "attributes": {"name": unique("clone")}}})
    assert r.status_code == 200, r.text
    clone = {row["record_id"]: row for row in _rows(factory, r.json()["data"]["id"])}
    assert sorted(clone) == sorted(source) == ["a", "c"]
    for rid, copy in clone.items():
        assert (copy["valid_from"], copy["valid_to"]) == (1, None)
        assert copy["canonical_id"] != source[rid]["canonical_id"]
        assert copy["author_id"] is not None
        assert _carried(copy, frozenset({"canonical_id"})) == _carried(source[rid], frozenset({"canonical_id"})), rid
