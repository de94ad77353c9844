"""Import a CSV or JSONL file into a dataset in three steps, each of which any server may answer.

1. **Stage**: the upload is copied into the database in ~1 MiB chunks (import_models), read from the
   request's spooled file a chunk at a time, never whole. Its first rows must parse (else nothing is
   staged) and give the preview: the columns, with a guess of the record field each one is.
2. **Preview**: the first rows and the guess, read back from the first chunk.
3. **Write**: with a mapping of columns to fields, the file becomes one new version through
   transfer.write_upload (set-based, all or nothing, in one transaction). The write is claimed first in a
   short transaction of its own, so a second write of the same import is refused whichever server gets
   it. On PostgreSQL, progress and a heartbeat go to the import's row after each chunk, each in its own
   short transaction, so every server sees them; SQLite has one writer at a time and one server process,
   so there the progress is kept in this process while the write holds the lock. A write whose heartbeat
   goes stale (its server died mid-way; its transaction rolled back) is marked failed when next read.

Imports are kept an hour; older ones are swept when a new file is staged. A failed write stored
nothing, so the import may be written again (with another mapping, say); a done one may not.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from kennel.datasets import transfer
from kennel.datasets.import_models import StagedImport, StagedImportChunk
from kennel.datasets.models import Dataset
from kennel.datasets.service import ensure_writable, get_dataset
from kennel.db.base import utcnow
from kennel.db.session import unit_of_work
from kennel.errors import Conflict, Invalid, KennelError, NotFound
from kennel.keys.service import Actor

ROLES = ("input", "expected_output", "metadata", "tags", "id")
IGNORE = "ignore"
CHUNK_BYTES = 1 << 20
PREVIEW_ROWS = 5
MAX_COLUMNS = 200
KEEP = timedelta(hours=1)
# Much longer than one chunk of rows takes to write, even on a loaded machine.
STALE = timedelta(minutes=2)
CRASHED = "the server writing this import stopped before it finished; nothing was stored. Write it again."

# The imports this process is writing, with their progress (what SQLite cannot show other connections).
_LIVE: dict[str, transfer.Progress] = {}


@dataclass(frozen=True)
class Preview:
    columns: list[tuple[str, str]]   # each column of the file, with the field guessed for it (or "ignore")
    rows: list[list[str]]            # the first rows, as text


@dataclass(frozen=True)
class ImportState:
    """An import as any server reports it: its status, progress and preview."""

    row: StagedImport
    dataset_id: str
    preview: Preview
    done: int
    total: int
    created: int
    updated: int
    skipped: int

    @property
    def id(self) -> str:
        return self.row.id

    def as_dict(self) -> dict[str, Any]:
        r = self.row
        return {"status": r.status, "filename": r.filename, "format": r.file_kind, "size": r.size,
                "records_processed": self.done, "records_total": self.total, "records_created": self.created,
                "records_updated": self.updated, "records_skipped": self.skipped, "version": r.version,
                "error": r.error, "created_at": r.created_at.isoformat(), "expires_at": r.expires_at.isoformat(),
                "preview": {"columns": [{"name": c, "guess": g} for c, g in self.preview.columns],
                            "rows": self.preview.rows}}


# The file's first rows -----------------------------------------------------------------------------

def _cell_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def columns_and_rows(head: bytes, fmt: str, *, whole: bool) -> tuple[list[str], list[list[str]]]:
    """The file's columns (CSV header, or the keys of the first JSONL objects) and its first rows as text,
    from its first bytes (`whole` when they are the whole file). A first row that does not parse is a 400."""
    text = head.decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            rows = list(itertools.islice(reader, PREVIEW_ROWS))
        except csv.Error as exc:
            raise Invalid(f"line {reader.line_num}: the file does not parse as CSV ({exc}); nothing was stored",
                          parameter="file", meta={"line": reader.line_num}) from None
        if not header:
            raise Invalid("the file is empty; expected a header row", parameter="file")
        return [h.strip() for h in header], rows
    lines = text.splitlines()
    if not whole and lines:
        lines.pop()  # cut by the end of the chunk
    objects: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(objects) == PREVIEW_ROWS:
            break
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Invalid(f"line {number} does not parse as JSON ({exc.msg}, column {exc.colno}); nothing was stored",
                          parameter="file", meta={"line": number}) from None
        if not isinstance(obj, dict):
            raise Invalid(f"line {number} must be a JSON object; nothing was stored", parameter="file",
                          meta={"line": number})
        objects.append(obj)
    if not objects:
        raise Invalid("the file has no JSON lines; nothing was stored", parameter="file")
    columns = list(dict.fromkeys(k for obj in objects for k in obj))
    return columns, [[_cell_text(obj[c]) if c in obj else "" for c in columns] for obj in objects]


def guess(column: str) -> str:
    name = column.strip().lower()
    aliases = {"question": "input", "prompt": "input", "expected": "expected_output", "answer": "expected_output",
               "output": "expected_output", "label": "expected_output", "record_id": "id"}
    return name if name in ROLES else aliases.get(name, IGNORE)


def check_mapping(mapping: Mapping[str, str], columns: list[str]) -> dict[str, str]:
    """The columns to import, each with its field; refuses a mapping that names no input, the same field
    twice, a field that does not exist or a column the file does not have."""
    known = set(columns)
    chosen: dict[str, str] = {}
    for column, role in mapping.items():
        if column not in known:
            raise Invalid(f"the mapping names a column {column!r} the file does not have (its columns: "
                          f"{', '.join(columns)})", parameter="mapping")
        if role in ("", IGNORE):
            continue
        if role not in ROLES:
            raise Invalid(f"column {column!r} is mapped to {role!r}; map it to one of {', '.join(ROLES)} or "
                          f"{IGNORE}", parameter="mapping")
        chosen[column] = role
    roles = list(chosen.values())
    for role in ROLES:
        if roles.count(role) > 1:
            raise Invalid(f"two columns are mapped to {role}; map one", parameter="mapping")
    if "input" not in roles:
        raise Invalid("the mapping leaves no input: map one column to input; nothing was stored",
                      parameter="mapping")
    return chosen


# Stage, find, preview, sweep ----------------------------------------------------------------------

def stage(session: Session, *, dataset_id: str, actor: Actor, filename: str, content_type: str | None,
          file: BinaryIO, now: datetime | None = None) -> ImportState:
    """Copy an uploaded file into the database a chunk at a time, after checking its first rows."""
    now = now or utcnow()
    dataset = get_dataset(session, dataset_id=dataset_id)
    fmt = transfer.detect_format(None, filename, content_type)
    chunk = file.read(CHUNK_BYTES)
    if not chunk:
        raise Invalid("the file is empty; nothing was stored", parameter="file")
    columns, rows = columns_and_rows(chunk, fmt, whole=len(chunk) < CHUNK_BYTES)
    if len(columns) > MAX_COLUMNS:
        raise Invalid(f"the file has {len(columns)} columns; at most {MAX_COLUMNS} can be mapped", parameter="file")
    sweep(session, now=now)
    row = StagedImport(dataset_pk=dataset.pk, who=actor.id, filename=filename[:512], file_kind=fmt,
                       mapping_guess=[[c, guess(c)] for c in columns], status="staged", size=0, chunks=0,
                       records_done=0, records_total=0, records_created=0, records_updated=0, records_skipped=0,
                       created_at=now, expires_at=now + KEEP)
    session.add(row)
    session.flush()
    seq = size = 0
    while chunk:
        session.execute(insert(StagedImportChunk), {"import_pk": row.pk, "seq": seq, "data": chunk})
        seq += 1
        size += len(chunk)
        chunk = file.read(CHUNK_BYTES)
    row.size, row.chunks = size, seq
    session.flush()
    return _state(row, dataset.id, Preview([(c, g) for c, g in row.mapping_guess], rows))


def sweep(session: Session, *, now: datetime) -> int:
    """Delete the imports past their hour (but one being written) and their chunks; how many."""
    old = select(StagedImport.pk).where(StagedImport.expires_at < now, StagedImport.status != "writing")
    session.execute(delete(StagedImportChunk).where(StagedImportChunk.import_pk.in_(old)))
    gone = session.execute(delete(StagedImport).where(StagedImport.pk.in_(old)))
    return gone.rowcount or 0  # type: ignore[attr-defined]


def find(session: Session, *, dataset_id: str, import_id: str, actor: Actor, now: datetime | None = None
         ) -> StagedImport:
    """The import, if it is this dataset's, still kept, and `actor`'s (someone else's is a 409)."""
    dataset = get_dataset(session, dataset_id=dataset_id)
    row = session.scalars(select(StagedImport).where(StagedImport.id == import_id,
                                                     StagedImport.dataset_pk == dataset.pk)).first()
    if row is None or (row.expires_at < (now or utcnow()) and row.status != "writing"):
        raise NotFound(f"dataset {dataset_id} has no import {import_id!r} (an import is kept for "
                       f"{KEEP.seconds // 60} minutes); send the file again")
    if row.who != actor.id:
        raise Conflict(f"import {import_id} was sent by someone else; only they can see or write it")
    return row


def preview(session: Session, row: StagedImport) -> Preview:
    head = session.execute(select(StagedImportChunk.data).where(StagedImportChunk.import_pk == row.pk,
                                                                StagedImportChunk.seq == 0)).scalar()
    rows = columns_and_rows(head, row.file_kind, whole=row.chunks <= 1)[1] if head else []
    return Preview([(c, g) for c, g in row.mapping_guess], rows)


def _state(row: StagedImport, dataset_id: str, shown: Preview) -> ImportState:
    live = _LIVE.get(row.id) if row.status == "writing" else None
    if live is not None:
        return ImportState(row, dataset_id, shown, live.processed, live.total, live.created, live.updated,
                           live.skipped)
    return ImportState(row, dataset_id, shown, row.records_done, row.records_total, row.records_created,
                       row.records_updated, row.records_skipped)


def status(session: Session, factory: sessionmaker[Session], *, dataset_id: str, import_id: str, actor: Actor,
           now: datetime | None = None) -> ImportState:
    """The import's status, progress and preview. A write whose server stopped beating is marked failed."""
    now = now or utcnow()
    row = find(session, dataset_id=dataset_id, import_id=import_id, actor=actor, now=now)
    if (row.status == "writing" and row.id not in _LIVE and row.heartbeat_at is not None
            and row.heartbeat_at < now - STALE):
        with unit_of_work(factory, write=True) as other:
            marked = other.execute(
                update(StagedImport).where(StagedImport.pk == row.pk, StagedImport.status == "writing",
                                           StagedImport.heartbeat_at < now - STALE)
                .values(status="failed", error=CRASHED)).rowcount  # type: ignore[attr-defined]
        if marked:
            # This read's snapshot may predate the change (SQLite): show it without writing it here again.
            session.expunge(row)
            row.status, row.error = "failed", CRASHED
    return _state(row, dataset_id, preview(session, row))


# Write ----------------------------------------------------------------------------------------------

def _claim(factory: sessionmaker[Session], *, dataset_id: str, import_id: str, actor: Actor,
           mapping: Mapping[str, str]) -> tuple[int, str, dict[str, str]]:
    with unit_of_work(factory, write=True) as session:
        row = find(session, dataset_id=dataset_id, import_id=import_id, actor=actor)
        chosen = check_mapping(mapping, [c for c, _ in row.mapping_guess])
        refusal = Conflict(f"import {import_id} is being written already" if row.status == "writing" else
                           f"import {import_id} was written already, as version {row.version}")
        if row.status not in ("staged", "failed"):
            raise refusal
        claimed = session.execute(
            update(StagedImport).where(StagedImport.pk == row.pk, StagedImport.status.in_(("staged", "failed")))
            .values(status="writing", heartbeat_at=utcnow(), error=None, records_done=0, records_total=0,
                    records_created=0, records_updated=0, records_skipped=0)).rowcount  # type: ignore[attr-defined]
        if not claimed:
            raise refusal
        return row.pk, row.file_kind, chosen


def _file(session: Session, pk: int) -> bytes:
    """The staged file's bytes, read a chunk at a time and joined once.

    Immutable bytes, not a growing bytearray: the reader wraps them in io.BytesIO, which shares bytes but
    copies a bytearray, and that second copy of the file lived as long as the write.
    """
    rows = session.execute(select(StagedImportChunk.data).where(StagedImportChunk.import_pk == pk)
                           .order_by(StagedImportChunk.seq).execution_options(yield_per=1))
    return b"".join(bytes(chunk) for (chunk,) in rows)


def _report(factory: sessionmaker[Session], pk: int, progress: transfer.Progress) -> None:
    with unit_of_work(factory, write=True) as session:
        session.execute(update(StagedImport).where(StagedImport.pk == pk, StagedImport.status == "writing").values(
            records_done=progress.processed, records_total=progress.total, records_created=progress.created,
            records_updated=progress.updated, records_skipped=progress.skipped, heartbeat_at=utcnow()))


def _fail(factory: sessionmaker[Session], pk: int, error: str) -> None:
    with unit_of_work(factory, write=True) as session:
        session.execute(update(StagedImport).where(StagedImport.pk == pk, StagedImport.status == "writing")
                        .values(status="failed", error=error, heartbeat_at=utcnow()))


def write(factory: sessionmaker[Session], *, dataset_id: str, import_id: str, actor: Actor,
          mapping: Mapping[str, str], deduplicate: bool = False) -> transfer.Progress:
    """Write the staged file into the dataset as one new version, with its columns mapped to the record
    fields by `mapping` (column -> field, or "ignore"). Runs its own transactions (see the module's
    docstring); the caller must hold none open on SQLite. A file that does not check out raises, naming
    its row, and the import is marked failed with that error; nothing is stored."""
    pk, fmt, chosen = _claim(factory, dataset_id=dataset_id, import_id=import_id, actor=actor, mapping=mapping)
    progress = transfer.Progress(total=0)
    _LIVE[import_id] = progress
    try:
        with unit_of_work(factory, write=True) as session:
            shared = session.get_bind().dialect.name != "sqlite"
            dataset: Dataset = get_dataset(session, dataset_id=dataset_id, for_update=True)
            ensure_writable(dataset, actor)
            data = _file(session, pk)
            total = transfer.count_rows(data, fmt)
            progress = _LIVE[import_id] = transfer.Progress(total=total, version=dataset.current_version)
            records = transfer.iter_records(data, fmt, chosen)
            for step in transfer.write_upload(session, dataset=dataset, actor=actor, records=records, total=total,
                                              deduplicate=deduplicate, overwrite=True, tags=[]):
                progress = _LIVE[import_id] = step
                if shared:
                    _report(factory, pk, step)
            del data, records
            session.execute(delete(StagedImportChunk).where(StagedImportChunk.import_pk == pk))
            session.execute(update(StagedImport).where(StagedImport.pk == pk).values(
                status="done", records_done=progress.processed, records_total=progress.processed,
                records_created=progress.created, records_updated=progress.updated,
                records_skipped=progress.skipped, version=progress.version, heartbeat_at=utcnow()))
    except KennelError as exc:
        _fail(factory, pk, exc.detail)
        raise
    except BaseException:
        _fail(factory, pk, "the import failed on the server and nothing was stored; see the server log")
        raise
    finally:
        _LIVE.pop(import_id, None)
    progress.total = progress.processed
    return progress
