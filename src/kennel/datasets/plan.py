"""Planning a record change: what closes, what opens, and at which version. No SQL, no HTTP.

A change is a request's inserts, updates and deletes (applied in that order, as ddtrace expects) and its
options. Given the current states of the records it names (which the store looks up), `plan_change`
decides everything; `new_states` does the same, lazily, for a change that only adds records (the import
and append path), so that the store can send each row as soon as it is made. The store then carries the
plan out (store.py).

Problems are raised as `PlanError`: the error, with a pointer relative to the part of the change it is
about; the caller knows where that part sits in its request and completes the pointer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import orjson

from kennel.datasets.schemas import RecordIn, RecordUpdateIn, TagOperations
from kennel.errors import Invalid, KennelError, NotFound
from kennel.ids import listing, time_ordered_ids, uuid4_stream
from kennel.jsonapi import ORJSON_MAX_DEPTH, check_storable


@dataclass(slots=True)
class RecordState:
    """One state of one record: a stored revision (`pk` set) or one a change is about to write.

    Its first fields are models.RECORD_FIELDS, by the same names.
    """

    record_id: str
    canonical_id: str
    seq: int | None
    input: Any
    expected_output: Any
    metadata: Any
    tags: list[str]
    content_hash: str
    author_id: str | None
    created_at: datetime
    updated_at: datetime
    # The open revision this state came from, if it is stored already.
    pk: int | None = None
    valid_from: int | None = None
    deleted: bool = False
    deleted_at: datetime | None = None


@dataclass(slots=True)
class NewRecord:
    """A record to insert, already validated (file uploads build these without pydantic's overhead).

    Inserts are read by attribute, so the wire model `RecordIn` serves as well.
    """

    id: str | None
    input: Any
    expected_output: Any = None
    metadata: Any = None
    tags: list[str] | None = None
    tag_operations: TagOperations | None = None
    # Set by a caller that has hashed the content already (file uploads, to name the row on failure).
    content_hash: str | None = None


Insert = RecordIn | NewRecord
Part = Literal["inserts", "updates", "deletes"]


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a dataset's records, as a request asks for it."""

    inserts: Sequence[Insert] = ()
    updates: Sequence[RecordUpdateIn] = ()
    deletes: Sequence[str] = ()
    # False amends the current version (ddtrace's follow-up batches) instead of making a new one.
    create_new_version: bool = True
    # Skip an insert without an id whose content an open record (or an earlier insert) already has.
    deduplicate: bool = True
    # Tags added to every insert.
    common_tags: Sequence[str] | None = None


class PlanError(Exception):
    """A problem with one part of a change; `error.pointer` is relative to that part's list."""

    def __init__(self, part: Part, error: KennelError) -> None:
        super().__init__(error.detail)
        self.part = part
        self.error = error


@dataclass(slots=True)
class Tally:
    """What a change adds to its version's facts (models.DatasetVersion): records added, changed and
    deleted, counted from the revisions as history.py counts them. A change that amends its version
    (create_new_version=false) may take back some of what the version counted before."""

    added: int = 0
    changed: int = 0
    deleted: int = 0


@dataclass
class Plan:
    """What a change writes: `close` the stored revisions of `close`, open `insert`, at `version`.

    `records` are the states the change reports back, in the order the request named them. `tally` is
    what the change adds to the version's counts, but for `undone`: revisions opened in the version being
    amended that this change deletes, which the version counted as additions or as changes; which of the
    two, only the store can say (RecordStore.changed_at).
    """

    version: int
    changed: bool
    records: list[RecordState] = field(default_factory=list)
    close: list[RecordState] = field(default_factory=list)
    insert: list[RecordState] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    undone: list[RecordState] = field(default_factory=list)

    def count_undone(self, changes: int) -> None:
        """Complete the tally once the store has said how many of `undone` the version had counted as
        changes: those become deletions, and the additions among them are taken back."""
        self.tally.changed -= changes
        self.tally.deleted += changes
        self.tally.added -= len(self.undone) - changes


# Copied for each record: cheaper than building a hash object with its parameters every time.
_BLAKE2B_16 = hashlib.blake2b(digest_size=16)


def content_hash(input_: Any, expected_output: Any, metadata: Any, *, pointer: str = "") -> str:
    """Hash of the canonical JSON of a record's content; also checks it can be stored on both backends."""
    parts = (input_, expected_output, metadata)
    try:
        blob = orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # Records are served as the text stored, inside no envelope: orjson's own limit is theirs.
        for name, part in zip(("input", "expected_output", "metadata"), parts, strict=True):
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


def _check_unique(part: Part, name: str, ids: Iterable[str | None], item_suffix: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(ids):
        if value is None:
            continue
        if value in seen:
            raise PlanError(part, Invalid(f"record id {value!r} appears more than once in {name}",
                                          pointer=f"/{index}{item_suffix}"))
        seen.add(value)


def check_change(change: Change, names: Mapping[Part, str]) -> None:
    """Each record id at most once in each part of the change; `names` are the parts' names in the
    request, for the messages."""
    _check_unique("inserts", names["inserts"], (r.id for r in change.inserts), "/id")
    _check_unique("updates", names["updates"], (r.id for r in change.updates), "/id")
    _check_unique("deletes", names["deletes"], change.deletes, "")


def referenced_ids(change: Change, *, ids_are_new: bool) -> list[str]:
    """The record ids whose current states the plan needs. `ids_are_new` is the caller's word that no
    insert's id is a current record."""
    referenced = {r.id for r in change.updates} | set(change.deletes)
    if not ids_are_new:
        referenced |= {r.id for r in change.inserts if r.id is not None}
    return list(referenced)


# An insert ready to become a state: the record, its tags, its content hash.
Prepared = tuple[Insert, list[str], str]


def prepare_inserts(change: Change, start: int = 0, stop: int | None = None) -> Iterator[Prepared]:
    """(record, tags, hash) of inserts[start:stop], each checked as it is made."""
    inserts, common = change.inserts, change.common_tags
    for i in range(start, len(inserts) if stop is None else stop):
        rec = inserts[i]
        try:
            tags = rec.tags if not common else [*(rec.tags or ()), *common]
            tags = normalize_tags(tags, rec.tag_operations, pointer="/tags")
            # Not getattr(): a missing attribute on a pydantic model costs an exception.
            digest = (rec.content_hash if isinstance(rec, NewRecord) else None) or content_hash(
                rec.input, rec.expected_output, rec.metadata)
        except Invalid as exc:
            # The record's pointer is made only when it is needed: making every record's up front cost
            # more than a tenth of the hashing.
            exc.pointer = f"/{i}{exc.pointer or ''}"
            raise PlanError("inserts", exc) from None
        yield rec, tags, digest


def kept(prepared: Iterable[Prepared], seen_hashes: set[str], deduplicate: bool) -> Iterator[Prepared]:
    """The prepared inserts that go in: one without an id is skipped, when deduplicating, if an open
    record of the dataset (`seen_hashes`, which this extends) or an earlier insert has its content."""
    for item in prepared:
        if item[0].id is None and deduplicate:
            if item[2] in seen_hashes:
                continue
            seen_hashes.add(item[2])
        yield item


def next_version(current_version: int, change: Change) -> int:
    return current_version + 1 if change.create_new_version else current_version


def new_states(prepared: Iterable[Prepared], made: list[RecordState], *, first_seq: int, author_id: str | None,
               now: datetime) -> Iterator[RecordState]:
    """States of new records (none of them naming a current record), appended to `made` as they are made."""
    uuids = uuid4_stream()
    record_ids = time_ordered_ids()
    for rec, tags, digest in prepared:
        # By position: keyword arguments cost twice as much, for a thousand records a request.
        made.append(new := RecordState(
            rec.id if rec.id is not None else next(record_ids), next(uuids), first_seq + len(made), rec.input,
            rec.expected_output, rec.metadata, tags, digest, author_id, now, now))
        yield new


def plan_change(change: Change, prepared: Iterable[Prepared], *, current: Mapping[str, RecordState],
                current_version: int, author_id: str | None, now: datetime, dataset_label: str) -> Plan:
    """The plan of a general change. `prepared` are its kept inserts; `current` the open states of the
    records it names. New records get no `seq` here: the store numbers them as it writes."""
    states: dict[str, RecordState] = {}
    touched: list[str] = []
    uuids = uuid4_stream()
    record_ids = time_ordered_ids()

    for rec, tags, digest in prepared:
        rid = next(record_ids) if rec.id is None else rec.id
        base = current.get(rid)
        if rid not in states:
            touched.append(rid)
        states[rid] = RecordState(
            record_id=rid, canonical_id=base.canonical_id if base else next(uuids), seq=base.seq if base else None,
            input=rec.input, expected_output=rec.expected_output, metadata=rec.metadata, tags=tags,
            content_hash=digest, author_id=author_id, created_at=base.created_at if base else now, updated_at=now,
            pk=base.pk if base else None, valid_from=base.valid_from if base else None)

    # Updates (null leaves a field unchanged), on top of this change's inserts.
    missing: list[str] = []
    for i, upd in enumerate(change.updates):
        ops, ops_pointer = upd.tag_operations, f"/{i}/tag_operations"
        if upd.tags is not None:
            if ops is not None:
                # Which one the caller meant cannot be guessed; applying either would lose the other.
                raise PlanError("updates", Invalid(
                    "an update takes either tags (the record's new tags) or tag_operations, not both; "
                    "nothing was changed", pointer=f"/{i}/tags"))
            ops, ops_pointer = TagOperations(set=upd.tags), f"/{i}/tags"
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
        try:
            new.tags = normalize_tags(state.tags, ops, pointer=ops_pointer)
            new.content_hash = content_hash(new.input, new.expected_output, new.metadata, pointer=f"/{i}")
        except Invalid as exc:
            raise PlanError("updates", exc) from None
        new.updated_at = now
        new.author_id = author_id
        if upd.id not in states:
            touched.append(upd.id)
        states[upd.id] = new
    if missing:
        raise PlanError("updates", NotFound(f"record(s) not found in dataset {dataset_label}: {listing(missing)}; "
                                            "nothing was changed", pointer=""))

    for rid in change.deletes:
        state = states.get(rid) or current.get(rid)
        if state is None:
            missing.append(rid)
            continue
        if rid not in states:
            touched.append(rid)
        states[rid] = replace(state, deleted=True, deleted_at=now)
    if missing:
        raise PlanError("deletes", NotFound(f"record(s) not found in dataset {dataset_label}: {listing(missing)}; "
                                            "nothing was deleted", pointer=""))

    # What really changes. The version is the next one, or, when amending, the current one: a revision
    # the version itself opened is replaced or dropped (store.close), and was counted already.
    version = next_version(current_version, change)
    plan = Plan(version=current_version, changed=False, records=[states[rid] for rid in touched])
    tally = plan.tally
    for rid in touched:
        state, base = states[rid], current.get(rid)
        if state.deleted:
            if base is not None:
                plan.close.append(base)
                if base.valid_from == version:
                    plan.undone.append(base)
                else:
                    tally.deleted += 1
        elif base is None:
            plan.insert.append(state)
            tally.added += 1
        elif state.content_hash != base.content_hash or state.tags != base.tags:
            plan.close.append(base)
            plan.insert.append(state)
            if base.valid_from != version:
                tally.changed += 1
        else:
            # Unchanged: keep the stored timestamps and author so a re-sent record reads as before.
            state.updated_at = base.updated_at
            state.author_id = base.author_id
    plan.changed = bool(plan.close or plan.insert)
    if plan.changed:
        plan.version = version
    return plan
