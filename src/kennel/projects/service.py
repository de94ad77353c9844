from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset
from kennel.db.base import utcnow
from kennel.db.soft_delete import mark_deleted, take_live
from kennel.errors import Conflict, NotFound
from kennel.keys.service import Actor
from kennel.projects.models import Project


def _live():
    return Project.deleted_at.is_(None)


def get_project(session: Session, *, project_id: str, for_update: bool = False) -> Project:
    stmt = select(Project).where(Project.id == project_id, _live())
    if for_update:
        # FOR NO KEY UPDATE, the lock an UPDATE of the row takes: it leaves foreign-key checks alone.
        stmt = stmt.with_for_update(key_share=True)
    project = session.scalars(stmt).first()
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    return project


def find_by_name(session: Session, *, name: str) -> Project | None:
    return session.scalars(select(Project).where(Project.name == name, _live())).first()


def create_or_get_project(session: Session, *, name: str, description: str | None,
                          author_id: str | None) -> tuple[Project, bool]:
    """Create a project, or return the live one with this name (both clients expect get-or-create)."""
    existing = find_by_name(session, name=name)
    if existing is not None:
        return existing, False
    project = Project(name=name, description=description, author_id=author_id)
    try:
        # A savepoint, so that losing a race to another server process only undoes this insert.
        with session.begin_nested():
            session.add(project)
            session.flush()
    except IntegrityError:
        existing = find_by_name(session, name=name)
        if existing is None:
            raise
        return existing, False
    return project, True


def list_projects(session: Session, *, ids: Sequence[str] | None, name: str | None,
                  before_pk: int | None, limit: int, search: str | None = None) -> list[Project]:
    """Newest first; `name` matches exactly (the API's filter), `search` a part of the name, any case."""
    stmt = select(Project).where(_live())
    if ids:
        stmt = stmt.where(Project.id.in_(ids))
    if name is not None:
        stmt = stmt.where(Project.name == name)
    if search:
        stmt = stmt.where(Project.name.icontains(search, autoescape=True))
    if before_pk is not None:
        stmt = stmt.where(Project.pk < before_pk)
    return list(session.scalars(stmt.order_by(Project.pk.desc()).limit(limit)))


def _ensure_no_foreign_locks(session: Session, projects: list[Project], actor: Actor, *, doing: str,
                             list_pointer: str | None = None) -> None:
    """A dataset whose draft one key pair holds must not vanish or move under it at another's hand.

    Deleting the project takes the dataset with it; renaming it moves the dataset away from the name
    ddtrace finds it by (pull_dataset and create_dataset resolve the project by name), so the holder
    would find it gone or write into a fresh project of the old name. A description change harms no one.
    The caller holds the projects' rows locked and lock_draft shares that lock first, so no draft lock
    can be taken between this check and the change.
    """
    by_pk = {p.pk: p for p in projects}
    locked = session.execute(
        select(Dataset.project_pk, Dataset.id, Dataset.name, Dataset.draft_holder_name, Dataset.drafting_since)
        .where(Dataset.project_pk.in_(by_pk), Dataset.deleted_at.is_(None), Dataset.draft_holder_id.is_not(None),
               Dataset.draft_holder_id != actor.id)
        .order_by(Dataset.pk)).all()
    if not locked:
        return
    first = locked[0]
    project = by_pk[first.project_pk]
    detail = (f"project {project.id} ({project.name!r}) cannot be {doing}: its dataset {first.id} ({first.name!r}) "
              f"is locked for editing by {first.draft_holder_name!r} since {first.drafting_since:%Y-%m-%dT%H:%M:%SZ}")
    if len(locked) > 1:
        holders = ", ".join(sorted({repr(row.draft_holder_name) for row in locked}))
        detail += f" ({len(locked)} locked datasets in all, held by {holders})"
    pointer = (f"{list_pointer}/{projects.index(project)}" if list_pointer is not None
               else "/data/attributes/name")
    raise Conflict(f"{detail}; ask them to unlock it. Nothing was changed.", pointer=pointer)


def update_project(session: Session, *, project_id: str, name: str | None,
                   description: str | None, fields: set[str], actor: Actor) -> Project:
    project = get_project(session, project_id=project_id, for_update=True)
    if "name" in fields and name is not None and name != project.name:
        _ensure_no_foreign_locks(session, [project], actor, doing="renamed")
        other = find_by_name(session, name=name)
        if other is not None:
            raise Conflict(f"a project named {name!r} already exists ({other.id})",
                           pointer="/data/attributes/name")
        project.name = name
    if "description" in fields:
        project.description = description
    project.updated_at = utcnow()
    session.flush()
    return project


def delete_projects(session: Session, *, project_ids: list[str], actor: Actor) -> None:
    """Soft-delete: all ids must name live projects, none holding a dataset another key pair has
    locked, or nothing is deleted."""
    found = take_live(session, Project, project_ids, what="project", pointer="/data/attributes/project_ids",
                      lock={"key_share": True})
    _ensure_no_foreign_locks(session, [found[pid] for pid in project_ids], actor, doing="deleted",
                             list_pointer="/data/attributes/project_ids")
    mark_deleted(session, Project, project_ids)
