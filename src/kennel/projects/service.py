from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kennel.db.base import utcnow
from kennel.errors import Conflict, NotFound
from kennel.ids import listing, require_unique_ids
from kennel.projects.models import Project


def _live():
    return Project.deleted_at.is_(None)


def get_project(session: Session, *, project_id: str) -> Project:
    project = session.scalars(select(Project).where(Project.id == project_id, _live())).first()
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
                  before_pk: int | None, limit: int) -> list[Project]:
    stmt = select(Project).where(_live())
    if ids:
        stmt = stmt.where(Project.id.in_(ids))
    if name is not None:
        stmt = stmt.where(Project.name == name)
    if before_pk is not None:
        stmt = stmt.where(Project.pk < before_pk)
    return list(session.scalars(stmt.order_by(Project.pk.desc()).limit(limit)))


def update_project(session: Session, *, project_id: str, name: str | None,
                   description: str | None, fields: set[str]) -> Project:
    project = get_project(session, project_id=project_id)
    if "name" in fields and name is not None and name != project.name:
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


def delete_projects(session: Session, *, project_ids: list[str]) -> None:
    """Soft-delete: all ids must name live projects, or nothing is deleted."""
    require_unique_ids(project_ids, pointer="/data/attributes/project_ids", what="project")
    found = set(session.scalars(select(Project.id).where(Project.id.in_(project_ids), _live())))
    missing = [pid for pid in project_ids if pid not in found]
    if missing:
        raise NotFound(f"project(s) not found: {listing(missing)}; nothing was deleted",
                       pointer="/data/attributes/project_ids")
    now = utcnow()
    session.execute(update(Project).where(Project.id.in_(project_ids)).values(deleted_at=now, updated_at=now))
    session.flush()
