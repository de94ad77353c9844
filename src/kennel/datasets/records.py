"""Record changes and reads over validity intervals (see models.py).

Every mutation is computed in memory first — inserts, then updates, then deletes, as ddtrace expects —
and only then written with a few set-based statements, so a large batch costs a handful of statements,
not one per record. A change that only adds new records skips the comparing of states, and when no
deduplication is involved each record is checked as it is written (_insert_new). Either way a request
that fails validation is rolled back whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, exists, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset, DatasetRecord, DatasetVersion
from kennel.datasets.schemas import RecordIn, RecordUpdateIn, TagOperations
from kennel.datasets.service import ensure_writable
from kennel.datasets.storage import (build_hash_index, chunks, existing_hashes, insert_revisions, lookup_current,
                                     not_pending, page_columns, queue_closures, refresh_statistics,
                                     start_index_hashes)
from kennel.db.base import utcnow
from kennel.errors import Invalid, NotFound
from kennel.ids import listing, time_ordered_ids, uuid4_stream
from kennel.jsonapi import ORJSON_MAX_DEPTH, check_storable
from kennel.keys.service import Actor


R = DatasetRecord.__table__.c


@dataclass(slots=True)
class RecordState:
    record_id: str
    canonical_id: str
    seq: int | None
    input: Any
    expected_output: Any
    metadata: Any
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    content_hash: str = ""
    author_id: str | None = None
    # The open revision this state came from, if it is stored already.
    pk: int | None = None
    valid_from: int | None = None
    deleted: bool = False
    deleted_at: datetime | None = None


@dataclass(slots=True)
class NewRecord:
    """A record to insert, already validated (file uploads build these without pydantic's overhead).

    `apply_changes` reads inserts by attribute, so the wire model `RecordIn` serves as well.
    """

    id: str | None
    input: Any
    expected_output: Any = None
    metadata: Any = None
    tags: list[str] | None = None
    tag_operations: TagOperations | None = None
    # Set by a caller that has hashed the content already (file uploads, to name the row on failure).
    content_hash: str | None = None


@dataclass
class ChangeResult:
    version: int
    changed: bool
    records: list[RecordState] = field(default_factory=list)


# Copied for each record: cheaper than building a hash object with its parameters every time.
_BLAKE2B_16 = hashlib.blake2b(digest_size=16)


def content_hash(input_: Any, expected_output: Any, metadata: Any, *, pointer: str = "") -> str:
    """Hash of the canonical JSON of a record's content; also checks it can be stored on both backends."""
    parts = (input_, expected_output, metadata)
    try:
        blob = orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # Records are served as the text stored, inside no envelope: orjson's own limit is theirs.
        for name, part in zip(("input", "expected_output", "metadata"), parts):
            check_storable(part, pointer=f"{pointer}/{name}", max_depth=ORJSON_MAX_DEPTH - 1)
        raise Invalid("record content cannot be stored", pointer=pointer) from None
    # Looking for one byte is a memchr, several times faster than looking for six; most content has no
    # escape at all.
    if b"\\" in blob and b"\\u0000" in blob:
        # PostgreSQL's JSONB cannot hold NUL characters; refuse them everywhere for one behaviour.
        raise Invalid("record content contains a NUL character (\\u0000), which cannot be stored",
                      pointer=pointer)
    h = _BLAKE2B_16.copy()
    h.update(blob)
    return h.hexdigest()


def normalize_tags(tags: Iterable[str] | None, ops: TagOperations | None = None, *, pointer: str) -> list[str]:
    """Tags are a set; operations apply remove, then add, then set (which overrides both)."""
    result = set(tags or ())
    if ops is not None:
        result -= set(ops.remove or ())
        result |= set(ops.add or ())
        if ops.set is not None:
            result = set(ops.set)
    for tag in result:
        if not tag or len(tag) > 1024:
            raise Invalid("tags must be non-empty strings of at most 1024 characters", pointer=pointer)
    return sorted(result)


def _check_unique(ids: Sequence[str | None], pointer: str, item_suffix: str = "/id") -> None:
    seen: set[str] = set()
    for index, value in enumerate(ids):
        if value is None:
            continue
        if value in seen:
            raise Invalid(f"record id {value!r} appears more than once in {pointer.rsplit('/', 1)[-1]}",
                          pointer=f"{pointer}/{index}{item_suffix}")
        seen.add(value)


_STATE_COLUMNS = (R.pk, R.record_id, R.canonical_id, R.seq, R.valid_from, R.input, R.expected_output,
                  R.metadata, R.tags, R.content_hash, R.author_id, R.created_at, R.updated_at)


def _fetch_current(session: Session, dataset_pk: int, ids: Sequence[str]) -> dict[str, RecordState]:
    found: dict[str, RecordState] = {}
    for row in lookup_current(session, dataset_pk, ids, _STATE_COLUMNS):
        found[row.record_id] = RecordState(
            record_id=row.record_id, canonical_id=row.canonical_id, seq=row.seq, input=row.input,
            expected_output=row.expected_output, metadata=row.metadata, tags=list(row.tags or []),
            created_at=row.created_at, updated_at=row.updated_at, content_hash=row.content_hash,
            author_id=row.author_id, pk=row.pk, valid_from=row.valid_from)
    return found


def _close_only(session: Session, dataset: Dataset, deletes: Sequence[str], now: datetime,
                pointer: str) -> ChangeResult:
    """A delete that reports nothing back, as one new version: its closings are queued (see
    models.DatasetPendingClosure) rather than written into each record's row."""
    version = dataset.current_version + 1
    closed = queue_closures(session, dataset, deletes, version)
    missing = [rid for rid in deletes if rid not in closed]
    if missing:
        raise NotFound(f"record(s) not found in dataset {dataset.id}: {listing(missing)}; nothing was deleted",
                       pointer=pointer)
    _new_version(session, dataset, version, now)
    return ChangeResult(version=version, changed=True)


def _new_version(session: Session, dataset: Dataset, version: int, now: datetime) -> None:
    if version != dataset.current_version:
        session.execute(insert(DatasetVersion).values(dataset_pk=dataset.pk, version_number=version, created_at=now))
        dataset.current_version = version
    dataset.updated_at = now
    session.flush()


def _existing_hashes(session: Session, dataset: Dataset, parts: Iterable[Sequence[str]]) -> set[str]:
    if not dataset.content_indexed:
        build_hash_index(session, dataset.pk)
        dataset.content_indexed = True
    return existing_hashes(session, dataset.pk, parts)


Prepared = tuple["RecordIn | NewRecord", list[str], str]


def _prepare(rec: RecordIn | NewRecord, common_tags: Sequence[str] | None) -> tuple[list[str], str]:
    """An insert's tags and content hash; an error's pointer is relative to the record (see _prepared)."""
    tags = rec.tags if not common_tags else [*(rec.tags or ()), *common_tags]
    tags = normalize_tags(tags, rec.tag_operations, pointer="/tags")
    # Not getattr(): a missing attribute on a pydantic model costs an exception (~9% of an import).
    digest = (rec.content_hash if isinstance(rec, NewRecord) else None) or content_hash(
        rec.input, rec.expected_output, rec.metadata)
    return tags, digest


def _prepared(inserts: Sequence[RecordIn | NewRecord], common_tags: Sequence[str] | None, pointer: str,
              start: int = 0, stop: int | None = None) -> Iterator[Prepared]:
    """(record, tags, hash) of inserts[start:stop]. Each error's pointer is completed here, once it
    happens: building every record's pointer up front cost more than a tenth of the hashing."""
    for i in range(start, len(inserts) if stop is None else stop):
        rec = inserts[i]
        try:
            tags, digest = _prepare(rec, common_tags)
        except Invalid as exc:
            exc.pointer = f"{pointer}/{i}{exc.pointer or ''}"
            raise
        yield rec, tags, digest


# Inserts are hashed this many at a time when deduplicating, each part's lookup sent before the next
# part is hashed (storage.existing_hashes).
_HASH_PART = 250


def _prepare_all(session: Session, dataset: Dataset, inserts: Sequence[RecordIn | NewRecord],
                 common_tags: Sequence[str] | None, pointer: str,
                 deduplicate: bool) -> tuple[list[Prepared], set[str]]:
    """Every insert prepared, and, when inserts without an id are to be deduplicated, which of their
    hashes an open record of the dataset has already."""
    prepared: list[Prepared] = []

    def parts() -> Iterator[list[str]]:
        """Prepare the inserts a part at a time, yielding each part's hashes of records without an id."""
        for start in range(0, len(inserts), _HASH_PART):
            anonymous = []
            for item in _prepared(inserts, common_tags, pointer, start, min(start + _HASH_PART, len(inserts))):
                prepared.append(item)
                if item[0].id is None:
                    anonymous.append(item[2])
            yield anonymous

    if deduplicate and any(rec.id is None for rec in inserts):
        return prepared, _existing_hashes(session, dataset, parts())
    for _ in parts():
        pass
    return prepared, set()


def _kept(prepared: list[Prepared], seen_hashes: set[str], deduplicate: bool) -> Iterator[Prepared]:
    """The prepared inserts that go in: one without an id is skipped, when deduplicating, if an open
    record of the dataset (`seen_hashes`) or an earlier insert of this change has its content."""
    for item in prepared:
        if item[0].id is None and deduplicate:
            if item[2] in seen_hashes:
                continue
            seen_hashes.add(item[2])
        yield item


def apply_changes(
    session: Session,
    *,
    dataset: Dataset,
    actor: Actor,
    inserts: Sequence[RecordIn | NewRecord] = (),
    updates: Sequence[RecordUpdateIn] = (),
    deletes: Sequence[str] = (),
    create_new_version: bool = True,
    deduplicate: bool = True,
    common_tags: Sequence[str] | None = None,
    report_content: bool = True,
    pointers: tuple[str, str, str] = ("/data/attributes/insert_records", "/data/attributes/update_records",
                                      "/data/attributes/delete_records"),
    ids_are_new: bool = False,
    while_writing: Callable[[ChangeResult], None] | None = None,
) -> ChangeResult:
    """Apply inserts, then updates, then deletes as one change of `dataset` (locked by the caller).

    Inserts carrying an id that is already current replace that record (upsert), as ddtrace re-sends
    records after a bulk upload. Inserts without an id are skipped when `deduplicate` and a current
    record (or an earlier insert of this batch) has the same input, expected output and metadata.
    A change that alters nothing creates no version. With `report_content=False` (a caller that
    answers 204) a pure delete closes the records in SQL without reading them back. `ids_are_new` is
    the caller's word that no insert's id is a current record, so inserts skip the lookup.

    `while_writing` gets the result once it is known and while the database is still taking in the new
    rows (see storage.insert_revisions): a caller renders its response there, in time otherwise spent
    waiting. It is not called if the change inserts no rows.
    """
    ensure_writable(dataset, actor)
    ins_ptr, upd_ptr, del_ptr = pointers
    _check_unique([r.id for r in inserts], ins_ptr)
    _check_unique([r.id for r in updates], upd_ptr)
    _check_unique(list(deletes), del_ptr, item_suffix="")

    now = utcnow()
    referenced = {r.id for r in updates} | set(deletes)
    if not ids_are_new:
        referenced |= {r.id for r in inserts if r.id is not None}
    if not report_content and not inserts and not updates and deletes and create_new_version:
        return _close_only(session, dataset, deletes, now, del_ptr)
    current = _fetch_current(session, dataset.pk, list(referenced)) if referenced else {}
    if inserts and not updates and not deletes and not current:
        return _insert_new(session, dataset, actor, inserts, now=now, common_tags=common_tags,
                           create_new_version=create_new_version, deduplicate=deduplicate, pointer=ins_ptr,
                           while_writing=while_writing)
    states: dict[str, RecordState] = {}
    touched: list[str] = []
    uuids = uuid4_stream()
    record_ids = time_ordered_ids()

    def touch(rid: str) -> None:
        if rid not in states:
            touched.append(rid)

    # Inserts.
    prepared, seen_hashes = _prepare_all(session, dataset, inserts, common_tags, ins_ptr, deduplicate)
    for rec, tags, digest in _kept(prepared, seen_hashes, deduplicate):
        rid = next(record_ids) if rec.id is None else rec.id
        base = current.get(rid)
        touch(rid)
        states[rid] = RecordState(
            record_id=rid,
            canonical_id=base.canonical_id if base else next(uuids),
            seq=base.seq if base else None,
            input=rec.input, expected_output=rec.expected_output, metadata=rec.metadata, tags=tags,
            created_at=base.created_at if base else now, updated_at=now, content_hash=digest,
            author_id=actor.id, pk=base.pk if base else None, valid_from=base.valid_from if base else None)

    # Updates (null leaves a field unchanged), on top of this batch's inserts.
    missing: list[str] = []
    for i, upd in enumerate(updates):
        state = states.get(upd.id) or current.get(upd.id)
        if state is None:
            missing.append(upd.id)
            continue
        fields = upd.model_fields_set
        new = replace(state)
        if "input" in fields and upd.input is not None:
            new.input = upd.input
        if "expected_output" in fields and upd.expected_output is not None:
            new.expected_output = upd.expected_output
        if "metadata" in fields and upd.metadata is not None:
            new.metadata = upd.metadata
        new.tags = normalize_tags(state.tags, upd.tag_operations, pointer=f"{upd_ptr}/{i}/tag_operations")
        new.content_hash = content_hash(new.input, new.expected_output, new.metadata, pointer=f"{upd_ptr}/{i}")
        new.updated_at = now
        new.author_id = actor.id
        touch(upd.id)
        states[upd.id] = new
    if missing:
        raise NotFound(f"record(s) not found in dataset {dataset.id}: {listing(missing)}; nothing was changed",
                       pointer=upd_ptr)

    # Deletes.
    for rid in deletes:
        state = states.get(rid) or current.get(rid)
        if state is None:
            missing.append(rid)
            continue
        touch(rid)
        states[rid] = replace(state, deleted=True, deleted_at=now)
    if missing:
        raise NotFound(f"record(s) not found in dataset {dataset.id}: {listing(missing)}; nothing was deleted",
                       pointer=del_ptr)

    # Work out what really changes.
    to_close: list[RecordState] = []
    to_insert: list[RecordState] = []
    for rid in touched:
        state, base = states[rid], current.get(rid)
        if state.deleted:
            if base is not None:
                to_close.append(base)
        elif base is None:
            to_insert.append(state)
        elif state.content_hash != base.content_hash or state.tags != base.tags:
            to_close.append(base)
            to_insert.append(state)
        else:
            # Unchanged: keep the stored timestamps and author so a re-sent record reads as before.
            state.updated_at = base.updated_at
            state.author_id = base.author_id
    changed = bool(to_close or to_insert)
    version = dataset.current_version + 1 if (changed and create_new_version) else dataset.current_version

    result = ChangeResult(version=version, changed=changed, records=[states[rid] for rid in touched])
    if changed:
        meanwhile = (lambda: while_writing(result)) if while_writing else None
        _write(session, dataset, version, to_close, to_insert, now, meanwhile)
        _new_version(session, dataset, version, now)
    return result


def _insert_new(session: Session, dataset: Dataset, actor: Actor, inserts: Sequence[RecordIn | NewRecord], *,
                now: datetime, common_tags: Sequence[str] | None, create_new_version: bool, deduplicate: bool,
                pointer: str, while_writing: Callable[[ChangeResult], None] | None) -> ChangeResult:
    """A change that only adds records, none of them naming a current record (the import and append path).

    Here a record's fate depends on nothing but the content hashes (deduplication), so each goes
    straight into a row, without the bookkeeping a general change needs to compare states.

    Where there is no content to compare with the dataset's and no content index to keep beside, each
    record is checked, hashed and made into a row just before it goes out. On PostgreSQL the database
    takes in the first rows while this thread works on the next ones, instead of waiting for all of
    them (measured: about 8 ms of a 1,000-record request moved off the path). A record that fails its
    checks half-way raises out of the write; the request's transaction is rolled back and nothing is
    kept, as when the checks ran first.
    """
    version = dataset.current_version + 1 if create_new_version else dataset.current_version
    result = ChangeResult(version=version, changed=True)
    made = result.records
    first = dataset.next_seq
    uuids = uuid4_stream()
    record_ids = time_ordered_ids()
    author = actor.id

    def state(rec: RecordIn | NewRecord, tags: list[str], digest: str) -> RecordState:
        # By position: keyword arguments cost twice as much, for a thousand records a request.
        made.append(new := RecordState(
            rec.id if rec.id is not None else next(record_ids), next(uuids), first + len(made), rec.input,
            rec.expected_output, rec.metadata, tags, now, now, digest, author))
        return new

    meanwhile = (lambda: while_writing(result)) if while_writing else None
    deduplicating = deduplicate and any(rec.id is None for rec in inserts)
    if not dataset.content_indexed and not deduplicating:
        insert_revisions(session, dataset.pk, version,
                         (state(*item) for item in _prepared(inserts, common_tags, pointer)), meanwhile)
    else:
        prepared, seen_hashes = _prepare_all(session, dataset, inserts, common_tags, pointer, deduplicate)
        for item in _kept(prepared, seen_hashes, deduplicate):
            state(*item)
        if not made:
            return ChangeResult(version=dataset.current_version, changed=False)
        # The dataset is indexed by now: it was, or the lookup above has just indexed it.
        finish_index = start_index_hashes(session, dataset.pk, made)
        try:
            insert_revisions(session, dataset.pk, version, made, meanwhile)
        finally:
            finish_index()
    dataset.next_seq = first + len(made)
    refresh_statistics(session, first, dataset.next_seq)
    _new_version(session, dataset, version, now)
    return result


def _write(session: Session, dataset: Dataset, version: int, to_close: list[RecordState],
           to_insert: list[RecordState], now: datetime, meanwhile: Callable[[], None] | None) -> None:
    # A revision opened in the very version being amended (create_new_version=false) would close into
    # an empty interval; drop it instead.
    drop = [s.pk for s in to_close if s.valid_from == version]
    close = [s.pk for s in to_close if s.valid_from != version]
    for part in chunks(drop):
        session.execute(delete(DatasetRecord).where(R.pk.in_(part)))
    for part in chunks(close):
        session.execute(update(DatasetRecord).where(R.pk.in_(part)).values(valid_to=version))
    fresh = [s for s in to_insert if s.seq is None]
    if fresh:
        first = dataset.next_seq
        for offset, state in enumerate(fresh):
            state.seq = first + offset
        dataset.next_seq = first + len(fresh)
    finish_index = start_index_hashes(session, dataset.pk, to_insert) if dataset.content_indexed else None
    try:
        insert_revisions(session, dataset.pk, version, to_insert, meanwhile)
    finally:
        if finish_index is not None:
            finish_index()
    if fresh:
        refresh_statistics(session, first, dataset.next_seq)


def check_version(dataset: Dataset, version: int | None, *, parameter: str = "filter[version]") -> int:
    if version is None:
        return dataset.current_version
    if version < 0 or version > dataset.current_version:
        # Same words as the hosted API (ddtrace shows them to the user).
        raise Invalid("invalid version: version is greater than the current version or negative",
                      parameter=parameter)
    return version


def visible_at(version: int):
    """Revisions visible at `version`: the validity-interval condition."""
    return and_(R.valid_from <= version, or_(R.valid_to.is_(None), R.valid_to > version))


def visible(dataset_pk: int, version: int, *, current: bool, pending: bool):
    """Revisions of a dataset visible at `version`. `current`: `version` is the current one, so the
    partial index of open rows serves it. `pending`: the dataset has closings still pending, to leave out."""
    cond = R.valid_to.is_(None) if current else visible_at(version)
    if pending:
        cond = and_(cond, not_pending(version))
    return and_(R.dataset_pk == dataset_pk, cond)


def visible_in(dataset: Dataset, version: int):
    """Revisions of `dataset` (as just read) visible at `version`."""
    return visible(dataset.pk, version, current=version == dataset.current_version, pending=dataset.closures_pending)


def _tags_any(session: Session, tags: Sequence[str]):
    if session.get_bind().dialect.name == "postgresql":
        return R.tags.op("?|")(postgresql.array(list(tags)))
    each = func.json_each(R.tags).table_valued("value")
    return exists(select(literal_column("1")).select_from(each).where(each.c.value.in_(list(tags))))


def read_records(session: Session, *, dataset: Dataset, version: int, tags: Sequence[str] | None,
                 after_seq: int | None, limit: int) -> list[Any]:
    """One page of the records visible at `version`, newest first (keyset on `seq`).

    Rows carry JSON as stored text and timestamps raw (see `storage.page_columns`).
    """
    stmt = select(*page_columns(session)).where(visible_in(dataset, version))
    if tags:
        stmt = stmt.where(_tags_any(session, tags))
    if after_seq is not None:
        stmt = stmt.where(R.seq < after_seq)
    # .all() fetches the page in one driver call; iterating the result fetched it row by row.
    return session.execute(stmt.order_by(R.seq.desc()).limit(limit)).all()


def change_records(session: Session, *, project_id: str, dataset_id: str, actor: Actor,
                   **changes: Any) -> tuple[Dataset, ChangeResult]:
    """Lock the dataset and apply one change to its records (see `apply_changes`)."""
    from kennel.datasets.service import get_dataset

    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    return dataset, apply_changes(session, dataset=dataset, actor=actor, **changes)


def list_records(session: Session, *, project_id: str, dataset_id: str, version: int | None,
                 tags: Sequence[str] | None, cursor: tuple[int, int] | None,
                 limit: int) -> tuple[Dataset, list[Any], tuple[int, int] | None]:
    """A page of records and the (seq, version) cursor of the next page.

    The cursor pins the version read on the first page, so a dataset that changes while a client
    pages through it still yields one consistent version.
    """
    from kennel.datasets.service import get_dataset

    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id)
    if cursor is not None:
        after_seq, version = cursor
        check_version(dataset, version, parameter="page[cursor]")
    else:
        after_seq, version = None, check_version(dataset, version)
    rows = read_records(session, dataset=dataset, version=version, tags=tags, after_seq=after_seq,
                        limit=limit + 1)
    next_cursor = (rows[limit - 1].seq, version) if len(rows) > limit else None
    return dataset, rows[:limit], next_cursor
