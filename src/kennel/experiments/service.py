"""Experiments: create, list (every filter, keyset pages), update, soft delete."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql import type_coerce

from kennel.datasets.models import Dataset
from kennel.datasets.service import get_dataset, mark_version_used
from kennel.db.base import utcnow
from kennel.db.soft_delete import mark_deleted, take_live
from kennel.errors import Invalid, NotFound
from kennel.experiments.compare_run import run_rows
from kennel.experiments.models import Experiment
from kennel.projects.models import Project
from kennel.projects.service import get_project


def _dataset(session: Session, *, dataset_id: str, pointer: str) -> Dataset:
    try:
        return get_dataset(session, dataset_id=dataset_id)
    except NotFound as exc:
        raise NotFound(exc.detail, pointer=pointer) from None


def get_experiment(session: Session, *, experiment_id: str) -> Experiment:
    exp = session.scalars(select(Experiment).where(Experiment.id == experiment_id,
                                                   Experiment.deleted_at.is_(None))).first()
    if exp is None:
        raise NotFound(f"experiment {experiment_id!r} not found")
    return exp


def get_experiment_by_name(session: Session, *, project_name: str, name: str) -> Experiment:
    """The newest live experiment of a project whose logical or run name is `name`."""
    from kennel.projects.service import find_by_name

    project = find_by_name(session, name=project_name)
    exp = None
    if project is not None:
        exp = session.scalars(select(Experiment).where(
            Experiment.project_pk == project.pk, Experiment.deleted_at.is_(None),
            (Experiment.experiment == name) | (Experiment.name == name)).order_by(Experiment.pk.desc())).first()
    if exp is None:
        raise NotFound(f"no experiment named {name!r} in project {project_name!r}")
    return exp


def wire_ids(session: Session, exp: Experiment) -> tuple[str, str | None]:
    project_id = session.scalar(select(Project.id).where(Project.pk == exp.project_pk))
    dataset_id = (session.scalar(select(Dataset.id).where(Dataset.pk == exp.dataset_pk))
                  if exp.dataset_pk is not None else None)
    return project_id or "", dataset_id


def _run_name(session: Session, *, project_pk: int, name: str) -> str:
    stamp = int(time.time() * 1000)
    # Two runs created in the same millisecond would share a name; step forward until it is free.
    while session.scalar(select(Experiment.pk).where(Experiment.project_pk == project_pk,
                                                     Experiment.name == f"{name}-{stamp}")) is not None:
        stamp += 1
    return f"{name}-{stamp}"


def create_experiment(session: Session, *, attrs: Any, author_id: str | None) -> Experiment:
    try:
        project = get_project(session, project_id=attrs.project_id)
    except NotFound as exc:
        raise NotFound(exc.detail, pointer="/data/attributes/project_id") from None
    dataset_pk = None
    version = attrs.dataset_version
    if attrs.dataset_id:
        dataset = _dataset(session, dataset_id=attrs.dataset_id, pointer="/data/attributes/dataset_id")
        dataset_pk = dataset.pk
        if version is None:
            version = dataset.current_version
        elif version > dataset.current_version:
            raise Invalid(f"dataset_version {version} does not exist: the dataset's current version is "
                          f"{dataset.current_version}", pointer="/data/attributes/dataset_version")
        mark_version_used(session, dataset_pk=dataset.pk, version=version)
    if attrs.parent_experiment_id:
        parent = session.scalar(select(Experiment.pk).where(Experiment.id == attrs.parent_experiment_id))
        if parent is None:
            raise NotFound(f"parent experiment {attrs.parent_experiment_id!r} not found",
                           pointer="/data/attributes/parent_experiment_id")
    name = _run_name(session, project_pk=project.pk, name=attrs.name) if attrs.ensure_unique else attrs.name
    now = utcnow()
    exp = Experiment(project_pk=project.pk, dataset_pk=dataset_pk, name=name, experiment=attrs.name,
                     description=attrs.description, config=attrs.config if attrs.config is not None else {},
                     metadata_=attrs.metadata if attrs.metadata is not None else {}, dataset_version=version,
                     run_count=attrs.run_count or 1, parent_experiment_id=attrs.parent_experiment_id,
                     author_id=author_id, created_at=now, updated_at=now)
    session.add(exp)
    session.flush()
    return exp


def update_experiment(session: Session, *, experiment_id: str, attrs: Any) -> Experiment:
    exp = get_experiment(session, experiment_id=experiment_id)
    fields = attrs.model_fields_set
    for key in ("name", "status"):
        if key in fields and getattr(attrs, key) is None:
            raise Invalid(f"{key} cannot be null", pointer=f"/data/attributes/{key}")
    if "name" in fields:
        exp.name = attrs.name
    if "description" in fields:
        exp.description = attrs.description
    if "metadata" in fields:
        exp.metadata_ = attrs.metadata if attrs.metadata is not None else {}
    if "status" in fields:
        exp.status = attrs.status
    if "error" in fields:
        exp.error = attrs.error
    if "dataset_id" in fields:
        if attrs.dataset_id:
            dataset = _dataset(session, dataset_id=attrs.dataset_id, pointer="/data/attributes/dataset_id")
            exp.dataset_pk = dataset.pk
            exp.dataset_version = dataset.current_version
            mark_version_used(session, dataset_pk=dataset.pk, version=dataset.current_version)
        else:
            exp.dataset_pk = None
    exp.updated_at = utcnow()
    session.flush()
    return exp


def delete_experiments(session: Session, *, experiment_ids: list[str]) -> None:
    """Soft-delete: all ids must name live experiments, or nothing is deleted."""
    take_live(session, Experiment, experiment_ids, what="experiment", pointer="/data/attributes/experiment_ids")
    mark_deleted(session, Experiment, experiment_ids)


def json_contains(doc: Any, pattern: Any) -> bool:
    """PostgreSQL's jsonb `@>` semantics, for SQLite: objects match by key recursively, an array
    contains each pattern element somewhere, scalars compare equal (a top-level array matches a scalar)."""
    if isinstance(pattern, dict):
        return isinstance(doc, dict) and all(k in doc and json_contains(doc[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(doc, list) and all(any(json_contains(d, p) for d in doc) for p in pattern)
    if isinstance(doc, list):
        return any(not isinstance(d, (dict, list)) and d == pattern and type(d) is type(pattern) for d in doc)
    return doc == pattern and type(doc) is type(pattern)


Row = tuple[Experiment, str, str | None, str | None]


def list_experiments(session: Session, *, project_id: str | None, dataset_id: str | None, ids: Sequence[str],
                     name: str | None, experiment: str | None, metadata: dict[str, Any] | None,
                     parent_ids: Sequence[str], deleted: bool, before_pk: int | None, limit: int) -> list[Row]:
    stmt: Select = run_rows()
    stmt = stmt.where(Experiment.deleted_at.is_not(None) if deleted else Experiment.deleted_at.is_(None))
    if project_id is not None:
        stmt = stmt.where(Project.id == project_id)
    if dataset_id is not None:
        stmt = stmt.where(Dataset.id == dataset_id)
    if ids:
        stmt = stmt.where(Experiment.id.in_(list(ids)))
    if name is not None:
        stmt = stmt.where(Experiment.name == name)
    if experiment is not None:
        stmt = stmt.where(Experiment.experiment == experiment)
    if parent_ids:
        stmt = stmt.where(Experiment.parent_experiment_id.in_(list(parent_ids)))
    python_filter = None
    if metadata is not None:
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.where(type_coerce(Experiment.metadata_, JSONB).contains(metadata))
        else:
            python_filter = metadata
    stmt = stmt.order_by(Experiment.pk.desc())
    if python_filter is None:
        if before_pk is not None:
            stmt = stmt.where(Experiment.pk < before_pk)
        return [tuple(r) for r in session.execute(stmt.limit(limit))]
    # SQLite has no containment operator: scan keyset chunks and keep the matches.
    out: list[Row] = []
    cursor = before_pk
    chunk = max(limit * 2, 200)
    while len(out) < limit:
        page = stmt.where(Experiment.pk < cursor) if cursor is not None else stmt
        rows = session.execute(page.limit(chunk)).all()
        for r in rows:
            if json_contains(r[0].metadata_ or {}, python_filter):
                out.append(tuple(r))
                if len(out) == limit:
                    break
        if len(rows) < chunk:
            break
        cursor = rows[-1][0].pk
    return out
