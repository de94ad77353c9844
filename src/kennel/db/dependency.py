"""The request's unit of work, as the one FastAPI dependency that opens it (apart from db/session.py so that
the `kennel` commands, which use units of work but serve nothing, do not import FastAPI: 0.2 s a command)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from kennel.db.session import WRITE_METHODS, unit_of_work


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with unit_of_work(factory, write=request.method in WRITE_METHODS) as session:
        yield session
