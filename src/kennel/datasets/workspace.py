"""Reads and edits of the dataset workspace: datasets with their figures, pages of records of any version
(filtered), one record's revisions, and edits that refuse to overwrite a change made since the editor
opened the record.

Reads go through the validity intervals (models.py) and leave out revisions whose closing is still
pending, as records.py does; writes go through records.apply_changes, as the API's do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, literal_column, select
from sqlalchemy.orm import Session

from kennel.datasets import records as record_changes
from kennel.datasets.models import Dataset, DatasetPendingClosure, DatasetRecord, DatasetVersion
from kennel.datasets.records import Change, ChangeResult, NewRecord
from kennel.datasets.service import get_dataset, list_datasets
from kennel.datasets.store import store_for
from kennel.errors import Conflict, NotFound
from kennel.keys.models import ApiKey
from kennel.keys.service import Actor
from kennel.people.models import User

R = DatasetRecord.__table__.c
P = DatasetPendingClosure.__table__.c
CONTENT = (R.input, R.expected_output, R.metadata)
REVISION_COLUMNS = (R.pk, R.record_id, R.seq, R.valid_from, R.valid_to, R.content_hash, R.tags, R.author_id,
                    R.created_at, R.updated_at, *CONTENT)


@dataclass(slots=True)
class Revision:
    """One stored state of a record, valid for versions [valid_from, valid_to)."""

    pk: int
    record_id: str
    seq: int
    valid_from: int
    valid_to: int | None
    content_hash: str
    tags: list[str]
    author_id: str | None
    created_at: datetime
    updated_at: datetime
    input: Any = None
    expected_output: Any = None
    metadata: Any = None

    def visible_at(self, version: int) -> bool:
        return self.valid_from <= version and (self.valid_to is None or self.valid_to > version)

    @property
    def content(self) -> dict[str, Any]:
        return {"input": self.input, "expected_output": self.expected_output, "metadata": self.metadata,
                "tags": self.tags}


def revision(row: Any) -> Revision:
    return Revision(row.pk, row.record_id, row.seq, row.valid_from, row.valid_to, row.content_hash,
                    list(row.tags or []), row.author_id, row.created_at, row.updated_at,
                    *(getattr(row, name, None) for name in ("input", "expected_output", "metadata")))


def pending_closings(session: Session, dataset: Dataset, seqs: Iterable[int]) -> dict[tuple[int, int], int]:
    """(seq, valid_from) -> the version a pending delete closes that revision at."""
    wanted = sorted(set(seqs))
    if not dataset.closures_pending or not wanted:
        return {}
    found: dict[tuple[int, int], int] = {}
    for start in range(0, len(wanted), 5000):
        rows = session.execute(select(P.seq, P.valid_from, P.valid_to).where(
            P.dataset_pk == dataset.pk, P.seq.in_(wanted[start:start + 5000]))).all()
        found.update({(r.seq, r.valid_from): r.valid_to for r in rows})
    return found


def settle_in_memory(session: Session, dataset: Dataset, revisions: list[Revision]) -> list[Revision]:
    """Give open revisions the closing a pending delete has decided for them."""
    closing = pending_closings(session, dataset, (r.seq for r in revisions if r.valid_to is None))
    for rev in revisions:
        if rev.valid_to is None:
            rev.valid_to = closing.get((rev.seq, rev.valid_from))
    return revisions


def revisions_of(session: Session, dataset: Dataset, record_id: str) -> list[Revision]:
    """Every stored state of a record id, oldest first: its open revision by the current-id index, its
    closed ones by the closed-id index (workspace_models), so the cost is that of the record's history."""
    open_rows = store_for(session).current(dataset.pk, [record_id], REVISION_COLUMNS)
    # `dataset_pk + 0`: no index may lead with the dataset here. SQLite otherwise walked every closed
    # revision of the dataset (ix_dataset_records_closed) instead of probing this record's: 330 ms
    # against 0.1 at 100,000 records.
    closed = session.execute(select(*REVISION_COLUMNS).where(
        R.record_id == record_id, R.record_id.is_not(None), R.dataset_pk + literal_column("0") == dataset.pk,
        R.valid_to.is_not(None))).all()
    revisions = [revision(r) for r in (*open_rows, *closed)]
    return sorted(settle_in_memory(session, dataset, revisions), key=lambda r: (r.valid_from, r.pk))


def record_at(session: Session, dataset: Dataset, record_id: str, version: int) -> Revision:
    for rev in revisions_of(session, dataset, record_id):
        if rev.visible_at(version):
            return rev
    raise NotFound(f"record {record_id!r} is not in version {version} of dataset {dataset.id}")


def author_names(session: Session, ids: Iterable[str | None]) -> dict[str, str]:
    """Authors are people (their user id) or key pairs made before people existed (the pair's id)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())
    rest = [i for i in wanted if i not in names]
    if rest:
        names.update(session.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(rest))).all())
    return names


# Datasets of a project -------------------------------------------------------------------------------

@dataclass(slots=True)
class DatasetSummary:
    dataset: Dataset
    record_count: int
    last_author: str | None


def summaries(session: Session, *, project_id: str, search: str | None, before_pk: int | None,
              limit: int) -> list[DatasetSummary]:
    """A page of a project's datasets (newest first) with their record counts and who made the last change,
    both read from the current version's row (models.DatasetVersion): one query for the page."""
    rows = list_datasets(session, project_id=project_id, ids=None, name=None, search=search, before_pk=before_pk,
                         limit=limit)
    V = DatasetVersion
    facts: dict[int, tuple[int, str | None]] = {
        pk: (count, author) for pk, count, author in session.execute(
            select(V.dataset_pk, V.record_count, V.author_id)
            .join(Dataset, and_(Dataset.pk == V.dataset_pk, Dataset.current_version == V.version_number))
            .where(V.dataset_pk.in_([d.pk for d in rows])))} if rows else {}
    names = author_names(session, (author for _, author in facts.values()))
    summaries = []
    for d in rows:
        count, author = facts.get(d.pk, (0, None))
        summaries.append(DatasetSummary(d, count, names.get(author or "", author)))
    return summaries


# Pages of records ------------------------------------------------------------------------------------

@dataclass(slots=True)
class RecordsPage:
    rows: list[Any]
    next_seq: int | None
    version: int


def records_page(session: Session, *, dataset: Dataset, version: int, where: Any, after_seq: int | None,
                 limit: int) -> RecordsPage:
    """A keyset page (newest first) of the records visible at `version` that meet `where`.

    Rows carry the stored JSON text (the store's page_columns), their revision's pk and its first version.
    """
    store = store_for(session)
    stmt = select(*store.page_columns(), R.pk, R.valid_from).where(store.visible(dataset, version), where)
    if after_seq is not None:
        stmt = stmt.where(R.seq < after_seq)
    rows = list(session.execute(stmt.order_by(R.seq.desc()).limit(limit + 1)).all())
    return RecordsPage(rows[:limit], rows[limit - 1].seq if len(rows) > limit else None, version)


# Edits ---------------------------------------------------------------------------------------------------

@dataclass
class RecordEdit:
    """A record's new content, as a whole (a field left null is null afterwards)."""

    input: Any
    expected_output: Any = None
    metadata: Any = None
    tags: list[str] = field(default_factory=list)


class EditConflict(Conflict):
    """The record changed (or went away) since the editor opened it; `current` is what it holds now."""

    def __init__(self, detail: str, *, current: Revision | None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.current = current


def _locked(session: Session, project_id: str | None, dataset_id: str) -> Dataset:
    # Locked as records.change_records does; settles pending closings, so open rows are the truth.
    return get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)


def _write(session: Session, dataset: Dataset, actor: Actor, record_id: str | None, edit: RecordEdit) -> ChangeResult:
    return record_changes.apply_changes(
        session, dataset=dataset, actor=actor,
        change=Change(inserts=[NewRecord(id=record_id, input=edit.input, expected_output=edit.expected_output,
                                         metadata=edit.metadata, tags=edit.tags)], deduplicate=False),
        pointers=("/data/attributes",) * 3)


def save_record(session: Session, *, dataset_id: str, record_id: str, edit: RecordEdit, base_revision: int | None,
                actor: Actor, project_id: str | None = None) -> tuple[Dataset, ChangeResult]:
    """Replace a record's content as one new version, unless it changed since revision `base_revision`
    (the pk of the state the editor was opened on): then nothing is written and EditConflict says why."""
    dataset = _locked(session, project_id, dataset_id)
    found = store_for(session).current(dataset.pk, [record_id], REVISION_COLUMNS)
    current = revision(found[0]) if found else None
    if current is None:
        raise EditConflict(f"record {record_id!r} is no longer in dataset {dataset.id} (deleted since it was "
                           f"opened); nothing was saved", current=None, pointer="/data/attributes/base_revision")
    if base_revision is not None and current.pk != base_revision:
        raise EditConflict(f"record {record_id!r} was changed by someone else (in version {current.valid_from}) "
                           f"since it was opened; nothing was saved. Compare, then save again on top of "
                           f"revision {current.pk}", current=current, pointer="/data/attributes/base_revision",
                           meta={"current_revision": str(current.pk)})
    # An insert with the id of an open record replaces it whole (records.apply_changes' upsert).
    return dataset, _write(session, dataset, actor, record_id, edit)


def add_record(session: Session, *, dataset_id: str, record_id: str | None, edit: RecordEdit, actor: Actor,
               project_id: str | None = None) -> tuple[Dataset, ChangeResult]:
    dataset = _locked(session, project_id, dataset_id)
    if record_id is not None and store_for(session).current(dataset.pk, [record_id], (R.pk,)):
        raise Conflict(f"dataset {dataset.id} has a record {record_id!r} already; open it to edit it",
                       pointer="/data/attributes/id")
    return dataset, _write(session, dataset, actor, record_id, edit)


def delete_record(session: Session, *, dataset_id: str, record_id: str, actor: Actor,
                  project_id: str | None = None) -> tuple[Dataset, ChangeResult]:
    dataset = _locked(session, project_id, dataset_id)
    result = record_changes.apply_changes(session, dataset=dataset, actor=actor, change=Change(deletes=[record_id]),
                                          report_content=False, pointers=("/data/attributes",) * 3)
    return dataset, result

