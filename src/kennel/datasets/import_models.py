"""A file staged for import into a dataset, kept in the database so that any server can go on with it.

The import is three requests (upload, look at the preview, write with a mapping), and behind a load
balancer each may land on a different server process: the file and the write's progress therefore live
here, not in one process's memory or temporary folder. The bytes are kept in chunks of about 1 MiB, so
no row is huge on either database and neither the upload nor the preview needs the whole file at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, JSONType, UTCDateTime, new_id, utcnow

STATUSES = ("staged", "writing", "done", "failed")


class StagedImport(Base):
    __tablename__ = "staged_imports"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.pk", ondelete="CASCADE"), index=True)
    # The author id of whoever sent the file (a person, or a key pair made before people existed).
    who: Mapped[str] = mapped_column(String(36))
    filename: Mapped[str] = mapped_column(String(512))
    file_kind: Mapped[str] = mapped_column(String(8))          # csv or jsonl
    size: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    # The columns found in the file, each with the role guessed for it: [[column, role], ...].
    mapping_guess: Mapped[Any] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(8), default="staged")
    records_done: Mapped[int] = mapped_column(Integer, default=0)
    records_total: Mapped[int] = mapped_column(Integer, default=0)
    records_created: Mapped[int] = mapped_column(Integer, default=0)
    records_updated: Mapped[int] = mapped_column(Integer, default=0)
    records_skipped: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Refreshed by the server writing the import after each chunk; a stale one means that server died.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_staged_imports_expires_at", "expires_at"),)


class StagedImportChunk(Base):
    __tablename__ = "staged_import_chunks"

    import_pk: Mapped[int] = mapped_column(ForeignKey("staged_imports.pk", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
