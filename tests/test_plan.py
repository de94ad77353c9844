"""The planning step of a record change, on its own: no database, no server (datasets/plan.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kennel.datasets.plan import (
    Change,
    NewRecord,
    Plan,
    PlanError,
    RecordState,
    Tally,
    check_change,
    content_hash,
    kept,
    plan_change,
    prepare_inserts,
)
from kennel.datasets.schemas import RecordUpdateIn, TagOperations
from kennel.errors import Invalid, NotFound

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def stored(rid: str, input_: object, *, seq: int, pk: int, valid_from: int = 1,
           tags: list[str] | None = None) -> RecordState:
    return RecordState(record_id=rid, canonical_id=f"c-{rid}", seq=seq, input=input_, expected_output=None,
                       metadata=None, tags=tags or [], content_hash=content_hash(input_, None, None),
                       author_id="writer", created_at=T0, updated_at=T0, pk=pk, valid_from=valid_from)


def plan(change: Change, current: dict[str, RecordState], version: int = 1) -> Plan:
    prepared = kept(prepare_inserts(change), set(), change.deduplicate)
    return plan_change(change, prepared, current=current, current_version=version, author_id="editor", now=NOW,
                       dataset_label="ds")


def test_an_upsert_an_update_and_a_delete_close_and_open_the_right_rows() -> None:
    current = {"a": stored("a", "a", seq=1, pk=10), "b": stored("b", "b", seq=2, pk=11),
               "c": stored("c", "c", seq=3, pk=12)}
    change = Change(inserts=[NewRecord(id="a", input="a2"), NewRecord(id="n", input="new")],
                    updates=[RecordUpdateIn(id="b", tag_operations=TagOperations(add=["t"]))], deletes=["c"])
    p = plan(change, current)
    assert (p.version, p.changed) == (2, True)
    assert sorted(s.pk for s in p.close) == [10, 11, 12]
    opened = {s.record_id: s for s in p.insert}
    assert sorted(opened) == ["a", "b", "n"]
    # A replaced record keeps its identity and creation; a new one gets its seq from the store.
    assert (opened["a"].canonical_id, opened["a"].seq, opened["a"].created_at) == ("c-a", 1, T0)
    assert opened["n"].seq is None and opened["n"].author_id == "editor"
    assert opened["b"].tags == ["t"] and opened["b"].input == "b"
    assert [s.record_id for s in p.records] == ["a", "n", "b", "c"]
    assert p.records[-1].deleted


def test_a_resent_record_changes_nothing_and_keeps_its_author() -> None:
    current = {"a": stored("a", "a", seq=1, pk=10)}
    p = plan(Change(inserts=[NewRecord(id="a", input="a")]), current, version=4)
    assert (p.version, p.changed, p.close, p.insert) == (4, False, [], [])
    assert (p.records[0].author_id, p.records[0].updated_at) == ("writer", T0)


def test_amending_the_current_version_keeps_its_number() -> None:
    current = {"a": stored("a", "a", seq=1, pk=10)}
    p = plan(Change(updates=[RecordUpdateIn(id="a", input="b")], create_new_version=False), current, version=3)
    assert (p.version, p.changed) == (3, True)


def test_problems_name_their_part_and_a_pointer_relative_to_it() -> None:
    with pytest.raises(PlanError) as bad_tag:
        list(prepare_inserts(Change(inserts=[NewRecord(id=None, input=1), NewRecord(id=None, input=2, tags=[""])])))
    assert bad_tag.value.part == "inserts" and isinstance(bad_tag.value.error, Invalid)
    assert bad_tag.value.error.pointer == "/1/tags"

    with pytest.raises(PlanError) as twice:
        check_change(Change(deletes=["x", "y", "x"]), {"inserts": "i", "updates": "u", "deletes": "record_ids"})
    assert (twice.value.part, twice.value.error.pointer) == ("deletes", "/2")
    assert "appears more than once in record_ids" in twice.value.error.detail

    with pytest.raises(PlanError) as missing:
        plan(Change(updates=[RecordUpdateIn(id="nope", input=1)]), {})
    assert missing.value.part == "updates" and isinstance(missing.value.error, NotFound)
    assert "nope" in missing.value.error.detail


def test_deduplication_skips_content_already_current_or_earlier_in_the_change() -> None:
    change = Change(inserts=[NewRecord(id=None, input="x"), NewRecord(id=None, input="y"),
                             NewRecord(id=None, input="y"), NewRecord(id="k", input="x")])
    seen = {content_hash("x", None, None)}
    kept_ids = [(rec.id, rec.input) for rec, _tags, _hash in kept(prepare_inserts(change), seen, True)]
    assert kept_ids == [(None, "y"), ("k", "x")]


def test_the_tally_counts_what_the_version_gains_and_what_an_amend_takes_back() -> None:
    current = {"a": stored("a", "a", seq=1, pk=10), "b": stored("b", "b", seq=2, pk=11),
               "c": stored("c", "c", seq=3, pk=12)}
    change = Change(inserts=[NewRecord(id="a", input="a2"), NewRecord(id="n", input="new")],
                    updates=[RecordUpdateIn(id="b", tag_operations=TagOperations(add=["t"]))], deletes=["c"])
    p = plan(change, current)
    assert (p.tally, p.undone) == (Tally(added=1, changed=2, deleted=1), [])
    # Amending version 2: `x` and `y` were opened by version 2 itself, `z` before it.
    current = {"x": stored("x", "x", seq=4, pk=20, valid_from=2), "y": stored("y", "y", seq=5, pk=21, valid_from=2),
               "z": stored("z", "z", seq=6, pk=22)}
    amend = Change(updates=[RecordUpdateIn(id="x", input="x2")], deletes=["y", "z"], create_new_version=False)
    p = plan(amend, current, version=2)
    assert p.version == 2 and [s.record_id for s in p.undone] == ["y"]
    assert p.tally == Tally(added=0, changed=0, deleted=1)
    p.count_undone(1)  # version 2 had changed y: now it deleted it
    assert p.tally == Tally(added=0, changed=-1, deleted=2)
