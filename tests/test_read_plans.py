"""Record pages walk the records in keyset order on SQLite, for the current version and for past ones.

SQLite's planner has no statistics here. It once read a past version through ix_dataset_records_opened
(`valid_from <= v` looks selective to it) and sorted every visible revision before answering the first
page: 9 s for the first page of version 1 of a million-record dataset, against 15 ms for the next. The
plans below must read an index in `seq` order and never sort. (PostgreSQL plans from statistics, so a
plan on an empty database says nothing about a large one; its pages are timed by bench_datasets.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, true
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset
from kennel.datasets.store import store_for
from kennel.datasets.workspace import records_page
from kennel.db.engine import make_engine
from kennel.db.migrate import upgrade
from kennel.db.session import make_sessionmaker


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def plans(session: Session, read: Any) -> list[str]:
    """The query plan of every statement `read` runs, as EXPLAIN QUERY PLAN details."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        read()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements, "the read ran no SELECT"
    conn = session.connection()
    return [" | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in statements]


# A dataset at version 5 whose deletes are settled, and one with closings still pending.
DATASETS = [Dataset(pk=1, current_version=5, closures_pending=False),
            Dataset(pk=1, current_version=5, closures_pending=True)]


@pytest.mark.parametrize("dataset", DATASETS, ids=["settled", "pending"])
@pytest.mark.parametrize("version", [1, 5], ids=["past", "current"])
@pytest.mark.parametrize("tags", [None, ["lang:fr"]], ids=["all", "tagged"])
@pytest.mark.parametrize("after_seq", [None, 5000], ids=["first", "next"])
def test_api_record_pages_never_sort(session: Session, dataset: Dataset, version: int, tags: list[str] | None,
                                     after_seq: int | None) -> None:
    store = store_for(session)
    for plan in plans(session, lambda: store.page(dataset, version, tags=tags, after_seq=after_seq, limit=1000)):
        assert "TEMP B-TREE" not in plan, plan
        assert "ix_dataset_records_seq" in plan or "ix_dataset_records_current_seq" in plan, plan


@pytest.mark.parametrize("version", [1, 5], ids=["past", "current"])
@pytest.mark.parametrize("after_seq", [None, 5000], ids=["first", "next"])
def test_workspace_record_pages_never_sort(session: Session, version: int, after_seq: int | None) -> None:
    dataset = DATASETS[0]
    for plan in plans(session, lambda: records_page(session, dataset=dataset, version=version, where=true(),
                                                    after_seq=after_seq, limit=50)):
        assert "TEMP B-TREE" not in plan, plan
