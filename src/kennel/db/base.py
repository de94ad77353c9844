"""Declarative base and the column types every domain shares, portable across SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from sqlalchemy import JSON, DateTime, MetaData, Text
from sqlalchemy.dialects.postgresql import JSON as PGJSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so Alembic migrations name the same thing on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SQLiteJSON(TypeDecorator[object]):
    """JSON kept as TEXT on SQLite.

    A column declared `JSON` gets NUMERIC affinity in SQLite, which silently turns the stored text `3`
    into the integer 3 (and `1.0` into 1), so values would not read back as the JSON that was written.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return orjson.dumps(value).decode()

    def process_result_value(self, value, dialect):
        return None if value is None else orjson.loads(value)


JSONType = JSON().with_variant(JSONB(), "postgresql").with_variant(SQLiteJSON(), "sqlite")

# A document the server stores and hands back but never queries inside (a dataset record's input,
# expected output and metadata). PostgreSQL's `json` keeps the text as it was written, like SQLite
# does, where `jsonb` re-orders every object's keys and must be printed anew on each read: on a
# 1,000-record page of 1.2 KB records that printing was about 7 ms of the database's CPU (15 ms
# against 8 ms for the whole page query, measured), and parsing into jsonb cost the writes more too.
DocumentJSON = JSON().with_variant(PGJSON(), "postgresql").with_variant(SQLiteJSON(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the backend keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())
