"""The dataset workspace's API (/api/kennel/v1/datasets/...) on both databases: diffs with inserts,
updates, deletes, tag-only changes and restores between the two versions, the version timeline, a
record's history, the filter syntax, and the guarded edit (read back with both real clients)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.test_dataset_lifecycle_helpers import (
    V1,
    make_dataset,
    make_project,
    ok_batch,
    records,
)

K = "/api/kennel/v1"


@pytest.fixture
def pid(http: httpx.Client) -> str:
    return make_project(http)


def restore(http: httpx.Client, pid: str, did: str, version: int) -> None:
    r = http.post(f"{V1}/{pid}/datasets/{did}/restore", json={"data": {
        "type": "datasets", "id": did, "attributes": {"dataset_version": version}}})
    assert r.status_code == 200, r.text


def delete(http: httpx.Client, pid: str, did: str, ids: list[str]) -> None:
    r = http.post(f"{V1}/{pid}/datasets/{did}/records/delete", json={"data": {
        "type": "records", "attributes": {"record_ids": ids}}})
    assert r.status_code == 204, r.text


def get_diff(http: httpx.Client, did: str, a: int, b: int, **params: Any) -> dict[str, Any]:
    r = http.get(f"{K}/datasets/{did}/diff", params={"from": a, "to": b, "page[limit]": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def kinds(body: dict[str, Any]) -> dict[str, str]:
    return {item["id"]: item["attributes"]["kind"] for item in body["data"]}


def history_dataset(http: httpx.Client, pid: str) -> str:
    """v1: a, b, c, e; v2: a's answer changed, b deleted (pending closing), d added; v3: c's tags only;
    v4: restore of v1 (a back, b back, d gone); v5: e deleted with a batch (settled)."""
    did = make_dataset(http, pid)
    assert ok_batch(http, pid, did, inserts=[
        {"id": "a", "input": {"country": "France", "q": "capital?"}, "expected_output": "Paris is the capital",
         "metadata": {"difficulty": "easy"}, "tags": ["lang:fr"]},
        {"id": "b", "input": {"country": "Spain"}, "expected_output": "Madrid", "metadata": {"difficulty": "hard"}},
        {"id": "c", "input": {"country": "France", "n": 3}, "expected_output": 42, "tags": ["x"]},
        {"id": "e", "input": "plain text", "expected_output": None}]) == 1
    assert ok_batch(http, pid, did, inserts=[{"id": "d", "input": {"country": "Italy"}, "expected_output": "Rome"}],
                    updates=[{"id": "a", "expected_output": "Paris is the capital of France",
                              "metadata": {"difficulty": "easy", "checked": True}}]) == 2
    delete(http, pid, did, ["b"])  # version 3: a pure delete, its closing queued as pending
    assert ok_batch(http, pid, did, updates=[{"id": "c", "tag_operations": {"add": ["reviewed"]}}]) == 4
    restore(http, pid, did, 1)  # version 5
    assert ok_batch(http, pid, did, deletes=["e"]) == 6
    return did


def test_diff_counts_and_kinds_across_inserts_updates_deletes_tags_and_restores(http: httpx.Client, pid: str) -> None:
    did = history_dataset(http, pid)
    one_two = get_diff(http, did, 1, 2)
    assert one_two["meta"]["counts"] == {"added": 1, "changed": 1, "deleted": 0}
    assert kinds(one_two) == {"a": "changed", "d": "added"}
    a = next(i["attributes"] for i in one_two["data"] if i["id"] == "a")
    fields = {f["path"]: f for f in a["fields"]}
    assert fields["expected_output"]["before"] == "Paris is the capital"
    assert fields["metadata.checked"] == {"path": "metadata.checked", "op": "added", "after": True}
    assert "metadata.difficulty" not in fields

    # The pending delete (version 3) shows as a deletion, both ways round.
    assert kinds(get_diff(http, did, 2, 3)) == {"b": "deleted"}
    assert kinds(get_diff(http, did, 3, 2)) == {"b": "added"}
    tag_only = get_diff(http, did, 3, 4)
    assert kinds(tag_only) == {"c": "changed"}
    assert tag_only["data"][0]["attributes"]["tags_only"] is True
    assert tag_only["data"][0]["attributes"]["fields"] == [{"path": "tags", "op": "added", "after": "reviewed"}]

    # Across the restore: v1 -> v5 is no change at all; v4 -> v5 undoes everything since v1.
    assert get_diff(http, did, 1, 5)["meta"]["counts"] == {"added": 0, "changed": 0, "deleted": 0}
    undo = get_diff(http, did, 4, 5)
    assert kinds(undo) == {"a": "changed", "b": "added", "c": "changed", "d": "deleted"}
    assert kinds(get_diff(http, did, 0, 6)) == {"a": "added", "b": "added", "c": "added"}
    # b and c changed after v2 and were restored to their v2 state: no difference.
    assert kinds(get_diff(http, did, 2, 6)) == {"a": "changed", "d": "deleted", "e": "deleted"}
    only = get_diff(http, did, 4, 5, kind="changed")
    assert kinds(only) == {"a": "changed", "c": "changed"} and only["meta"]["counts"]["added"] == 1

    # Every diff agrees with the two versions read in full through the Datadog route.
    for x, y in [(0, 6), (1, 4), (2, 5), (6, 3), (3, 5)]:
        before, after = records(http, pid, did, x), records(http, pid, did, y)
        expected = {rid: "added" if rid not in before else "deleted" if rid not in after else "changed"
                    for rid in before.keys() | after.keys()
                    if rid not in before or rid not in after or _content(before[rid]) != _content(after[rid])}
        assert kinds(get_diff(http, did, x, y)) == expected, (x, y)


def _content(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["input"], r["expected_output"], r["metadata"], sorted(r["tags"] or []))


def test_diff_pages_and_exports_jsonl(http: httpx.Client, pid: str) -> None:
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": f"r{i:03}", "input": {"i": i}} for i in range(30)])
    ok_batch(http, pid, did, updates=[{"id": f"r{i:03}", "input": {"i": i, "more": "words here"}}
                                      for i in range(0, 30, 2)])
    seen: list[str] = []
    params: dict[str, Any] = {"from": 1, "to": 2, "page[limit]": 4}
    while True:
        r = http.get(f"{K}/datasets/{did}/diff", params=params)
        assert r.status_code == 200, r.text
        seen += [i["id"] for i in r.json()["data"]]
        if not r.json()["meta"]["after"]:
            break
        params = {"from": 1, "to": 2, "page[limit]": 4, "page[cursor]": r.json()["meta"]["after"]}
    assert seen == [f"r{i:03}" for i in range(28, -1, -2)]
    r = http.get(f"{K}/datasets/{did}/diff", params={"from": 1, "to": 2, "format": "jsonl"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [httpx.Response(200, content=line).json() for line in r.content.splitlines()]
    assert [line["record_id"] for line in lines] == seen
    assert lines[0]["fields"] == [{"path": "input.more", "op": "added", "after": "words here"}]


def test_diff_of_versions_that_do_not_exist_is_a_clear_error(http: httpx.Client, pid: str) -> None:
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "a", "input": 1}])
    r = http.get(f"{K}/datasets/{did}/diff", params={"from": 0, "to": 9})
    assert r.status_code == 404, r.text
    assert r.json()["errors"][0]["source"] == {"parameter": "to"}
    assert "has no version 9 (its versions are 0 to 1)" in r.json()["errors"][0]["detail"]
    assert http.get(f"{K}/datasets/{did}/diff", params={"to": 1}).status_code == 400
    assert http.get(f"{K}/datasets/{did}/diff", params={"from": "x", "to": 1}).status_code == 400
    assert http.get(f"{K}/datasets/{did}/diff", params={"from": 0, "to": 1, "kind": "moved"}).status_code == 400


def test_version_timeline_counts_who_and_when(http: httpx.Client, pid: str) -> None:
    did = history_dataset(http, pid)
    r = http.get(f"{K}/datasets/{did}/versions")
    assert r.status_code == 200, r.text
    rows = {int(i["id"]): i["attributes"] for i in r.json()["data"]}
    counts = {v: (a["added"], a["changed"], a["deleted"]) for v, a in rows.items()}
    assert counts == {0: (0, 0, 0), 1: (4, 0, 0), 2: (1, 1, 0), 3: (0, 0, 1), 4: (0, 1, 0), 5: (1, 2, 1),
                      6: (0, 0, 1)}
    assert rows[1]["author"] == "test-suite" and rows[1]["created_at"]
    assert r.json()["meta"]["current_version"] == 6


def test_record_history_lists_the_versions_that_changed_it(http: httpx.Client, pid: str) -> None:
    did = history_dataset(http, pid)
    r = http.get(f"{K}/datasets/{did}/history", params={"record_id": "b"})
    assert r.status_code == 200, r.text
    steps = [(s["version"], s["kind"]) for s in r.json()["data"]["attributes"]["steps"]]
    assert steps == [(5, "re-added"), (3, "deleted"), (1, "added")]
    r = http.get(f"{K}/datasets/{did}/history", params={"record_id": "a"})
    steps = r.json()["data"]["attributes"]["steps"]
    assert [(s["version"], s["kind"]) for s in steps] == [(5, "changed"), (2, "changed"), (1, "added")]
    assert {f["path"] for f in steps[1]["fields"]} == {"expected_output", "metadata.checked"}
    assert http.get(f"{K}/datasets/{did}/history", params={"record_id": "nope"}).status_code == 404


@pytest.mark.parametrize("text, expected", [
    ("@input.country:France", {"a", "c"}),
    ("@metadata.difficulty:hard", {"b"}),
    ("@metadata.difficulty:easy tag:lang:fr", {"a"}),
    ("-@metadata.difficulty:easy", {"b", "c", "d"}),
    ("@expected_output:42", {"c"}),
    ("@input.n:3", {"c"}),
    ('@expected_output:"Paris is the capital"', {"a"}),
    ("tag:reviewed", set()),
    ("id:d", {"d"}),
    ("", {"a", "b", "c", "d"}),
])
def test_filter_syntax(http: httpx.Client, pid: str, text: str, expected: set[str]) -> None:
    did = _filter_dataset(http, pid)
    r = http.get(f"{K}/datasets/{did}/records", params={"filter": text, "version": 2})
    assert r.status_code == 200, r.text
    assert {i["id"] for i in r.json()["data"]} == expected


_FILTER_DATASETS: dict[str, str] = {}


def _filter_dataset(http: httpx.Client, pid: str) -> str:
    key = str(http.base_url)
    if key not in _FILTER_DATASETS:
        did = make_dataset(http, pid)
        ok_batch(http, pid, did, inserts=[
            {"id": "a", "input": {"country": "France"}, "expected_output": "Paris is the capital",
             "metadata": {"difficulty": "easy"}, "tags": ["lang:fr"]},
            {"id": "b", "input": {"country": "Spain"}, "metadata": {"difficulty": "hard"}},
            {"id": "c", "input": {"country": "France", "n": 3}, "expected_output": 42},
            {"id": "e", "input": "gone"}])
        ok_batch(http, pid, did, inserts=[{"id": "d", "input": {"country": "Italy"}}], deletes=["e"])
        ok_batch(http, pid, did, updates=[{"id": "a", "tag_operations": {"add": ["reviewed"]}}])
        _FILTER_DATASETS[key] = did
    return _FILTER_DATASETS[key]


@pytest.mark.parametrize("text, position", [
    ("@input.country", 1), ("@nope.x:1", 2), ("country:France", 1), ('@input.a:"open', 10),
    ("@input.a:b tag:", 12), ("@input.a b:c", 1), ("@input.a..b:1", 10),
])
def test_a_filter_that_does_not_parse_is_a_400_naming_the_position(http: httpx.Client, pid: str, text: str,
                                                                   position: int) -> None:
    did = make_dataset(http, pid)
    r = http.get(f"{K}/datasets/{did}/records", params={"filter": text})
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["source"] == {"parameter": "filter"} and error["meta"] == {"position": position}
    assert f"position {position}" in error["detail"]


def test_records_pages_cover_the_version_once(http: httpx.Client, pid: str) -> None:
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": f"r{i}", "input": {"i": i, "even": i % 2 == 0}} for i in range(25)])
    ids: list[str] = []
    params: dict[str, Any] = {"page[limit]": 4, "filter": "@input.even:true"}
    while True:
        body = http.get(f"{K}/datasets/{did}/records", params=params).json()
        ids += [i["id"] for i in body["data"]]
        if not body["meta"]["after"]:
            break
        params = {"page[limit]": 4, "page[cursor]": body["meta"]["after"], "filter": "@input.even:true"}
    assert ids == [f"r{i}" for i in range(24, -1, -2)]


def test_save_refuses_an_edit_made_on_a_stale_revision_and_clients_read_the_saved_one(
        http: httpx.Client, typed: Any, pid: str) -> None:
    did = make_dataset(http, pid, unique("edit"))
    ok_batch(http, pid, did, inserts=[{"id": "q1", "input": {"q": "2+2"}, "expected_output": "5"}])
    opened = http.get(f"{K}/datasets/{did}/record", params={"id": "q1"}).json()["data"]["attributes"]

    def save(expected: Any, base: str) -> httpx.Response:
        return http.post(f"{K}/datasets/{did}/records/save", json={"data": {"type": "records", "attributes": {
            "id": "q1", "input": {"q": "2+2"}, "expected_output": expected, "metadata": {"by": "me"},
            "tags": ["fixed"], "base_revision": base}}})

    first = save("4", opened["revision"])
    assert first.status_code == 200, first.text
    assert first.json()["meta"]["version"] == 2
    second = save("four", opened["revision"])
    assert second.status_code == 409, second.text
    error = second.json()["errors"][0]
    assert "changed by someone else" in error["detail"]
    assert error["meta"]["current"]["attributes"]["expected_output"] == "4"
    got = typed.list_llm_obs_dataset_records(pid, did)
    assert [(r.id, r.expected_output, r.metadata) for r in got.data] == [("q1", "4", {"by": "me"})]
    assert records(http, pid, did, 1)["q1"]["expected_output"] == "5"


def test_save_refuses_tag_operations_it_would_drop(http: httpx.Client, pid: str) -> None:
    """A save replaces a record whole: tag_operations sent along is a 400 (ignoring it would clear the
    tags, `tags` being left out), and nothing is saved."""
    did = make_dataset(http, pid, unique("edit"))
    ok_batch(http, pid, did, inserts=[{"id": "q1", "input": "x", "tags": ["keep:me"]}])
    resp = http.post(f"{K}/datasets/{did}/records/save", json={"data": {"type": "records", "attributes": {
        "id": "q1", "input": "y", "tag_operations": {"add": ["new:tag"]}}}})
    assert resp.status_code == 400, resp.text
    error = resp.json()["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/tag_operations"
    assert "tag_operations" in error["detail"] and "nothing was saved" in error["detail"]
    current = records(http, pid, did)
    assert current["q1"]["input"] == "x" and current["q1"]["tags"] == ["keep:me"]
    # null is "not given", as for the other fields.
    resp = http.post(f"{K}/datasets/{did}/records/save", json={"data": {"type": "records", "attributes": {
        "id": "q1", "input": "y", "tags": ["keep:me"], "tag_operations": None}}})
    assert resp.status_code == 200, resp.text
    assert records(http, pid, did)["q1"]["input"] == "y"


def test_record_history_lists_the_experiments_that_ran_on_it_with_scores(http: httpx.Client, pid: str) -> None:
    from tests.test_experiments import UNSTABLE as EXPERIMENTS
    from tests.test_experiments import _dd_create, _dd_metric, _span

    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "r_1", "input": {"q": 1}}, {"id": "r%1", "input": {"q": 2}}])
    eid = _dd_create(http, pid, "on-records", dataset_id=did, dataset_version=1)["id"]
    now = time.time_ns()
    trace = uuid.uuid4().hex
    # `r%1` and `r_1` hold LIKE's wildcards: each record must see its own run only.
    spans = [_span(trace, "1", now, eid, "r_1"), _span(trace, "2", now + 1, eid, "r%1")]
    metrics = [_dd_metric(eid, "1", trace, "exact", "boolean", True, now // 10**6),
               _dd_metric(eid, "2", trace, "score", "score", 0.25, now // 10**6)]
    assert http.post(f"{EXPERIMENTS}/{eid}/events", json={"data": {"type": "experiments", "attributes": {
        "scope": "experiments", "metrics": metrics, "spans": spans, "tags": []}}}).status_code == 202
    runs = http.get(f"{K}/datasets/{did}/history", params={"record_id": "r_1"}).json()["data"]["attributes"][
        "experiments"]
    assert [(r["id"], r["dataset_version"], r["output"], r["scores"]) for r in runs] == [
        (eid, 1, "out-r_1", [{"label": "exact", "value": True}])]
    runs = http.get(f"{K}/datasets/{did}/history", params={"record_id": "r%1"}).json()["data"]["attributes"][
        "experiments"]
    assert [(r["output"], r["scores"]) for r in runs] == [("out-r%1", [{"label": "score", "value": 0.25}])]
