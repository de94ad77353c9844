"""The record store: where a planned change becomes SQL, and where every read learns what is visible.

`store_for(session)` gives the store of the session's database: `SQLiteStore` (store_sqlite.py) or
`PostgresStore` (store_postgres.py). Every difference between the two databases on the records path
lives in those two classes, method for method; what both run the same way is written once here.

Visibility is the store's: a dataset taken for writing (`settle`) has its pending closings written in,
and every read (`visible`, `page`, `count`, `export_page`) leaves out the closings still pending, so no
caller has to remember either rule. (Pending closings: see models.DatasetPendingClosure.)

Bulk statements bypass SQLAlchemy's per-row parameter and result processing on purpose: for a
1,000-record request that processing costs more CPU than the database work itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from typing import cast as cast_

from sqlalchemy import (
    JSON,
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from kennel.datasets.models import (
    RECORD_FIELDS,
    REVISION_COLUMNS,
    Dataset,
    DatasetPendingClosure,
    DatasetRecord,
    DatasetRecordHash,
)
from kennel.datasets.plan import RecordState, Tally
from kennel.db.base import UTCDateTime
from kennel.db.maintenance import request_upkeep

R = DatasetRecord.__table__.c
HASHES = cast_(Table, DatasetRecordHash.__table__)
PENDING = cast_(Table, DatasetPendingClosure.__table__)
P = PENDING.c
# Far below SQLite's 32,766 bound-parameter limit, and a sensible unit for PostgreSQL too.
CHUNK = 5000

# The fields each database needs encoded on the way in and out.
JSON_FIELDS = frozenset(name for name in RECORD_FIELDS if isinstance(R[name].type, JSON))
TIME_FIELDS = frozenset(name for name in RECORD_FIELDS if isinstance(R[name].type, UTCDateTime))

# Makes the row of REVISION_COLUMNS for a new open revision: (dataset_pk, version, state, dumps, stamp).
RowMaker = Callable[[int, int, RecordState, Callable[[Any], Any], Callable[[Any], Any]], tuple[Any, ...]]


def row_maker(*, json: str, time: str) -> RowMaker:
    """The function that makes a new revision's row, written out from RECORD_FIELDS.

    `json` and `time` say how a database takes JSON and timestamp values, as expressions around `{}`
    (e.g. "dumps({}).decode()"). The function is generated, as collections.namedtuple generates its
    classes, so that a field added to RECORD_FIELDS reaches every insert path by itself while each row
    is still one tuple written out field by field, as cheap as a hand-written one (a loop over the fields
    is not, for a thousand rows a request).
    """
    fields = []
    for name in RECORD_FIELDS:
        value = f"state.{name}"
        fields.append(json.format(value) if name in JSON_FIELDS else time.format(value) if name in TIME_FIELDS
                      else value)
    source = f"lambda dataset_pk, version, state, dumps, stamp: (dataset_pk, version, None, {', '.join(fields)})"
    maker: RowMaker = eval(source, {})  # built from the constant column list above, never from input
    return maker


# What a read page shows of each revision: every field but the content hash, which is the server's own
# (a page is 1,000 rows, and each column more is decoded a thousand times).
PAGE_FIELDS = tuple(name for name in RECORD_FIELDS if name != "content_hash")
# What a state read back from the table carries besides its fields: which row it is, and since when.
STATE_COLUMNS = (R.pk, R.valid_from, *(R[name] for name in RECORD_FIELDS))


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def visible_at(version: int, valid_from: ColumnElement[Any] = R.valid_from) -> ColumnElement[bool]:
    """Revisions visible at `version`, pending closings aside: the validity-interval condition."""
    return and_(valid_from <= version, or_(R.valid_to.is_(None), R.valid_to > version))


def not_pending(version: int | None = None) -> ColumnElement[bool]:
    """Leaves out revisions whose closing (at or before `version`, if given) is still pending."""
    where = [P.dataset_pk == R.dataset_pk, P.seq == R.seq, P.valid_from == R.valid_from]
    if version is not None:
        where.append(P.valid_to <= version)
    return ~exists().where(*where)


@dataclass(frozen=True)
class SettleClosures:
    """Upkeep job: settle one dataset's pending closures, under its lock, after the delete commits."""

    dataset_pk: int

    def __call__(self, session: Session) -> None:
        dataset = session.scalars(select(Dataset).where(Dataset.pk == self.dataset_pk).with_for_update()).first()
        if dataset is not None:
            store_for(session).settle(dataset)


def unsettled(session: Session) -> list[SettleClosures]:
    """Jobs for datasets left with pending closures (a server stopped before settling them)."""
    return [SettleClosures(pk) for pk in session.scalars(select(Dataset.pk).where(Dataset.closures_pending))]


# Which part of a revision a copy takes from elsewhere than its source row (see RecordStore.copy_revisions).
Overrides = dict[str, ColumnElement[Any]]


class RecordStore(ABC):
    """Carries out planned record changes and answers record reads on one session's database."""

    dialect: ClassVar[str]

    def __init__(self, session: Session) -> None:
        self.session = session

    # Visibility ---------------------------------------------------------------------------------

    def visible(self, dataset: Dataset, version: int, *, pinned: bool = False) -> ColumnElement[bool]:
        """Revisions of `dataset` (as just read) visible at `version`, pending closings left out.

        The current version is read through the partial index of open rows, unless `pinned`: a reader
        whose pages span transactions (the export) must not follow the current version as it moves.
        """
        current = version == dataset.current_version and not pinned
        cond = R.valid_to.is_(None) if current else visible_at(version, self.valid_from_for_reads())
        if dataset.closures_pending:
            cond = and_(cond, not_pending(version))
        return and_(R.dataset_pk == dataset.pk, cond)

    def valid_from_for_reads(self) -> ColumnElement[Any]:
        """A revision's first version as reads of a past version test it (see SqliteStore's)."""
        return R.valid_from

    @abstractmethod
    def settle(self, dataset: Dataset) -> None:
        """Write the dataset's pending closings into its revisions (the dataset must be locked).

        Writers see every revision's row as it is; only reads know how to leave pending closings out,
        so taking a dataset for writing settles it first (service.get_dataset(for_update=True)).
        """

    def queue_closures(self, dataset: Dataset, ids: Sequence[str], version: int) -> set[str]:
        """Close the open revisions of these record ids at `version` by listing them as pending; return
        the ids that were open. The dataset must be locked and settled."""
        found = self.current(dataset.pk, ids, (R.record_id, R.seq, R.valid_from))
        if not found:
            return set()
        self._append_closures([(dataset.pk, row.seq, row.valid_from, version) for row in found])
        dataset.closures_pending = True
        request_upkeep(self.session, SettleClosures(dataset.pk))
        return {row.record_id for row in found}

    @abstractmethod
    def _append_closures(self, rows: list[tuple[int, int, int, int]]) -> None:
        """Add (dataset_pk, seq, valid_from, valid_to) rows to dataset_pending_closures."""

    # Lookups ------------------------------------------------------------------------------------

    @abstractmethod
    def current(self, dataset_pk: int, keys: Sequence[str], columns: Sequence[Any]) -> list[Row[Any]]:
        """`columns` of the open revisions of a dataset whose record id is one of `keys`."""

    def current_states(self, dataset_pk: int, keys: Sequence[str]) -> dict[str, RecordState]:
        """The states of the open revisions with these record ids, by record id."""
        found: dict[str, RecordState] = {}
        for row in self.current(dataset_pk, keys, STATE_COLUMNS):
            pk, valid_from, *values = tuple(row)
            state = RecordState(**dict(zip(RECORD_FIELDS, values, strict=True)))
            state.tags = list(state.tags or [])
            state.pk, state.valid_from = pk, valid_from
            found[state.record_id] = state
        return found

    def current_ids(self, dataset_pk: int, keys: Sequence[str]) -> set[str]:
        return {row.record_id for row in self.current(dataset_pk, keys, (R.record_id,))}

    def has_open_records(self, dataset_pk: int) -> bool:
        return bool(self.session.scalar(select(exists().where(R.dataset_pk == dataset_pk, R.valid_to.is_(None)))))

    # Writes -------------------------------------------------------------------------------------

    @abstractmethod
    def insert(self, dataset_pk: int, version: int, states: Iterable[RecordState]) -> None:
        """Insert open revisions (valid from `version`) of record states, JSON encoded once by orjson.

        States may come from a generator (never an empty one).
        """

    def close(self, version: int, states: Sequence[RecordState]) -> None:
        """Close the stored revisions these states came from at `version`.

        A revision opened in the very version being amended (create_new_version=false) would close into
        an empty interval; it is removed instead.
        """
        drop = [s.pk for s in states if s.valid_from == version]
        keep = [s.pk for s in states if s.valid_from != version]
        for part in chunks(drop):
            self.session.execute(delete(DatasetRecord).where(R.pk.in_(part)))
        for part in chunks(keep):
            self.session.execute(update(DatasetRecord).where(R.pk.in_(part)).values(valid_to=version))

    def close_opened_after(self, dataset_pk: int, version: int, at: int) -> None:
        """Close at `at` every open revision opened after `version` (a restore of `version`)."""
        self.session.execute(update(DatasetRecord)
                             .where(R.dataset_pk == dataset_pk, R.valid_to.is_(None), R.valid_from > version)
                             .values(valid_to=at))

    def changed_at(self, dataset_pk: int, seqs: Sequence[int], version: int) -> int:
        """How many of these records (by seq) had a revision closed at `version`: for a revision opened at
        `version`, whether the version changed its record rather than added it (the dataset must be settled)."""
        return sum(self.session.scalar(select(func.count()).select_from(DatasetRecord.__table__).where(
            R.dataset_pk == dataset_pk, R.valid_to == version, R.seq.in_(part))) or 0 for part in chunks(seqs))

    def tally(self, dataset_pk: int, version: int) -> Tally:
        """What `version` added, changed and deleted, counted from its revisions (the dataset must be
        settled), for writers that copy revisions in bulk (restore): an opening whose record (same seq)
        closed at the same version is a change, other openings are additions, other closings deletions.
        Three index range scans of what the version touched."""
        def count(*where: ColumnElement[bool]) -> int:
            return self.session.scalar(select(func.count()).select_from(DatasetRecord.__table__).where(
                R.dataset_pk == dataset_pk, *where)) or 0

        old = aliased(DatasetRecord)
        same_record = select(old.pk).where(old.dataset_pk == R.dataset_pk, old.seq == R.seq,
                                           old.valid_to == R.valid_from).exists()
        opened, closed = count(R.valid_from == version), count(R.valid_to == version)
        changed = count(R.valid_from == version, same_record) if opened and closed else 0
        return Tally(added=opened - changed, changed=changed, deleted=closed - changed)

    def copy_revisions(self, where: ColumnElement[bool], overrides: Overrides) -> Select[Any]:
        """Copy the revisions matching `where` as new open revisions, every column taken from the source
        row but those in `overrides` (which must set dataset_pk and valid_from): one INSERT ... SELECT.
        Returns the SELECT of the copied rows, for the caller to index their content from."""
        given = {"valid_to": literal(None, type_=R.valid_to.type), **overrides}
        source = select(*(given[name].label(name) if name in given else R[name] for name in REVISION_COLUMNS)
                        ).where(where)
        self.session.execute(insert(DatasetRecord).from_select(list(REVISION_COLUMNS), source))
        return source

    @abstractmethod
    def new_canonical_ids(self) -> ColumnElement[str]:
        """A random UUID (version 4 layout) generated by the database, one per row."""

    @abstractmethod
    def refresh_statistics(self, before: int, after: int) -> None:
        """Called when a dataset grows from `before` to `after` records, to keep the planner informed."""

    # Content-hash index (see models.DatasetRecordHash) ----------------------------------------

    @abstractmethod
    def index_hashes(self, dataset_pk: int, states: Sequence[RecordState]) -> None:
        """Add the content of new open revisions to the index, in this transaction."""

    def start_index_hashes(self, dataset_pk: int, states: Sequence[RecordState]) -> Callable[[], None]:
        """Start adding the content of new open revisions to the index; the returned call waits for it."""
        self.index_hashes(dataset_pk, states)
        return lambda: None

    @abstractmethod
    def index_hashes_from(self, rows: Select[Any]) -> None:
        """Add the content of the revisions a SELECT of (content_hash, dataset_pk, record_id) yields."""

    def build_hash_index(self, dataset_pk: int) -> None:
        """Index the open records of a dataset that has not needed the index before (one statement).

        A plain INSERT, without the conflict handling the other writers need: an unindexed dataset has
        no rows in the table (only indexed datasets get them, and migrations that rebuild the table clear
        the flag), and its open records have distinct ids. On PostgreSQL the conflict check alone cost a
        quarter of building the index of 1M records.
        """
        self.session.info[HASH_ROWS_IN_TRANSACTION] = True
        # Sorted, so the index is written in key order rather than page by scattered page.
        rows = (select(R.content_hash, R.dataset_pk, R.record_id)
                .where(R.dataset_pk == dataset_pk, R.valid_to.is_(None)).order_by(R.content_hash))
        self.session.execute(HASHES.insert().from_select(["content_hash", "dataset_pk", "record_id"], rows))

    @abstractmethod
    def existing_hashes(self, dataset_pk: int, parts: Iterable[Sequence[str]]) -> set[str]:
        """Which of these content hashes an open record of the dataset has (the dataset must be indexed).

        An index row counts only while the open revision of its record id still has that hash. `parts`
        may be a generator that computes the hashes as it goes.
        """

    # Reads --------------------------------------------------------------------------------------

    @abstractmethod
    def page_columns(self) -> tuple[ColumnElement[Any], ...]:
        """PAGE_FIELDS of a read page, in that order, with JSON as its stored text and timestamps as they
        come: the JSON text goes into the response as it is (orjson.Fragment), never parsed."""

    @abstractmethod
    def tags_any(self, tags: Sequence[str]) -> ColumnElement[bool]:
        """Revisions carrying at least one of `tags`."""

    def page(self, dataset: Dataset, version: int, *, tags: Sequence[str] | None, after_seq: int | None,
             limit: int) -> list[Row[Any]]:
        """One page of the records visible at `version`, newest first (keyset on `seq`)."""
        stmt = select(*self.page_columns()).where(self.visible(dataset, version))
        if tags:
            stmt = stmt.where(self.tags_any(tags))
        if after_seq is not None:
            stmt = stmt.where(R.seq < after_seq)
        # .all() fetches the page in one driver call; iterating the result fetched it row by row.
        return list(self.session.execute(stmt.order_by(R.seq.desc()).limit(limit)).all())

    def count(self, dataset: Dataset, version: int) -> int:
        return self.session.scalar(select(func.count()).select_from(DatasetRecord.__table__)
                                   .where(self.visible(dataset, version))) or 0

    def export_page(self, dataset: Dataset, version: int, *, after_seq: int, limit: int) -> list[Row[Any]]:
        """Records visible at `version` in creation order after `after_seq`, the file format's fields
        (record_id, input, expected_output, metadata, tags) as stored text. `dataset` is the state read
        when the export began; it may be detached."""
        stmt = (select(R.seq, R.record_id, *(cast(R[name], Text).label(name)
                                             for name in ("input", "expected_output", "metadata", "tags")))
                .where(self.visible(dataset, version, pinned=True), R.seq > after_seq))
        return list(self.session.execute(stmt.order_by(R.seq).limit(limit)).all())


# session.info key: this transaction has written index rows of its own (see PostgresStore.start_index_hashes).
HASH_ROWS_IN_TRANSACTION = "kennel_hash_rows_in_transaction"


def store_for(session: Session) -> RecordStore:
    """The record store of the session's database."""
    # Imported here: each store module builds on this one.
    if session.get_bind().dialect.name == "postgresql":
        from kennel.datasets.store_postgres import PostgresStore

        return PostgresStore(session)
    from kennel.datasets.store_sqlite import SQLiteStore

    return SQLiteStore(session)

