"""Datasets and their versions. Record changes live in `records.py`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kennel.datasets.models import Dataset, DatasetVersion
from kennel.datasets.plan import Tally
from kennel.datasets.store import store_for, unsettled
from kennel.db.base import utcnow
from kennel.db.soft_delete import mark_deleted, take_live
from kennel.errors import Conflict, NotFound
from kennel.keys.service import Actor
from kennel.projects.models import Project
from kennel.projects.service import get_project


def _live() -> ColumnElement[bool]:
    return Dataset.deleted_at.is_(None)


def get_dataset(session: Session, *, dataset_id: str, project_id: str | None = None,
                for_update: bool = False) -> Dataset:
    """A live dataset by id (optionally checked against its project), or 404."""
    stmt = select(Dataset).where(Dataset.id == dataset_id, _live())
    if project_id is not None:
        project = get_project(session, project_id=project_id)
        stmt = stmt.where(Dataset.project_pk == project.pk)
    if for_update:
        # Serialises writers to one dataset across server processes (a no-op on SQLite, whose
        # writers already hold the database lock).
        stmt = stmt.with_for_update()
    dataset = session.scalars(stmt).first()
    if dataset is None:
        raise NotFound(f"dataset {dataset_id!r} not found" + (f" in project {project_id!r}" if project_id else ""))
    if for_update:
        # Taken for writing: the store writes the pending closings in (see RecordStore.settle).
        store_for(session).settle(dataset)
    return dataset


def open_resources(engine: Engine, factory: sessionmaker[Session]) -> Callable[[], None]:
    """Start what the records path runs beside a server's requests, handed to the sessions `factory`
    makes; returns the call that stops it. On PostgreSQL: the SideWriter that indexes new records'
    content on a connection of its own (store_postgres.PostgresStore.start_index_hashes). Without it
    (the CLI, tests of services) the index rows are written in the request's own transaction."""
    if engine.dialect.name != "postgresql":
        return lambda: None
    from kennel.datasets.store_postgres import SIDE_WRITER, SideWriter

    side = SideWriter(engine)
    factory.configure(info={SIDE_WRITER: side})
    return side.close


def recovery_jobs(session: Session) -> list[Callable[[Session], None]]:
    """Background work a server starting up owes its datasets: the pending closings a server stopped
    before settling (run them on maintenance.UpkeepRunner)."""
    return list(unsettled(session))


def project_id_of(session: Session, dataset: Dataset) -> str:
    return session.execute(select(Project.id).where(Project.pk == dataset.project_pk)).scalar_one()


def _find_by_name(session: Session, project_pk: int, name: str) -> Dataset | None:
    return session.scalars(select(Dataset).where(Dataset.project_pk == project_pk, Dataset.name == name,
                                                 _live())).first()


def create_or_get_dataset(session: Session, *, project_id: str, name: str, description: str | None,
                          metadata: dict[str, Any] | None, actor: Actor) -> tuple[Dataset, bool]:
    """Create a dataset, or return the live one with this name in the project (as the hosted API does)."""
    project = get_project(session, project_id=project_id)
    existing = _find_by_name(session, project.pk, name)
    if existing is not None:
        return existing, False
    dataset = Dataset(project_pk=project.pk, name=name, description=description, metadata_=metadata,
                      current_version=0, next_seq=1, author_id=actor.id)
    try:
        with session.begin_nested():
            session.add(dataset)
            session.flush()
            session.execute(insert(DatasetVersion).values(dataset_pk=dataset.pk, version_number=0,
                                                          created_at=dataset.created_at))
    except IntegrityError:
        existing = _find_by_name(session, project.pk, name)
        if existing is None:
            raise
        return existing, False
    return dataset, True


def list_datasets(session: Session, *, project_id: str, ids: Sequence[str] | None, name: str | None,
                  before_pk: int | None, limit: int, search: str | None = None) -> list[Dataset]:
    """Newest first; `name` matches exactly (the API's filter), `search` a part of the name, any case."""
    project = get_project(session, project_id=project_id)
    stmt = select(Dataset).where(Dataset.project_pk == project.pk, _live())
    if ids:
        stmt = stmt.where(Dataset.id.in_(ids))
    if name is not None:
        stmt = stmt.where(Dataset.name == name)
    if search:
        stmt = stmt.where(Dataset.name.icontains(search, autoescape=True))
    if before_pk is not None:
        stmt = stmt.where(Dataset.pk < before_pk)
    return list(session.scalars(stmt.order_by(Dataset.pk.desc()).limit(limit)))


def update_dataset(session: Session, *, project_id: str, dataset_id: str, changes: dict[str, Any],
                   actor: Actor) -> Dataset:
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    ensure_writable(dataset, actor)
    name = changes.get("name")
    if name is not None and name != dataset.name:
        other = _find_by_name(session, dataset.project_pk, name)
        if other is not None:
            raise Conflict(f"a dataset named {name!r} already exists in this project ({other.id})",
                           pointer="/data/attributes/name")
        dataset.name = name
    if "description" in changes:
        dataset.description = changes["description"]
    if "metadata" in changes:
        dataset.metadata_ = changes["metadata"]
    dataset.updated_at = utcnow()
    session.flush()
    return dataset


def delete_datasets(session: Session, *, dataset_ids: list[str], project_id: str | None,
                    actor: Actor) -> list[Dataset]:
    """Soft-delete: every id must name a live dataset (of the project, when given), or nothing changes.

    Records and versions stay, so the history remains for audit; the name becomes free again.
    """
    where = [] if project_id is None else [Dataset.project_pk == get_project(session, project_id=project_id).pk]
    found = take_live(session, Dataset, dataset_ids, what="dataset", pointer="/data/attributes/dataset_ids",
                      where=where, lock=True)
    for dataset in found.values():
        ensure_writable(dataset, actor)
    mark_deleted(session, Dataset, dataset_ids)
    for dataset in found.values():
        session.refresh(dataset)
    return [found[d] for d in dataset_ids]


def list_versions(session: Session, *, project_id: str, dataset_id: str) -> tuple[Dataset, list[DatasetVersion]]:
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
    rows = session.scalars(select(DatasetVersion).where(DatasetVersion.dataset_pk == dataset.pk)
                           .order_by(DatasetVersion.version_number.desc()))
    return dataset, list(rows)


def record_version(session: Session, dataset: Dataset, *, version: int, author_id: str | None, tally: Tally,
                   now: datetime) -> None:
    """Write a change's version row with its facts: a new row for a new version, or, when the change
    amends the current version, the current row's facts moved by `tally`. The record count follows from
    the version before's (the dataset must be locked)."""
    V = DatasetVersion
    net = tally.added - tally.deleted
    if version != dataset.current_version:
        before = select(V.record_count).where(V.dataset_pk == dataset.pk,
                                              V.version_number == dataset.current_version).scalar_subquery()
        session.execute(insert(V).values(
            dataset_pk=dataset.pk, version_number=version, created_at=now, author_id=author_id,
            added=tally.added, changed=tally.changed, deleted=tally.deleted,
            record_count=func.coalesce(before, 0) + net))
        dataset.current_version = version
    else:
        session.execute(update(V).where(V.dataset_pk == dataset.pk, V.version_number == version).values(
            author_id=author_id, added=V.added + tally.added, changed=V.changed + tally.changed,
            deleted=V.deleted + tally.deleted, record_count=V.record_count + net))
    dataset.updated_at = now
    session.flush()


def get_version(session: Session, *, dataset: Dataset, version: int) -> DatasetVersion:
    row = session.scalars(select(DatasetVersion).where(DatasetVersion.dataset_pk == dataset.pk,
                                                       DatasetVersion.version_number == version)).first()
    if row is None:
        raise NotFound(f"dataset {dataset.id} has no version {version}")
    return row


def mark_version_used(session: Session, *, dataset_pk: int, version: int) -> None:
    """Record that an experiment referenced this version of the dataset."""
    session.execute(update(DatasetVersion)
                    .where(DatasetVersion.dataset_pk == dataset_pk, DatasetVersion.version_number == version)
                    .values(last_used=utcnow()))


def ensure_writable(dataset: Dataset, actor: Actor) -> None:
    """A dataset whose draft lock is held by another key pair is read-only for everyone else."""
    if dataset.draft_holder_id is not None and dataset.draft_holder_id != actor.id:
        raise Conflict(f"dataset {dataset.id} is locked for editing by {dataset.draft_holder_name!r} "
                       f"since {dataset.drafting_since:%Y-%m-%dT%H:%M:%SZ}; ask them to unlock it")
