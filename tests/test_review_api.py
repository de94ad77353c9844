"""The review API (/api/kennel/v1/annotation-queues/...) on both databases: the reviewer's flow, N reviewers
per item with leases enforced by the server, blind review, undo, drafts against a changing schema, the
owner's list and progress, and bad input answered 4xx with nothing changed. Each reviewer is a key pair of
its own (its own author). Annotations written here read back through the Datadog routes' typed client."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Server

V2 = "/api/v2/llm-obs/v1"
K = "/api/kennel/v1/annotation-queues"
LABELS = [
    {"name": "quality", "type": "categorical", "values": ["good", "ok", "bad"], "is_required": True,
     "has_assessment": True, "has_reasoning": True, "description": "How good is the answer?"},
    {"name": "score", "type": "score", "min": 1, "max": 5, "is_integer": True},
    {"name": "safe", "type": "boolean", "is_required": True},
    {"name": "note", "type": "text"},
]


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def reviewer(server: Server) -> httpx.Client:
    api_key, app_key = server.new_key(f"reviewer-{uuid.uuid4().hex[:6]}")
    return httpx.Client(base_url=server.base_url, timeout=60,
                        headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key})


def make_queue(http: httpx.Client, items: int, **settings: Any) -> tuple[str, list[str], dict[str, str]]:
    """A queue of `items` trace interactions with LABELS; its id, the interaction ids, label ids by name."""
    pid = _ok(http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"review-{uuid.uuid4().hex[:8]}"}}}))["data"]["id"]
    queue = _ok(http.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
        "project_id": pid, "name": "q", "description": "Read the answer, then label it.",
        "annotation_schema": {"label_schemas": LABELS}}}}), 201)["data"]
    qid = queue["id"]
    added = _ok(http.post(f"{V2}/annotation-queues/{qid}/interactions", json={"data": {
        "type": "interactions", "attributes": {"interactions": [
            {"type": "trace", "content_id": f"t-{uuid.uuid4().hex[:8]}-{i}"} for i in range(items)]}}}), 201)
    ids = [i["id"] for i in added["data"]["attributes"]["interactions"]]
    labels = {lab["name"]: lab["id"] for lab in queue["attributes"]["annotation_schema"]["label_schemas"]}
    if settings:
        _ok(http.patch(f"{K}/{qid}/review-settings", json={"data": {"type": "review_settings",
                                                                    "attributes": settings}}))
    return qid, ids, labels


def values(labels: dict[str, str], quality: str = "good", safe: bool = True, **extra: Any) -> list[dict[str, Any]]:
    out = [{"label_schema_id": labels["quality"], "value": quality, "assessment": "pass"},
           {"label_schema_id": labels["safe"], "value": safe}]
    out += [{"label_schema_id": labels[k], "value": v} for k, v in extra.items()]
    return out


def nxt(c: httpx.Client, qid: str, after: str | None = None) -> dict[str, Any] | None:
    attrs = {"after_interaction_id": after} if after else {}
    return _ok(c.post(f"{K}/{qid}/next", json={"data": {"type": "review_items", "attributes": attrs}}))["data"]


def put(c: httpx.Client, qid: str, iid: str, vals: list[dict[str, Any]], *, next_: bool = False,
        version: str | None = None) -> httpx.Response:
    attrs: dict[str, Any] = {"label_values": vals, "next": next_}
    if version:
        attrs["schema_version"] = version
    return c.put(f"{K}/{qid}/items/{iid}/annotation", json={"data": {"type": "annotations", "attributes": attrs}})


def annotated(http: httpx.Client, qid: str) -> dict[str, list[dict[str, Any]]]:
    """interaction id -> its annotations, as the Datadog route answers them."""
    body = _ok(http.get(f"{V2}/annotation-queues/{qid}/annotated-interactions"))
    return {i["id"]: i["annotations"] for i in body["data"]["attributes"]["annotated_interactions"]}


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["errors"][0]["detail"]


def test_reviewer_flow_submit_skip_undo_flag(server: Server, http: httpx.Client, typed: Any) -> None:
    qid, ids, labels = make_queue(http, 4)
    with reviewer(server) as me:
        first = nxt(me, qid)
        assert first is not None and first["id"] == ids[0]
        assert first["attributes"]["progress"] == {"position": 1, "total": 4, "done_by_me": 0, "complete": 0,
                                                   "percent": 0}
        # Submit and go on: the answer carries the next item, held for me.
        body = _ok(put(me, qid, ids[0], values(labels, score=4), next_=True))
        assert body["meta"]["next"]["id"] == ids[1]
        assert body["meta"]["next"]["attributes"]["progress"]["done_by_me"] == 1
        # Idempotent: the same submit again replaces my annotation, no second one.
        _ok(put(me, qid, ids[0], values(labels, score=4)))
        # The Datadog route and the typed client read what the app wrote.
        typed_read = typed.get_llm_obs_annotated_interactions(qid).to_dict()
        stored = {i["id"]: i["annotations"] for i in typed_read["data"]["attributes"]["annotated_interactions"]}
        assert len(stored[ids[0]]) == 1
        assert stored[ids[0]][0]["label_values"][labels["score"]]["value"] == 4
        # Skip item 2: it goes to the end of my queue.
        skipped = _ok(me.post(f"{K}/{qid}/items/{ids[1]}/skip"))["data"]
        assert skipped["id"] == ids[2]
        _ok(put(me, qid, ids[2], values(labels)))
        assert nxt(me, qid, after=ids[2])["id"] == ids[3]
        _ok(put(me, qid, ids[3], values(labels, quality="bad", safe=False)))
        assert nxt(me, qid)["id"] == ids[1], "the skipped item comes last"
        # Undo takes back the last submit (item 4): its values come back as the draft.
        back = _ok(me.post(f"{K}/{qid}/undo"))["data"]
        assert back["id"] == ids[3] and back["attributes"]["my_annotation"] is None
        assert {v["label_schema_id"]: v["value"] for v in back["attributes"]["draft"]}[labels["quality"]] == "bad"
        assert len(annotated(http, qid)[ids[3]]) == 0
        # Then the submit before it (item 3), then the skip (item 2 back in place), then the first submit.
        assert _ok(me.post(f"{K}/{qid}/undo"))["data"]["id"] == ids[2]
        unskipped = _ok(me.post(f"{K}/{qid}/undo"))["data"]
        assert unskipped["id"] == ids[1] and unskipped["attributes"]["skipped"] is False
        # The first item was submitted twice: undoing the second puts the first back.
        assert _ok(me.post(f"{K}/{qid}/undo"))["data"]["attributes"]["my_annotation"] is not None
        assert _ok(me.post(f"{K}/{qid}/undo"))["data"]["attributes"]["my_annotation"] is None
        assert "nothing to undo" in error(me.post(f"{K}/{qid}/undo"), 409)
        assert annotated(http, qid) == {i: [] for i in ids}
        # Flag for discussion, and back.
        flag = {"data": {"type": "flags", "attributes": {"flagged": True}}}
        assert _ok(me.put(f"{K}/{qid}/items/{ids[0]}/flag", json=flag))["data"]["attributes"]["flagged"] is True
        # Go to item number 3, and step back from it.
        go = {"data": {"type": "review_items", "attributes": {"position": 3}}}
        assert _ok(me.post(f"{K}/{qid}/open", json=go))["data"]["id"] == ids[2]
        back_one = {"data": {"type": "review_items", "attributes": {"interaction_id": ids[2], "step": -1}}}
        assert _ok(me.post(f"{K}/{qid}/open", json=back_one))["data"]["id"] == ids[1]


def test_item_numbers_close_up_when_items_are_deleted(server: Server, http: httpx.Client) -> None:
    qid, ids, _ = make_queue(http, 4)
    gone = http.post(f"{V2}/annotation-queues/{qid}/interactions/delete",
                     json={"data": {"type": "interactions", "attributes": {"interaction_ids": [ids[1]]}}})
    assert gone.status_code == 204, gone.text
    added = _ok(http.post(f"{V2}/annotation-queues/{qid}/interactions", json={"data": {
        "type": "interactions", "attributes": {"interactions": [{"type": "trace", "content_id": "t-late"}]}}}), 201)
    late = added["data"]["attributes"]["interactions"][0]["id"]

    def go(n: int) -> httpx.Response:
        return me.post(f"{K}/{qid}/open", json={"data": {"type": "review_items", "attributes": {"position": n}}})

    with reviewer(server) as me:
        # Items 1, 3, 4 and the one added last are now numbers 1 to 4.
        assert [_ok(go(n))["data"]["id"] for n in (1, 2, 3, 4)] == [ids[0], ids[2], ids[3], late]
        assert _ok(go(3))["data"]["attributes"]["progress"]["position"] == 3
        assert error(go(5), 404)


def test_bad_input_changes_nothing(server: Server, http: httpx.Client) -> None:
    qid, ids, labels = make_queue(http, 2)
    other_qid, other_ids, _ = make_queue(http, 1)
    with reviewer(server) as me:
        nxt(me, qid)
        missing = error(put(me, qid, ids[0], [{"label_schema_id": labels["score"], "value": 3}]), 400)
        assert "quality" in missing and "safe" in missing, missing
        outside = error(put(me, qid, ids[0], values(labels, score=9)), 400)
        assert "'score'" in outside and "outside [1, 5]" in outside
        assert "not one of" in error(put(me, qid, ids[0], values(labels, quality="great")), 400)
        # Another queue's item, addressed through this queue.
        assert "not found in queue" in error(put(me, qid, other_ids[0], values(labels)), 404)
        assert "not found" in error(me.post(f"{K}/{qid}/items/nope/skip"), 404)
        assert "not found" in error(me.post(f"{K}/{uuid.uuid4()}/next", json={"data": {"type": "review_items"}}), 404)
        assert error(me.post(f"{K}/{qid}/open", json={"data": {"type": "review_items",
                                                                "attributes": {"position": 99}}}), 404)
        bad_settings = me.patch(f"{K}/{qid}/review-settings", json={"data": {"type": "review_settings",
                                                                           "attributes": {"reviewers_per_item": 0}}})
        assert "reviewers_per_item" in error(bad_settings, 400)
        assigned = me.patch(f"{K}/{qid}/review-settings", json={"data": {"type": "review_settings",
                                                                        "attributes": {"assignment": "assigned"}}})
        assert "reviewer_emails" in error(assigned, 400)
        assert error(me.post(f"{K}/{qid}/undo"), 409)
    assert annotated(http, qid) == {i: [] for i in ids}
    assert annotated(http, other_qid) == {other_ids[0]: []}
    settings = _ok(http.get(f"{K}/{qid}/review-settings"))["data"]["attributes"]
    assert settings["reviewers_per_item"] is None and settings["assignment"] == "open"


def test_draft_survives_and_names_schema_changes(server: Server, http: httpx.Client) -> None:
    qid, ids, labels = make_queue(http, 1)
    with reviewer(server) as me:
        item = nxt(me, qid)
        version = item["attributes"]["schema_version"]
        draft = {"data": {"type": "drafts", "attributes": {"schema_version": version, "label_values": [
            {"label_schema_id": labels["quality"], "value": "ok"}, {"label_schema_id": labels["note"],
                                                                    "value": "half-typed"}]}}}
        _ok(me.put(f"{K}/{qid}/items/{ids[0]}/draft", json=draft))
        again = _ok(me.get(f"{K}/{qid}/items/{ids[0]}"))["data"]["attributes"]
        assert [v["value"] for v in again["draft"]] == ["ok", "half-typed"] and again["schema_changes"] == []
        # The owner changes the quality label's values while the draft waits.
        changed = [dict(lab, values=["good", "bad"]) if lab["name"] == "quality" else lab for lab in LABELS]
        _ok(http.put(f"{V2}/annotation-queues/{qid}/label-schema", json={"data": {"type": "queues", "attributes": {
            "annotation_schema": {"label_schemas": changed}}}}))
        now = _ok(me.get(f"{K}/{qid}/items/{ids[0]}"))["data"]["attributes"]
        assert now["schema_changes"] == ["label 'quality' changed (values)"]
        # A draft or submit made against the old schema is refused, naming what changed.
        assert "'quality' changed (values)" in error(me.put(f"{K}/{qid}/items/{ids[0]}/draft", json=draft), 409)
        assert "'quality'" in error(put(me, qid, ids[0], values(labels, quality="bad"), version=version), 409)
        assert annotated(http, qid) == {ids[0]: []}
        _ok(put(me, qid, ids[0], values(labels, quality="bad"), version=now["schema_version"]))


LEASE = 3


def test_n_reviewers_per_item_leases_and_blind_review(server: Server, http: httpx.Client) -> None:
    qid, ids, labels = make_queue(http, 3, reviewers_per_item=2, lease_seconds=LEASE)
    a, b, c = reviewer(server), reviewer(server), reviewer(server)
    with a, b, c:
        assert nxt(a, qid)["id"] == ids[0]
        assert nxt(b, qid)["id"] == ids[0], "N = 2: a second reviewer gets the same item"
        assert nxt(c, qid)["id"] == ids[1], "two holds fill item 1: the third reviewer is handed item 2"
        # Blind review (default with N > 1): nobody else's values before my own submit.
        _ok(put(a, qid, ids[0], values(labels, quality="good")))
        seen_by_b = _ok(b.get(f"{K}/{qid}/items/{ids[0]}"))["data"]["attributes"]
        assert seen_by_b["others"] is None and seen_by_b["others_hidden"] and seen_by_b["others_count"] == 1
        # Submitting at the same moment: both kept.
        results: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda cl=cl: results.append(put(cl, qid, ids[1], values(labels))))
                   for cl in (b, c)]
        nxt(b, qid, after=ids[0])  # b takes item 2's second place
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results) == [200, 200], [r.text for r in results]
        assert len(annotated(http, qid)[ids[1]]) == 2
        _ok(put(b, qid, ids[0], values(labels, quality="bad")))
        after_b = _ok(b.get(f"{K}/{qid}/items/{ids[0]}"))["data"]["attributes"]
        assert [o["label_values"][labels["quality"]]["value"] for o in after_b["others"]] == ["good"]
        # Items 1 and 2 are complete: everyone's queue holds item 3 only.
        assert nxt(c, qid)["id"] == ids[2]
        assert nxt(a, qid)["id"] == ids[2]
        # A complete item takes no third annotation.
        assert "already has the 2 annotations" in error(put(c, qid, ids[0], values(labels)), 409)
        # A stale lease: c's hold on item 3 lapses, a third reviewer takes its place, c's submit is refused.
        with reviewer(server) as d:  # made first: making a key pair takes a while
            time.sleep(LEASE + 0.2)
            assert nxt(a, qid)["id"] == ids[2], "a takes item 3 again"
            assert nxt(d, qid)["id"] == ids[2], "c's place is free again"
            assert "stale lease" in error(put(c, qid, ids[2], values(labels)), 409)
            assert nxt(c, qid) is None, "c has nothing left: item 3 is held by a and d"
        assert len(annotated(http, qid)[ids[2]]) == 0


def test_owner_list_filters_and_progress(server: Server, http: httpx.Client) -> None:
    qid, ids, labels = make_queue(http, 5, reviewers_per_item=2, blind_review=False)
    a, b = reviewer(server), reviewer(server)
    with a, b:
        for iid, qa, qb in ((ids[0], "good", "good"), (ids[1], "good", "bad")):
            for cl, q in ((a, qa), (b, qb)):
                nxt(cl, qid)
                _ok(put(cl, qid, iid, values(labels, quality=q)))
        nxt(a, qid)
        _ok(put(a, qid, ids[2], values(labels)))
        _ok(a.post(f"{K}/{qid}/items/{ids[3]}/skip"))
        _ok(b.put(f"{K}/{qid}/items/{ids[4]}/flag", json={"data": {"type": "flags", "attributes": {"flagged": True}}}))

        def listed(**params: str) -> list[str]:
            got = _ok(http.get(f"{K}/{qid}/items", params=params))["data"]
            return [ids.index(r["id"]) for r in got]

        assert listed() == [0, 1, 2, 3, 4]
        assert listed(status="complete") == [0, 1]
        assert listed(status="needs") == [2]
        assert listed(status="disagreement") == [1]
        assert listed(status="skipped") == [3]
        assert listed(status="flagged") == [4]
        assert listed(label="quality", value="bad") == [1]
        assert listed(type="session") == []
        assert "status must be one of" in error(http.get(f"{K}/{qid}/items", params={"status": "nope"}), 400)
        progress = _ok(http.get(f"{K}/{qid}/progress"))["data"]["attributes"]
        assert progress["items"] == 5 and progress["complete"] == 2
        done = sorted((r["done"], r["skipped"]) for r in progress["reviewers"])
        assert done == [(2, 0), (3, 1)]
        assert all(r["median_seconds"] is not None and r["left_items"] >= 0 for r in progress["reviewers"])


def test_review_routes_are_in_the_openapi_schema(http: httpx.Client) -> None:
    paths = _ok(http.get("/openapi.json"))["paths"]
    for path in ("/next", "/undo", "/items/{interaction_id}/annotation", "/items/{interaction_id}/draft",
                 "/items", "/progress", "/review-settings"):
        assert f"{K}/{{queue_id}}{path}" in paths, path


@pytest.mark.parametrize("path", ["/items", "/progress", "/review-settings"])
def test_owner_views_need_a_key(server: Server, path: str) -> None:
    r = httpx.get(f"{server.base_url}{K}/{uuid.uuid4()}{path}")
    assert r.status_code == 403


def test_assigned_queue_takes_only_its_reviewers(server: Server, http: httpx.Client) -> None:
    qid, ids, labels = make_queue(http, 1)
    _ok(http.patch(f"{V2}/annotation-queues/{qid}", json={"data": {"type": "queues", "attributes": {
        "reviewer_emails": ["someone@example.com"]}}}))
    _ok(http.patch(f"{K}/{qid}/review-settings", json={"data": {"type": "review_settings",
                                                                "attributes": {"assignment": "assigned"}}}))
    with reviewer(server) as outsider:  # a key pair of no one: no email, so not an assigned reviewer
        assert "assigned to its reviewers" in error(outsider.post(f"{K}/{qid}/next", json={
            "data": {"type": "review_items"}}), 403)
        assert "assigned to its reviewers" in error(put(outsider, qid, ids[0], values(labels)), 403)
    assert annotated(http, qid) == {ids[0]: []}
