"""One unit of work per request: opened by one dependency (db/dependency.py), committed once, rolled back on
error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session], *, write: bool) -> Iterator[Session]:
    session = factory()
    try:
        session.connection(execution_options={"kennel_write": write})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
