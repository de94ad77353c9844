"""Records in and out as files: CSV/JSONL parsing for uploads, and the streamed export.

Uploads are all or nothing and read the file once: rows are checked as they are written, in chunks
inside one transaction, and the first problem (naming its row) aborts the transaction. Routes check
the first chunk before they answer, so a file that is wrong from the start still gets a plain 400.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from kennel.datasets.models import Dataset
from kennel.datasets.plan import Change, NewRecord, content_hash, normalize_tags
from kennel.datasets.records import apply_changes, check_version
from kennel.datasets.service import get_dataset
from kennel.datasets.store import store_for
from kennel.db.engine import defer_checkpoint
from kennel.db.session import unit_of_work
from kennel.errors import Invalid, KennelError, out_of_space
from kennel.gate import Admission
from kennel.jsonapi import exact_loads, may_hold_wide_int
from kennel.keys.service import Actor

log = logging.getLogger("kennel")

MAX_FIELD = 10 * 1024 * 1024
MAX_ID = 255
FORMATS = ("csv", "jsonl")
CSV_COLUMNS = ("id", "input", "expected_output", "metadata", "tags")
# The csv module refuses fields over 128 KiB by default; our limit is 10 MiB, and we report it ourselves.
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))

_JSON_START = frozenset('{["-0123456789tfn')


# Format detection -------------------------------------------------------------------------------

_EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
_CONTENT_TYPES = {"text/csv": "csv", "application/csv": "csv", "application/jsonl": "jsonl",
                  "application/x-ndjson": "jsonl", "application/x-jsonlines": "jsonl",
                  "application/jsonlines": "jsonl", "application/ndjson": "jsonl"}


def detect_format(requested: str | None, filename: str | None, content_type: str | None) -> str:
    """`format` if given, else the file's extension, else its content type; CSV when nothing says."""
    if requested:
        fmt = requested.strip().lower()
        if fmt not in FORMATS:
            raise Invalid(f"unknown format {requested!r}; use csv or jsonl", parameter="format")
        return fmt
    name = (filename or "").rsplit("/", 1)[-1]
    if "." in name:
        ext = name.rsplit(".", 1)[1].lower()
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
        if ext not in ("txt", "tmp"):
            raise Invalid(f"unknown file format {ext!r} ({name}); upload a .csv or .jsonl file", parameter="file")
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    return _CONTENT_TYPES.get(ctype, "csv")


# Parsing ----------------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Invalid(f"line {line}: the file is not valid UTF-8 (byte offset {exc.start}); "
                      "nothing was stored", parameter="file", meta={"line": line}) from None


def _problem(where: str, message: str, number: int) -> Invalid:
    return Invalid(f"{where}: {message}; nothing was stored", parameter="file", meta={"row": number})


Loads = Callable[[str], Any]


def _loads(data: bytes, fmt: str) -> Loads:
    """The JSON parser for this file's cells and lines: orjson's, unless the file may hold an integer
    beyond 64 bits, which orjson would read as a float, a changed number stored without a word. One
    scan of the whole file costs a tenth of parsing it, and spares the files without one (nearly all)
    a check of each row."""
    return exact_loads if may_hold_wide_int(data, csv=fmt == "csv") else orjson.loads


def _cell(raw: str, loads: Loads) -> Any:
    """A cell that parses as JSON is that JSON; otherwise it is the string. An empty cell is null."""
    if raw == "":
        return None
    stripped = raw.lstrip()
    if stripped and stripped[0] in _JSON_START:
        try:
            return loads(raw)
        except orjson.JSONDecodeError:
            return raw
        except Invalid as exc:
            raise _RowProblem(exc.detail) from None
    return raw


def _too_big(value: str) -> bool:
    # Characters are at most 4 bytes; encode only when the cheap bound cannot decide.
    return len(value) > MAX_FIELD or (len(value) > MAX_FIELD // 4 and len(value.encode()) > MAX_FIELD)


class _RowProblem(Exception):
    """A row's value is wrong; the parser that read the row adds where it is."""


def _record(rid: Any, input_: Any, expected: Any, metadata: Any, tags: Any) -> NewRecord:
    """Validate one row's values (already decoded) into a record."""
    if rid is not None:
        if not isinstance(rid, str):
            raise _RowProblem(f"id must be a string, got {type(rid).__name__}")
        if len(rid) > MAX_ID:
            raise _RowProblem(f"id is longer than {MAX_ID} characters")
        if "\x00" in rid:
            raise _RowProblem("id contains a NUL character")
        rid = rid or None
    if metadata == "":
        metadata = None  # ddtrace encodes an absent metadata as the JSON string ""
    if metadata is not None and not isinstance(metadata, dict):
        raise _RowProblem(f"metadata must be a JSON object, got {type(metadata).__name__}")
    if tags is None or tags == "":
        tag_list: list[str] = []
    elif isinstance(tags, str):
        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
    elif isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        tag_list = tags
    else:
        raise _RowProblem("tags must be a JSON array of strings or a comma-separated string")
    if any("\x00" in t for t in tag_list):
        raise _RowProblem("a tag contains a NUL character")
    try:
        normalize_tags(tag_list, pointer="")
        # Hashed here, where a problem can name the row; apply_changes reuses the hash.
        digest = content_hash(input_, expected, metadata, pointer="")
    except Invalid as exc:
        raise _RowProblem(exc.detail) from None
    return NewRecord(rid, input_, expected, metadata, tag_list, content_hash=digest)


def _csv_records(lines: Iterable[str], loads: Loads, columns: Mapping[str, str] | None) -> Iterator[NewRecord]:
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _problem("the header row", f"does not parse as CSV ({exc})", 0) from None
    if header is None:
        raise Invalid("the file is empty; expected a header row with an `input` column", parameter="file")
    # A column left out of the mapping gets no name, so the parser passes over it.
    names = ([h.strip().lower() for h in header] if columns is None
             else [columns.get(h.strip(), "") for h in header])
    if "input" not in names:
        raise Invalid(f"the file has no `input` column (its columns: {', '.join(header) or 'none'}); "
                      "nothing was stored", parameter="file")
    for name in CSV_COLUMNS:
        if names.count(name) > 1:
            raise Invalid(f"the column `{name}` appears more than once in the header", parameter="file")
    pos = {name: names.index(name) for name in CSV_COLUMNS if name in names}
    width = len(header)
    # -1 picks the empty string appended to every row below: an absent column reads as an empty cell.
    i_id, i_expected, i_metadata, i_tags = (pos.get(name, -1) for name in ("id", "expected_output", "metadata",
                                                                               "tags"))
    i_input = pos["input"]
    number = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = (f"a field is larger than 10 MB ({MAX_FIELD} characters)" if "field limit" in str(exc)
                      else f"does not parse as CSV ({exc})")
            raise _problem(f"row {number + 1} (line {line})", reason, number + 1) from None
        if not row:
            continue  # a blank line
        number += 1
        try:
            if len(row) != width:
                raise _RowProblem(f"has {len(row)} fields but the header has {width}")
            if max(map(len, row)) > MAX_FIELD // 4 and any(_too_big(value) for value in row):
                raise _RowProblem("a field is larger than 10 MB")
            if row[i_input] == "":
                raise _RowProblem("input is empty (write null for a null input)")
            row.append("")
            # In a file that may hold a wide integer, only the rows that may hold it pay for exact_loads
            # (a check of each cell would double the parse).
            cells = loads if loads is orjson.loads or may_hold_wide_int(" ".join(row).encode()) else orjson.loads
            rec = _record(
                row[i_id] if i_id >= 0 else None,  # ids are taken verbatim, never JSON-decoded
                _cell(row[i_input], cells), _cell(row[i_expected], cells), _cell(row[i_metadata], cells),
                _cell(row[i_tags], cells))
        except _RowProblem as exc:
            raise _problem(f"row {number} (line {line})", str(exc), number) from None
        yield rec


def _jsonl_records(lines: Iterable[str], loads: Loads, columns: Mapping[str, str] | None) -> Iterator[NewRecord]:
    number = 0
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        number += 1
        try:
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                raise _RowProblem(f"does not parse as JSON ({exc})") from None
            except Invalid as exc:
                raise _RowProblem(exc.detail) from None
            if not isinstance(obj, dict):
                raise _RowProblem(f"must be a JSON object, got {type(obj).__name__}")
            if columns is not None:
                obj = {role: obj[key] for key, role in columns.items() if key in obj}
            if "input" not in obj:
                raise _RowProblem("has no `input`")
            if len(line) > MAX_FIELD // 4:
                for name in CSV_COLUMNS:
                    if name in obj and _too_big(orjson.dumps(obj[name]).decode()):
                        raise _RowProblem(f"{name} is larger than 10 MB")
            rec = _record(obj.get("id"), obj["input"], obj.get("expected_output"), obj.get("metadata"),
                          obj.get("tags"))
        except _RowProblem as exc:
            raise _problem(f"line {line_no}", str(exc), number) from None
        yield rec


def iter_records(data: bytes, fmt: str, columns: Mapping[str, str] | None = None) -> Iterator[NewRecord]:
    """The file's records, each checked as it is read; the first problem raises, naming its row.

    `columns` maps the file's own column names (CSV header, JSONL keys) to the record fields
    (input, expected_output, metadata, tags, id); without it the file must use those names.

    The bytes are decoded a block at a time as the rows are read (io.TextIOWrapper, with the line
    splitting csv wants), never into one string the size of the file: a 100 MB upload otherwise spent
    more time copying the whole file around than parsing it, and held several copies at once.
    """
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    loads = _loads(data, fmt)
    records = _csv_records(lines, loads, columns) if fmt == "csv" else _jsonl_records(lines, loads, columns)
    try:
        yield from _unique_ids(records)
    except UnicodeDecodeError:
        decode(data)  # raises, naming the line of the first bad byte
        raise


def start_records(data: bytes, fmt: str) -> tuple[Iterator[NewRecord], int]:
    """The file's records with its first chunk already checked (its problems raise here, before a
    response starts), and the number of records for progress totals."""
    rows = iter_records(data, fmt)
    first = list(itertools.islice(rows, UPLOAD_CHUNK))
    total = len(first) if len(first) < UPLOAD_CHUNK else count_rows(data, fmt)
    return itertools.chain(first, rows), total


def count_rows(data: bytes, fmt: str) -> int:
    """About how many records the file holds, for progress totals, without decoding or copying it.

    A CSV line starts a row unless an odd number of quotes came before it (a quoted field spans
    lines); blank lines are skipped as the parser skips them. Exact for the files that parse, but
    for JSONL lines of nothing but many spaces.
    """
    rows = quotes = pos = 0
    csv_ = fmt == "csv"
    end = len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        if nl < 0:
            nl = end
        if csv_:
            if not quotes & 1 and nl - pos > (1 if data[nl - 1:nl] == b"\r" else 0):
                rows += 1
            quotes += data.count(b'"', pos, nl)
        elif nl - pos > 8 or data[pos:nl].strip():
            rows += 1
        pos = nl + 1
    return max(rows - 1, 0) if csv_ else rows


def _unique_ids(records: Iterator[NewRecord]) -> Iterator[NewRecord]:
    """Pass records through, refusing an id that an earlier row of the file already used."""
    first_row: dict[str, int] = {}
    for number, rec in enumerate(records, start=1):
        if rec.id is not None:
            if rec.id in first_row:
                raise Invalid(f"row {number}: id {rec.id!r} already appears in row {first_row[rec.id]}; "
                              "nothing was stored", parameter="file", meta={"row": number})
            first_row[rec.id] = number
        yield rec


# Writing ----------------------------------------------------------------------------------------

UPLOAD_CHUNK = 5000


@dataclass
class Progress:
    total: int
    processed: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    version: int = 0

    def counts(self) -> dict[str, int]:
        return {"records_processed": self.processed, "records_total": self.total,
                "records_created": self.created, "records_updated": self.updated,
                "records_skipped": self.skipped, "version": self.version}


def write_upload(session: Session, *, dataset: Dataset, actor: Actor, records: Iterable[NewRecord], total: int,
                 deduplicate: bool, overwrite: bool, tags: Sequence[str]) -> Iterator[Progress]:
    """Write a file's records (`iter_records`) into `dataset` (locked by the caller), yielding progress
    after each chunk.

    The whole file is one new version: the first chunk that changes something opens it, later chunks
    amend it (as ddtrace's multi-batch create does). Rows with an id replace the current record of
    that id (upsert) unless `overwrite` is false, in which case they are skipped. A row that does not
    check out raises mid-way; the caller's transaction rollback makes the upload all or nothing.
    """
    progress = Progress(total=total, version=dataset.current_version)
    defer_checkpoint(session)
    opened = False
    batch: list[NewRecord] = []
    # Into a dataset with no open records, no row's id can name a stored record (ids are unique within
    # the file), so no chunk needs to look its ids up.
    store = store_for(session)
    empty = not store.has_open_records(dataset.pk)

    def flush() -> None:
        nonlocal opened
        rows = batch
        if not overwrite and not empty:
            ids = [r.id for r in rows if r.id is not None]
            existing = store.current_ids(dataset.pk, ids) if ids else set()
            rows = [r for r in rows if r.id is None or r.id not in existing]
        change = Change(inserts=rows, deduplicate=deduplicate, create_new_version=not opened,
                        common_tags=list(tags) or None)
        result = apply_changes(session, dataset=dataset, actor=actor, change=change, pointers=("/file",) * 3,
                               ids_are_new=empty)
        opened = opened or result.changed
        created = sum(1 for s in result.records if s.pk is None)
        progress.created += created
        progress.updated += len(result.records) - created
        progress.skipped += len(batch) - len(result.records)
        progress.processed += len(batch)
        progress.version = result.version

    for rec in records:
        batch.append(rec)
        if len(batch) >= UPLOAD_CHUNK:
            flush()
            batch = []
            yield progress
    if batch:
        flush()
        yield progress


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Cancelled(Exception):
    """The client went away: abandon the write so its transaction rolls back."""


async def upload_events(factory: sessionmaker[Session], admission: Admission, *, project_id: str, dataset_id: str,
                        actor: Actor, records: Iterable[NewRecord], total: int, deduplicate: bool, overwrite: bool,
                        tags: list[str]) -> AsyncIterator[bytes]:
    """Write the file in one transaction on a worker thread, relaying its progress as events.

    The transaction lives on the worker, never across a `yield`: a client that hangs up cancels this
    generator, which tells the worker to stop; it raises between chunks and rolls back, so nothing
    of the file is stored and no lock outlives the request.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
    cancel = threading.Event()

    def post(item: tuple[str, dict[str, Any]] | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            with unit_of_work(factory, write=True) as session:
                dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
                progress = Progress(total=total, version=dataset.current_version)
                for progress in write_upload(session, dataset=dataset, actor=actor, records=records,
                                                      total=total, deduplicate=deduplicate, overwrite=overwrite,
                                                      tags=tags):
                    if cancel.is_set():
                        raise _Cancelled
                    post(("progress", progress.counts()))
                if cancel.is_set():
                    raise _Cancelled
                # The total was counted from the file's lines; the rows read are the exact figure.
                progress.total = progress.processed
                done = {**progress.counts(), "dataset_id": dataset.id}
            post(("completed", done))
        except _Cancelled:
            pass
        except KennelError as exc:
            post(("error", {"message": exc.detail, "status": exc.status}))
        except Exception as exc:
            full = out_of_space(exc)
            if full is not None:
                log.error("out of disk space in the upload into dataset %s: %s", dataset_id, full.detail)
                post(("error", {"message": full.detail, "status": full.status}))
                return
            log.exception("upload into dataset %s failed", dataset_id)
            post(("error", {"message": "the upload failed on the server and nothing was stored; "
                                       "see the server log", "status": 500}))
        finally:
            post(None)

    yield sse("progress", Progress(total=total).counts())
    try:
        # The answer has started, so the gate's write turn is over: the write waits for one of its own.
        async with admission.write_turn():
            worker = loop.run_in_executor(None, work)
            try:
                while (item := await queue.get()) is not None:
                    yield sse(*item)
            finally:
                cancel.set()
            await worker
    except KennelError as exc:
        yield sse("error", {"message": exc.detail, "status": exc.status})


# Export -----------------------------------------------------------------------------------------

EXPORT_PAGE = 5000
EXPORT_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def count_records(session: Session, *, dataset: Dataset, version: int) -> int:
    return store_for(session).count(dataset, version)


@dataclass(frozen=True)
class Export:
    """A file of a dataset's records at one version, ready to stream."""

    body: Iterator[bytes]
    media_type: str
    filename: str
    count: int
    version: int


def start_export(session: Session, factory: sessionmaker[Session], *, project_id: str, dataset_id: str,
                 fmt: str | None, version: int | None) -> Export:
    """Check the request, count the records, and make the body: read page by page in short transactions
    of its own (export_stream), after the request's session has closed."""
    requested, fmt = fmt, (fmt or "csv").strip().lower()
    if fmt not in FORMATS:
        raise Invalid(f"unknown format {requested!r}; use csv or jsonl", parameter="format")
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
    v = check_version(dataset, version, parameter="version")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name)[:100] or "dataset"
    return Export(body=export_stream(factory, dataset=dataset, version=v, fmt=fmt), media_type=EXPORT_MEDIA[fmt],
                  filename=f"{safe}-v{v}.{fmt}", count=count_records(session, dataset=dataset, version=v), version=v)


def _text(value: str | None) -> str:
    return "" if value is None or value == "null" else value


def _tags_text(value: str | None) -> str:
    return "" if value is None or value in ("null", "[]") else value


def _quoted(value: str) -> str:
    # csv.writer's QUOTE_MINIMAL, done with str.replace: JSON text is full of quotes, and the csv
    # module's per-character loop was most of the export's time.
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_page(rows: Sequence[Any]) -> bytes:
    return "".join(
        # A null input is written as `null`: an empty input cell is refused on upload.
        f"{_quoted(r.record_id)},{_quoted(r.input if r.input is not None else 'null')},"
        f"{_quoted(_text(r.expected_output))},{_quoted(_text(r.metadata))},{_quoted(_tags_text(r.tags))}\r\n"
        for r in rows).encode()


def _jsonl_page(rows: Sequence[Any]) -> bytes:
    return "".join(
        f'{{"id":{orjson.dumps(r.record_id).decode()},"input":{r.input or "null"},'
        f'"expected_output":{r.expected_output or "null"},"metadata":{r.metadata or "null"},'
        f'"tags":{r.tags or "[]"}}}\n'
        for r in rows).encode()


def export_stream(factory: sessionmaker[Session], *, dataset: Dataset, version: int, fmt: str) -> Iterator[bytes]:
    """The records visible at `version` in creation order, one page per short read transaction.

    Each page is read in its own transaction, so a long download holds no snapshot or lock open and
    the server's memory stays at about one page whatever the dataset's size. Versions are immutable
    under validity intervals, so pages read in different transactions still describe one version.
    Closings still pending when the export began are left out on every page (settled or not by then);
    a closing queued later is at a version after `version`, so it cannot matter.
    """
    if fmt == "csv":
        yield (",".join(CSV_COLUMNS) + "\r\n").encode()
    encode = _csv_page if fmt == "csv" else _jsonl_page
    after = 0
    while True:
        with unit_of_work(factory, write=False) as session:
            rows = store_for(session).export_page(dataset, version, after_seq=after, limit=EXPORT_PAGE)
        if not rows:
            return
        after = rows[-1].seq
        yield encode(rows)
        if len(rows) < EXPORT_PAGE:
            return
