"""Record changes and reads: a route's call, planned (plan.py), then carried out by the store (store.py).

A change reads the current states of the records it names, plans, and writes the plan with a few
set-based statements, so a large batch costs a handful of statements, not one per record. Two shapes of
change skip work the general plan would do:

- a delete that reports nothing back queues its closings (store.queue_closures) without reading states;
- a change that only adds new records streams them: each is checked, hashed and made into a row just
  before it goes out (plan.new_states), so PostgreSQL takes in the first rows while the next are made.

Either way a request that fails validation is rolled back whole by its unit of work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset
from kennel.datasets.plan import (
    Change,
    Insert,
    NewRecord,
    Part,
    Plan,
    PlanError,
    Prepared,
    RecordState,
    Tally,
    check_change,
    content_hash,
    kept,
    new_states,
    next_version,
    normalize_tags,
    plan_change,
    prepare_inserts,
    referenced_ids,
)
from kennel.datasets.schemas import RecordUpdateIn
from kennel.datasets.service import ensure_writable, get_dataset, record_version
from kennel.datasets.store import RecordStore, store_for
from kennel.db.base import utcnow
from kennel.errors import Invalid, NotFound
from kennel.ids import listing
from kennel.keys.service import Actor

__all__ = ["Change", "ChangeResult", "NewRecord", "RecordState", "apply_changes", "change_records", "check_version",
           "content_hash", "list_records", "normalize_tags"]

# What a change reports: its version, whether it changed anything, and the records it named.
ChangeResult = Plan

# Where each part of a change sits in the request body, for error pointers: (inserts, updates, deletes).
Pointers = tuple[str, str, str]
BATCH_POINTERS: Pointers = ("/data/attributes/insert_records", "/data/attributes/update_records",
                            "/data/attributes/delete_records")
_PARTS: tuple[Part, Part, Part] = ("inserts", "updates", "deletes")

# Inserts are hashed this many at a time when deduplicating, each part's lookup sent before the next
# part is hashed (store.existing_hashes).
_HASH_PART = 250


def _prepare_all(store: RecordStore, dataset: Dataset, change: Change) -> tuple[list[Prepared], set[str]]:
    """Every insert prepared, and, when inserts without an id are to be deduplicated, which of their
    hashes an open record of the dataset has already."""
    prepared: list[Prepared] = []
    inserts = change.inserts

    def parts() -> Iterator[list[str]]:
        """Prepare the inserts a part at a time, yielding each part's hashes of records without an id."""
        for start in range(0, len(inserts), _HASH_PART):
            anonymous = []
            for item in prepare_inserts(change, start, min(start + _HASH_PART, len(inserts))):
                prepared.append(item)
                if item[0].id is None:
                    anonymous.append(item[2])
            yield anonymous

    if change.deduplicate and any(rec.id is None for rec in inserts):
        if not dataset.content_indexed:
            store.build_hash_index(dataset.pk)
            dataset.content_indexed = True
        return prepared, store.existing_hashes(dataset.pk, parts())
    for _ in parts():
        pass
    return prepared, set()


def apply_changes(session: Session, *, dataset: Dataset, actor: Actor, change: Change, report_content: bool = True,
                  pointers: Pointers = BATCH_POINTERS, ids_are_new: bool = False) -> ChangeResult:
    """Apply one change to `dataset` (taken for writing by the caller: locked and settled).

    Inserts carrying an id that is already current replace that record (upsert), as ddtrace re-sends
    records after a bulk upload. A change that alters nothing creates no version. With
    `report_content=False` (a caller that answers 204) a pure delete closes the records without reading
    them back. `ids_are_new` is the caller's word that no insert's id is a current record.
    """
    ensure_writable(dataset, actor)
    try:
        check_change(change, {part: pointer.rsplit("/", 1)[-1] for part, pointer in zip(_PARTS, pointers, strict=True)})
        return _apply(store_for(session), session, dataset, actor, change, report_content=report_content,
                      ids_are_new=ids_are_new)
    except PlanError as exc:
        base = pointers[_PARTS.index(exc.part)]
        exc.error.pointer = base + (exc.error.pointer or "")
        raise exc.error from None


def _apply(store: RecordStore, session: Session, dataset: Dataset, actor: Actor, change: Change, *,
           report_content: bool, ids_are_new: bool) -> ChangeResult:
    now = utcnow()
    if not report_content and change.deletes and not change.inserts and not change.updates \
            and change.create_new_version:
        return _close_only(store, session, dataset, actor, change.deletes, now)
    referenced = referenced_ids(change, ids_are_new=ids_are_new)
    current = store.current_states(dataset.pk, referenced) if referenced else {}
    if change.inserts and not change.updates and not change.deletes and not current:
        return _insert_new(store, session, dataset, actor, change, now)

    prepared, seen_hashes = _prepare_all(store, dataset, change)
    plan = plan_change(change, kept(prepared, seen_hashes, change.deduplicate), current=current,
                       current_version=dataset.current_version, author_id=actor.id, now=now,
                       dataset_label=dataset.id)
    if plan.changed:
        if plan.undone:
            plan.count_undone(store.changed_at(dataset.pk, [s.seq for s in plan.undone if s.seq is not None],
                                               plan.version))
        _write(store, dataset, plan)
        record_version(session, dataset, version=plan.version, author_id=actor.id, tally=plan.tally, now=now)
    return plan


def _close_only(store: RecordStore, session: Session, dataset: Dataset, actor: Actor, deletes: Sequence[str],
                now: datetime) -> ChangeResult:
    """A delete that reports nothing back, as one new version: its closings are queued (see
    models.DatasetPendingClosure) rather than written into each record's row."""
    version = dataset.current_version + 1
    closed = store.queue_closures(dataset, deletes, version)
    missing = [rid for rid in deletes if rid not in closed]
    if missing:
        raise PlanError("deletes", NotFound(f"record(s) not found in dataset {dataset.id}: {listing(missing)}; "
                                            "nothing was deleted", pointer=""))
    tally = Tally(deleted=len(closed))
    record_version(session, dataset, version=version, author_id=actor.id, tally=tally, now=now)
    return ChangeResult(version=version, changed=True, tally=tally)


def _insert_new(store: RecordStore, session: Session, dataset: Dataset, actor: Actor, change: Change,
                now: datetime) -> ChangeResult:
    """A change that only adds records, none of them naming a current record (the import and append path).

    Where there is no content to compare with the dataset's and no content index to keep beside, each
    record is checked, hashed and made into a row just before it goes out. A record that fails its
    checks half-way raises out of the write; the request's transaction is rolled back and nothing is
    kept, as when the checks ran first.
    """
    result = ChangeResult(version=next_version(dataset.current_version, change), changed=True)
    first = dataset.next_seq
    deduplicating = change.deduplicate and any(rec.id is None for rec in change.inserts)
    if not dataset.content_indexed and not deduplicating:
        store.insert(dataset.pk, result.version,
                     new_states(prepare_inserts(change), result.records, first_seq=first, author_id=actor.id,
                                now=now))
    else:
        prepared, seen_hashes = _prepare_all(store, dataset, change)
        for _ in new_states(kept(prepared, seen_hashes, change.deduplicate), result.records, first_seq=first,
                            author_id=actor.id, now=now):
            pass
        if not result.records:
            return ChangeResult(version=dataset.current_version, changed=False)
        # The dataset is indexed by now: it was, or the lookup above has just indexed it.
        finish_index = store.start_index_hashes(dataset.pk, result.records)
        try:
            store.insert(dataset.pk, result.version, result.records)
        finally:
            finish_index()
    result.insert = result.records
    dataset.next_seq = first + len(result.records)
    store.refresh_statistics(first, dataset.next_seq)
    result.tally.added = len(result.records)
    record_version(session, dataset, version=result.version, author_id=actor.id, tally=result.tally, now=now)
    return result


def _write(store: RecordStore, dataset: Dataset, plan: Plan) -> None:
    store.close(plan.version, plan.close)
    fresh = [s for s in plan.insert if s.seq is None]
    first = dataset.next_seq
    for offset, state in enumerate(fresh):
        state.seq = first + offset
    dataset.next_seq = first + len(fresh)
    finish_index = store.start_index_hashes(dataset.pk, plan.insert) if dataset.content_indexed else None
    try:
        store.insert(dataset.pk, plan.version, plan.insert)
    finally:
        if finish_index is not None:
            finish_index()
    if fresh:
        store.refresh_statistics(first, dataset.next_seq)


def change_records(session: Session, *, project_id: str, dataset_id: str, actor: Actor,
                   inserts: Sequence[Insert] = (), updates: Sequence[RecordUpdateIn] = (),
                   deletes: Sequence[str] = (), create_new_version: bool = True, deduplicate: bool = True,
                   common_tags: Sequence[str] | None = None, report_content: bool = True,
                   pointers: Pointers = BATCH_POINTERS) -> tuple[Dataset, ChangeResult]:
    """Take the dataset for writing and apply one change to its records (see `apply_changes`)."""
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    change = Change(inserts=inserts, updates=updates, deletes=deletes, create_new_version=create_new_version,
                    deduplicate=deduplicate, common_tags=common_tags)
    return dataset, apply_changes(session, dataset=dataset, actor=actor, change=change,
                                  report_content=report_content, pointers=pointers)


def check_version(dataset: Dataset, version: int | None, *, parameter: str = "filter[version]") -> int:
    if version is None:
        return dataset.current_version
    if version < 0 or version > dataset.current_version:
        # Same words as the hosted API (ddtrace shows them to the user).
        raise Invalid("invalid version: version is greater than the current version or negative",
                      parameter=parameter)
    return version


def list_records(session: Session, *, project_id: str, dataset_id: str, version: int | None,
                 tags: Sequence[str] | None, cursor: tuple[int, int] | None,
                 limit: int) -> tuple[Dataset, list[Row[Any]], tuple[int, int] | None]:
    """A page of records (rows of store.PAGE_FIELDS, see RecordStore.page) and the (seq, version)
    cursor of the next page.

    The cursor pins the version read on the first page, so a dataset that changes while a client
    pages through it still yields one consistent version.
    """
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
    if cursor is not None:
        after_seq, version = cursor
        check_version(dataset, version, parameter="page[cursor]")
    else:
        after_seq, version = None, check_version(dataset, version)
    rows = store_for(session).page(dataset, version, tags=tags, after_seq=after_seq, limit=limit + 1)
    next_cursor = (rows[limit - 1].seq, version) if len(rows) > limit else None
    return dataset, rows[:limit], next_cursor
