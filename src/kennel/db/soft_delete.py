"""Soft deletion by ids, for the tables whose rows are only ever soft-deleted (projects, datasets,
experiments): every id must name a live row, or nothing is deleted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.orm import Session

from kennel.db.base import utcnow
from kennel.errors import NotFound
from kennel.ids import listing, require_unique_ids

M = TypeVar("M")


def take_live(session: Session, model: type[M], ids: list[str], *, what: str, pointer: str,
              where: Sequence[ColumnElement[bool]] = (), lock: bool | dict[str, Any] = False) -> dict[str, M]:
    """The live rows named by `ids` (each at most once), by id; a 404 naming the missing ones otherwise.

    `lock` takes the rows FOR UPDATE (a dict gives with_for_update's options), in primary-key order so
    that two deletes of overlapping sets cannot deadlock.
    """
    require_unique_ids(ids, pointer=pointer, what=what)
    table: Any = model
    stmt: Select[Any] = select(model).where(table.id.in_(ids), table.deleted_at.is_(None), *where)
    if lock is not False:
        stmt = stmt.order_by(table.pk).with_for_update(**(lock if isinstance(lock, dict) else {}))
    found = {row.id: row for row in session.scalars(stmt)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"{what}(s) not found: {listing(missing)}; nothing was deleted", pointer=pointer)
    return found


def mark_deleted(session: Session, model: type[Any], ids: list[str]) -> None:
    """Soft-delete the rows named by `ids` (checked by take_live first)."""
    now = utcnow()
    session.execute(update(model).where(model.id.in_(ids)).values(deleted_at=now, updated_at=now))
    session.flush()
