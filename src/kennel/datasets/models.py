"""Datasets, their versions, and record revisions stored as validity intervals.

A record revision is visible at version v when `valid_from <= v AND (valid_to IS NULL OR valid_to > v)`;
the current state is `valid_to IS NULL`. Any version is one range condition away, so reading an old
version costs about what reading the current one does, and a change touches only the changed rows.
(See shared/design/versioned-records.md.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, DocumentJSON, JSONType, UTCDateTime, new_id, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

# NO_FOREIGN_KEY: the tables written once per record (records, their content hashes, pending closings)
# name their dataset without a foreign key. On PostgreSQL the key's check is a trigger and a row lock
# per inserted row, close to a third of the time of a bulk COPY, which the request thread waits out.
# Every write to these tables happens under the dataset's row lock (get_dataset(for_update=True)) in
# the same transaction, and datasets are only ever soft-deleted, so the key had nothing left to catch;
# a hard delete of a dataset must delete these rows itself (migration 0008).
LIVE = text("deleted_at IS NULL")
CURRENT = text("valid_to IS NULL")


class Dataset(Base):
    __tablename__ = "datasets"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType, nullable=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    # Next record `seq` to hand out; bumped under the dataset row lock, so batches get contiguous ranges.
    next_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    # Whether `dataset_record_hashes` covers this dataset's records (see DatasetRecordHash).
    content_indexed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Whether `dataset_pending_closures` holds closings not yet written into dataset_records.
    closures_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    author_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Draft lock: which key pair holds the dataset for editing, and since when.
    draft_holder_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    draft_holder_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    drafting_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("uq_datasets_live_name", "project_pk", "name", unique=True,
              sqlite_where=LIVE, postgresql_where=LIVE),
    )


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.pk", ondelete="CASCADE"))
    version_number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Facts written with the version, so that a timeline or a list of datasets reads them instead of
    # counting revisions: who made it (as the records' author), what it added, changed and deleted
    # (counted as history.py describes), and how many records it holds.
    author_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    added: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    changed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    deleted: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    record_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (UniqueConstraint("dataset_pk", "version_number", name="uq_dataset_versions_number"),)


class DatasetRecord(Base):
    """One state of one record, valid for the half-open version range [valid_from, valid_to)."""

    __tablename__ = "dataset_records"

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dataset_pk: Mapped[int] = mapped_column(Integer)  # no foreign key: see NO_FOREIGN_KEY
    record_id: Mapped[str] = mapped_column(String(255))
    canonical_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Content is kept as written (see DocumentJSON); tags are searched (`?|`), so they stay jsonb.
    input: Mapped[Any] = mapped_column(DocumentJSON)
    expected_output: Mapped[Any] = mapped_column(DocumentJSON, nullable=True)
    metadata_: Mapped[Any] = mapped_column("metadata", DocumentJSON, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(32))
    # The key pair that wrote this revision (shown as `author`).
    author_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Every version's newest-first scan walks this index.
        Index("ix_dataset_records_seq", "dataset_pk", "seq"),
        # The current version (the common read) and its lookups only touch open rows.
        Index("ix_dataset_records_current_seq", "dataset_pk", "seq", sqlite_where=CURRENT, postgresql_where=CURRENT),
        # Lookups by key lead with the key, not the dataset: see PostgresStore.current for why.
        Index("uq_dataset_records_current_id", "record_id", "dataset_pk", unique=True,
              sqlite_where=CURRENT, postgresql_where=CURRENT),
    )


# The columns of a record revision, listed once. Every path that writes, copies or reads revisions
# builds its column list from these two: inserts and COPY (store), pages and states (store), restore and
# clone (lifecycle, through store.copy_revisions). A new field of records is added to the model, a
# migration, the wire schema (views.py, schemas.py) and RECORD_FIELDS; nothing else lists columns.
#
# What a revision carries from its record's state, in the order rows are built and read:
RECORD_FIELDS: tuple[str, ...] = ("record_id", "canonical_id", "seq", "input", "expected_output", "metadata", "tags",
                                  "content_hash", "author_id", "created_at", "updated_at")
# Where and when it is valid: set by the write, never carried over from another revision.
INTERVAL_COLUMNS: tuple[str, ...] = ("dataset_pk", "valid_from", "valid_to")
REVISION_COLUMNS: tuple[str, ...] = (*INTERVAL_COLUMNS, *RECORD_FIELDS)


def _check_revision_columns() -> None:
    # At import, so that a column added to the model but not to the lists fails every test at once,
    # instead of being silently dropped by one copy path (as authorship once was by restore and clone).
    table = {c.name for c in DatasetRecord.__table__.c} - {"pk"}
    if table != set(REVISION_COLUMNS) or len(REVISION_COLUMNS) != len(table):
        raise RuntimeError(f"dataset_records columns {sorted(table)} differ from REVISION_COLUMNS "
                           f"{sorted(REVISION_COLUMNS)}: list the new column in RECORD_FIELDS")


_check_revision_columns()


class DatasetRecordHash(Base):
    """Which record ids of a dataset have held which content: the index that `deduplicate` searches.

    Kept apart from dataset_records, and only for datasets that have needed it: content hashes are
    random keys, and keeping them in an index on every insert (one scattered index page written per
    record) cost about a fifth of an import into SQLite. Datasets written with caller-given ids
    (what ddtrace does) never need it; the first deduplicating insert into a dataset fills it from the
    open records in one statement and sets `Dataset.content_indexed`, and inserts maintain it from then on.

    Rows are never removed when a record changes or goes away: a lookup joins back to the open
    revision of the record id and checks its hash, so a stale row matches nothing.
    """

    __tablename__ = "dataset_record_hashes"

    content_hash: Mapped[str] = mapped_column(String(32))
    dataset_pk: Mapped[int] = mapped_column(Integer)  # no foreign key: see NO_FOREIGN_KEY
    record_id: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        # A dataset's entries sit together: indexing a dataset writes one run of pages, and appends to a
        # small dataset do not touch pages all over the index. The key is the only index here, so a lookup
        # by (dataset, hash) cannot be planned onto anything else.
        PrimaryKeyConstraint("dataset_pk", "content_hash", "record_id"),
        {"sqlite_with_rowid": False},
    )


class DatasetPendingClosure(Base):
    """A closing of an open revision that a delete has decided but not yet written into dataset_records.

    Closing a revision in place rewrites its row: on PostgreSQL a new 1.2 KB row version, two index
    entries and, after a checkpoint, a full-page image of every page touched. A delete of 10,000
    records spread over a large dataset touches some 10,000 table pages that way, each written whole
    to the WAL, and the request waits for all of it. Here the delete appends its closings as
    narrow rows (one COPY) and answers; a background job (store.SettleClosures) writes them into
    dataset_records under the dataset lock, and any writer to the dataset settles them first. Until
    then, reads leave out the revisions listed here (RecordStore.visible).
    """

    __tablename__ = "dataset_pending_closures"

    dataset_pk: Mapped[int] = mapped_column(Integer)  # no foreign key: see NO_FOREIGN_KEY
    seq: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # One revision is (dataset, seq, valid_from); reads probe by exactly that.
        PrimaryKeyConstraint("dataset_pk", "seq", "valid_from"),
        {"sqlite_with_rowid": False},
    )
