"""What changed between two versions of a dataset, read from the changed rows only.

A record differs between versions lo < hi exactly when one of its revisions opened or closed in
(lo, hi]. Its state at hi is then a revision opened in that range and still open at hi; its state at lo
a revision closed in that range that was open at lo (pending closings count as closed). Both are range
scans of the `opened` and `closed` indexes (workspace_models), so a diff reads about twice as many
index entries as there are changes, whatever the size of the dataset; the content of a page's records
is fetched by primary key afterwards. Records are paired by record id.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Text, and_, cast, or_, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from kennel.datasets.models import Dataset, DatasetPendingClosure, DatasetRecord
from kennel.datasets.store import not_pending
from kennel.datasets.workspace import REVISION_COLUMNS, Revision, revision
from kennel.db.session import unit_of_work
from kennel.errors import Invalid, NotFound

R = DatasetRecord.__table__.c
P = DatasetPendingClosure.__table__.c
KINDS = ("added", "changed", "deleted")
# A changed string longer than this (in words) is shown before and after, without a word diff: the
# matching is quadratic at worst.
WORD_DIFF_MAX_TOKENS = 4000
# Field changes listed per record; a record with more says how many were left out.
FIELD_CHANGES_MAX = 200
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(slots=True)
class Change:
    """A record that differs. `before` and `after` (its two states) are loaded for a page only."""

    record_id: str
    kind: str
    seq: int
    before_pk: int | None
    after_pk: int | None
    tags_only: bool = False
    before: Revision | None = None
    after: Revision | None = None

    @property
    def position(self) -> tuple[int, str]:
        return (self.seq, self.record_id)


@dataclass
class Diff:
    dataset: Dataset
    from_version: int
    to_version: int
    changes: list[Change]
    counts: dict[str, int] = field(default_factory=dict)


def check_version(dataset: Dataset, value: int | None, parameter: str) -> int:
    if value is None:
        raise Invalid(f"`{parameter}` is required: a version number of dataset {dataset.id}", parameter=parameter)
    if value < 0 or value > dataset.current_version:
        raise NotFound(f"dataset {dataset.id} has no version {value} (its versions are 0 to "
                       f"{dataset.current_version})", parameter=parameter)
    return value


# What comparing needs of a revision, and nothing the driver would have to convert: tags as their stored
# text (kept sorted by the writers, so equal sets have equal text).
State = tuple[int, str, int, str, str]  # pk, record_id, seq, content_hash, tags text


def _key_columns(session: Session) -> tuple[Any, ...]:
    tags = cast(R.tags, Text) if session.get_bind().dialect.name == "postgresql" else type_coerce(R.tags, Text)
    return (R.pk, R.record_id, R.seq, R.content_hash, tags.label("tags_text"))


def _states(session: Session, dataset: Dataset, lo: int, hi: int) -> tuple[list[Any], list[Any]]:
    """(revisions visible at lo that closed by hi, revisions visible at hi that opened after lo)."""
    columns = _key_columns(session)
    at_hi = select(*columns).where(R.dataset_pk == dataset.pk, R.valid_from > lo, R.valid_from <= hi,
                                   or_(R.valid_to.is_(None), R.valid_to > hi))
    if dataset.closures_pending:
        at_hi = at_hi.where(not_pending(hi))
    at_lo = select(*columns).where(R.dataset_pk == dataset.pk, R.valid_to.is_not(None), R.valid_to > lo,
                                   R.valid_to <= hi, R.valid_from <= lo)
    before = list(session.execute(at_lo).all())
    if dataset.closures_pending:
        joined = DatasetRecord.__table__.join(DatasetPendingClosure.__table__, and_(
            P.dataset_pk == R.dataset_pk, P.seq == R.seq, P.valid_from == R.valid_from))
        pending = select(*columns).select_from(joined).where(
            P.dataset_pk == dataset.pk, P.valid_to > lo, P.valid_to <= hi, R.valid_from <= lo, R.valid_to.is_(None))
        before += session.execute(pending).all()
    return before, list(session.execute(at_hi).all())


def compute(session: Session, dataset: Dataset, from_version: int | None, to_version: int | None) -> Diff:
    """Every record that differs between the two versions (either may be the older), newest record first."""
    a = check_version(dataset, from_version, "from")
    b = check_version(dataset, to_version, "to")
    diff = Diff(dataset, a, b, [], {kind: 0 for kind in KINDS})
    if a == b:
        return diff
    at_lo, at_hi = _states(session, dataset, min(a, b), max(a, b))
    older: dict[str, State] = {r[1]: tuple(r) for r in at_lo}
    newer: dict[str, State] = {r[1]: tuple(r) for r in at_hi}
    before, after = (older, newer) if a < b else (newer, older)
    changes = diff.changes
    for rid in before.keys() | after.keys():
        old, new = before.get(rid), after.get(rid)
        if old is None and new is not None:
            change = Change(rid, "added", new[2], None, new[0])
        elif new is None and old is not None:
            change = Change(rid, "deleted", old[2], old[0], None)
        elif old is not None and new is not None:
            same_content = old[3] == new[3]
            if same_content and old[4] == new[4]:
                continue  # changed and changed back (a restore, or an edit undone)
            change = Change(rid, "changed", new[2], old[0], new[0], tags_only=same_content)
        else:  # pragma: no cover - the record id came from one of the two maps
            continue
        changes.append(change)
        diff.counts[change.kind] += 1
    changes.sort(key=lambda c: c.position, reverse=True)
    return diff


def load_content(session: Session, changes: list[Change]) -> None:
    """Load the two states of each change (by primary key)."""
    keys = sorted({pk for c in changes for pk in (c.before_pk, c.after_pk) if pk is not None})
    found: dict[int, Revision] = {}
    for start in range(0, len(keys), 5000):
        for row in session.execute(select(*REVISION_COLUMNS).where(R.pk.in_(keys[start:start + 5000]))).all():
            found[row.pk] = revision(row)
    for c in changes:
        c.before = found.get(c.before_pk) if c.before_pk is not None else None
        c.after = found.get(c.after_pk) if c.after_pk is not None else None


def page(session: Session, diff: Diff, *, kind: str | None, after: tuple[int, str] | None,
         limit: int) -> tuple[list[Change], tuple[int, str] | None]:
    """A page of the changes (of one kind, if given) after the keyset position `after`, with content."""
    if kind is not None and kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}", parameter="kind")
    chosen: list[Change] = []
    for change in diff.changes:
        if kind is not None and change.kind != kind:
            continue
        if after is not None and change.position >= after:
            continue
        chosen.append(change)
        if len(chosen) > limit:
            break
    more = len(chosen) > limit
    chosen = chosen[:limit]
    load_content(session, chosen)
    return chosen, (chosen[-1].position if more else None)


# Field-level changes ----------------------------------------------------------------------------

@dataclass(slots=True)
class FieldChange:
    path: str
    op: str                                   # "added", "removed" or "changed"
    before: Any = None
    after: Any = None
    words: list[tuple[str, str]] | None = None  # ("same" | "del" | "ins", text), for changed strings

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "op": self.op}
        if self.op != "added":
            out["before"] = self.before
        if self.op != "removed":
            out["after"] = self.after
        return out


def word_diff(old: str, new: str) -> list[tuple[str, str]] | None:
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    if len(a) > WORD_DIFF_MAX_TOKENS or len(b) > WORD_DIFF_MAX_TOKENS:
        return None
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(b[j1:j2])))
    return out


def _key_path(path: str, key: Any) -> str:
    key = str(key)
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else f"{path}[{orjson.dumps(key).decode()}]"


def _walk(path: str, old: Any, new: Any, out: list[FieldChange]) -> None:
    if len(out) > FIELD_CHANGES_MAX:
        return
    if type(old) is type(new) and old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new.keys(), *(k for k in old if k not in new)]:
            sub = _key_path(path, key)
            if key not in old:
                out.append(FieldChange(sub, "added", after=new[key]))
            elif key not in new:
                out.append(FieldChange(sub, "removed", before=old[key]))
            else:
                _walk(sub, old[key], new[key], out)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (x, y) in enumerate(zip(old, new, strict=True)):
            _walk(f"{path}[{index}]", x, y, out)
        return
    words = word_diff(old, new) if isinstance(old, str) and isinstance(new, str) else None
    out.append(FieldChange(path, "changed", old, new, words))


def field_changes(before: Revision | None, after: Revision | None) -> list[FieldChange]:
    """Keys added, removed and changed, field by field (a word diff inside changed strings); tags as a set."""
    out: list[FieldChange] = []
    for name in ("input", "expected_output", "metadata"):
        old = getattr(before, name) if before is not None else None
        new = getattr(after, name) if after is not None else None
        if before is None and after is not None:
            if new is not None:
                out.append(FieldChange(name, "added", after=new))
        elif after is None and before is not None:
            if old is not None:
                out.append(FieldChange(name, "removed", before=old))
        else:
            _walk(name, old, new, out)
    old_tags = set(before.tags) if before is not None else set()
    new_tags = set(after.tags) if after is not None else set()
    out.extend(FieldChange("tags", "added", after=t) for t in sorted(new_tags - old_tags))
    out.extend(FieldChange("tags", "removed", before=t) for t in sorted(old_tags - new_tags))
    return out


def change_dict(change: Change) -> dict[str, Any]:
    """A change as the API and the JSONL export give it."""
    def state(rev: Revision | None) -> dict[str, Any] | None:
        if rev is None:
            return None
        return {"revision": str(rev.pk), "version": rev.valid_from, **rev.content}

    return {"record_id": change.record_id, "kind": change.kind, "tags_only": change.tags_only,
            "before": state(change.before), "after": state(change.after),
            "fields": [f.as_dict() for f in field_changes(change.before, change.after)]}


def jsonl(factory: sessionmaker[Session], diff: Diff, kind: str | None, chunk: int = 500) -> Iterator[bytes]:
    """The diff as JSON lines, `chunk` records' content at a time, each chunk read in a short transaction of
    its own (versions never change, so the chunks describe one diff), after the request's session closed:
    memory stays at a chunk whatever the size of the diff."""
    if kind is not None and kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}", parameter="kind")

    def chunks() -> Iterator[bytes]:
        after: tuple[int, str] | None = None
        while True:
            with unit_of_work(factory, write=False) as session:
                changes, after = page(session, diff, kind=kind, after=after, limit=chunk)
            if changes:
                yield b"".join(orjson.dumps(change_dict(c)) + b"\n" for c in changes)
            if after is None:
                return

    return chunks()
