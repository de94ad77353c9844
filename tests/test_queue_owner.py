"""The queue owner's tools over the API, on both databases, against the real server: agreement per label,
the items in disagreement and their gold values, export, and the hand-off to a dataset (read back by the
Datadog routes and by ddtrace's pull_dataset). The pages get a browser test of adjudication and the hand-off.

One queue per backend, annotated by three annotators, is shared by the module's tests (built once).
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from kennel.annotations.agreement import INTERVAL, NOMINAL, ORDINAL, krippendorff_alpha
from tests.conftest import Server, run_ddtrace
from tests.test_intake import INTAKE, event, make_span
from tests.test_web import SHOTS, browser, expect  # noqa: F401  - the Chromium fixture, shared

V2 = "/api/v2/llm-obs/v1"
OWN = "/api/kennel/v1/annotation-queues"
PASSWORD = "queue owner pw"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
LABELS = [
    {"name": "helpful", "type": "boolean", "has_assessment": True},
    {"name": "topic", "type": "categorical", "values": ["billing", "tech", "other"]},
    {"name": "quality", "type": "score", "min": 1, "max": 5, "is_integer": True},
    {"name": "confidence", "type": "score", "min": 0, "max": 1},
    {"name": "comment", "type": "text"},
]
# Per item, per reviewer: (helpful, assessment, topic, quality, confidence, comment); None: did not review.
AGREE = (True, "pass", "billing", 4, 0.5, "fine answer")
PLAN: list[dict[str, tuple[Any, ...] | None]] = [
    {"r1": AGREE, "r2": AGREE, "r3": AGREE},                                                  # 0 unanimous
    {"r1": (True, "pass", "tech", 5, 0.9, "good"), "r2": (True, "pass", "tech", 5, 0.9, "good one")},  # 1
    {"r1": (True, "pass", "tech", 3, 0.2, "ok"), "r2": (False, "fail", "tech", 3, 0.2, HOSTILE)},    # 2 helpful
    {"r1": (True, "pass", "other", 2, 0.4, "meh"), "r2": (True, "pass", "other", 4, 0.4, "meh"),
     "r3": (True, "pass", "other", 2, 0.4, "meh")},                                          # 3 quality
    {"r1": AGREE},                                                                           # 4 one reviewer
    {},                                                                                      # 5 none
    {"r1": (False, "fail", "billing", 1, 0.1, "bad"), "r2": (False, "fail", "billing", 1, 0.1, "bad")},  # 6 trace
]


@dataclass
class World:
    server: Server
    project_id: str
    project_name: str
    queue_id: str
    label_ids: dict[str, str]
    items: list[str]
    trace_id: str
    reviewers: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # r1 -> (name, headers)
    member: tuple[str, dict[str, str]] = ("", {})

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.server.base_url, timeout=60,
                            headers=headers or self.server.headers)


def make_users(server: Server, *roles: str) -> list[tuple[str, dict[str, str]]]:
    """New users of these roles, each with a key pair: (user name, headers of that pair). Made through the
    services on the server's database, in one transaction (a CLI process per user would cost seconds each)."""
    from kennel.db.engine import make_engine
    from kennel.db.session import make_sessionmaker, unit_of_work
    from kennel.keys.service import create_key
    from kennel.people.service import create_user

    engine = make_engine(server.database_url)
    out = []
    try:
        with unit_of_work(make_sessionmaker(engine), write=True) as session:
            for role in roles:
                name = f"{role[:3]}-{uuid.uuid4().hex[:6]}"
                user = create_user(session, username=name, email=f"{name}@example.com", role=role,
                                   password=PASSWORD)
                key = create_key(session, name="k", user_pk=user.pk)
                out.append((name, {"DD-API-KEY": key.api_key, "DD-APPLICATION-KEY": key.app_key}))
    finally:
        engine.dispose()
    return out


def label_values(w: World, row: tuple[Any, ...]) -> list[dict[str, Any]]:
    helpful, assessment, topic, quality, confidence, comment = row
    ids = w.label_ids
    return [{"label_schema_id": ids["helpful"], "value": helpful, "assessment": assessment},
            {"label_schema_id": ids["topic"], "value": topic},
            {"label_schema_id": ids["quality"], "value": quality},
            {"label_schema_id": ids["confidence"], "value": confidence},
            {"label_schema_id": ids["comment"], "value": comment}]


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    with server.client() as http:
        project_name = f"owner-{uuid.uuid4().hex[:8]}"
        pid = http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": project_name}}}).json()["data"]["id"]
        r = http.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
            "project_id": pid, "name": "tone review", "annotation_schema": {"label_schemas": LABELS}}}})
        assert r.status_code == 201, r.text
        queue = r.json()["data"]
        ids = {lab["name"]: lab["id"] for lab in queue["attributes"]["annotation_schema"]["label_schemas"]}
        trace_id = uuid.uuid4().hex
        root = make_span("owner", trace_id=trace_id, span_id="1", name="root", kind="workflow")
        root["meta"]["input"] = {"value": "Where is my invoice?"}
        assert http.post(INTAKE, json=[event(root)]).status_code == 202
        blocks = [{"display_block": [{"type": "markdown", "content": f"Answer {i} {HOSTILE}"}]} for i in range(6)]
        r = http.post(f"{V2}/annotation-queues/{queue['id']}/interactions", json={"data": {
            "type": "interactions", "attributes": {"interactions": [
                *[{"type": "display_block", **b} for b in blocks], {"type": "trace", "content_id": trace_id}]}}})
        assert r.status_code in (200, 201), r.text
        items = [i["id"] for i in r.json()["data"]["attributes"]["interactions"]]
    w = World(server, pid, project_name, queue["id"], ids, items, trace_id)
    *annotators, w.member = make_users(server, "annotator", "annotator", "annotator", "member")
    w.reviewers = dict(zip(("r1", "r2", "r3"), annotators, strict=False))
    for who, (_, headers) in w.reviewers.items():
        batch = [{"interaction_id": w.items[i], "label_values": label_values(w, plan[who])}
                 for i, plan in enumerate(PLAN) if plan.get(who)]
        with w.client(headers) as c:
            r = c.post(f"{V2}/annotation-queues/{w.queue_id}/annotations", json={"data": {
                "type": "annotations", "attributes": {"annotations": batch}}})
            assert r.status_code == 200 and not r.json()["data"]["attributes"].get("errors"), r.text
    return w


def values_of(label: int) -> list[list[Any]]:
    """The ratings PLAN gives one label (by position), item by item: what alpha should be computed from."""
    return [[row[label] for row in plan.values() if row] for plan in PLAN]


# Agreement ----------------------------------------------------------------------------------------

def test_agreement_per_label(world: World) -> None:
    with world.client(world.member[1]) as c:
        r = c.get(f"{OWN}/{world.queue_id}/agreement")
    assert r.status_code == 200, r.text
    attrs = r.json()["data"]["attributes"]
    assert (attrs["items"], attrs["annotated_items"]) == (7, 6)
    assert sorted(attrs["reviewers"]) == sorted(name for name, _ in world.reviewers.values())
    by = {lab["name"]: lab for lab in attrs["labels"]}
    assert list(by) == ["helpful", "helpful (assessment)", "topic", "quality", "confidence", "comment"]
    expected = {"helpful": (0, NOMINAL), "topic": (2, NOMINAL), "quality": (3, ORDINAL),
                "confidence": (4, INTERVAL)}
    for name, (index, level) in expected.items():
        lab = by[name]
        assert lab["level"] == level
        alpha = krippendorff_alpha(values_of(index), level)
        assert lab["alpha"] == (None if alpha is None else pytest.approx(alpha, abs=1e-4)), name
        # Items 0, 1, 2, 3 and 6 have two or more reviewers; all three reviewers rate some of them.
        assert (lab["items"], lab["reviewers"]) == (5, 3)
    # Pairs of ratings within items: 3 + 1 + 1 + 3 + 1, all agreeing but item 2's.
    assert by["helpful"]["percent_agreement"] == pytest.approx(8 / 9, abs=1e-4)
    assert by["topic"]["alpha"] == 1.0 and by["topic"]["unanimous_items"] == 5
    pairs = {(p["a"], p["b"]) for p in by["quality"]["pairs"]}
    assert len(pairs) == 3 and all(p["kappa"] is not None for p in by["quality"]["pairs"])
    assert all(p["mean_abs_difference"] is not None and p["kappa"] is None for p in by["confidence"]["pairs"])
    assert len(by["quality"]["versus_consensus"]) == 3
    comment = by["comment"]
    assert comment["level"] == "text" and comment["alpha"] is None and comment["similarity"] is not None
    assert comment["most_different"][0]["interaction_id"] in world.items


def test_owner_routes_refuse_annotators_and_unknown_queues(world: World) -> None:
    annotator = world.reviewers["r1"][1]
    base = f"{OWN}/{world.queue_id}"
    with world.client(annotator) as c:
        for method, path, body in [("GET", "/agreement", None), ("GET", "/adjudications", None),
                                   ("PUT", f"/adjudications/{world.items[2]}", {"data": {"type": "adjudications",
                                    "attributes": {"label_values": [{"label_schema_id": world.label_ids["helpful"],
                                                                     "value": True}]}}}),
                                   ("GET", "/export", None),
                                   ("POST", "/to-dataset", {"data": {"type": "to_dataset", "attributes": {
                                       "dataset_name": "nope"}}})]:
            r = c.request(method, base + path, json=body)
            assert r.status_code == 403, (path, r.text)
            assert "annotator" in r.json()["errors"][0]["detail"]
    with world.client() as c:
        assert c.get(f"{OWN}/{uuid.uuid4()}/agreement").status_code == 404
        assert c.get(f"{base}/adjudications", params={"status": "maybe"}).status_code == 400
        assert c.get(f"{base}/adjudications", params={"page[cursor]": "garbage"}).status_code == 400
        assert c.get(f"{base}/export", params={"format": "xlsx"}).status_code == 400


# Adjudication -------------------------------------------------------------------------------------

def gold_body(w: World, **values: Any) -> dict[str, Any]:
    return {"data": {"type": "adjudications", "attributes": {"label_values": [
        {"label_schema_id": w.label_ids[k], "value": v} for k, v in values.items()]}}}


def test_disagreements_and_gold_values(world: World) -> None:
    base = f"{OWN}/{world.queue_id}/adjudications"
    names = {k: v[0] for k, v in world.reviewers.items()}
    with world.client(world.member[1]) as c:
        page = c.get(base, params={"status": "all"}).json()
        assert [d["id"] for d in page["data"]] == [world.items[2], world.items[3]]
        two, three = page["data"]
        assert two["attributes"]["disagreeing_labels"] == ["helpful"]
        assert three["attributes"]["disagreeing_labels"] == ["quality"]
        reviews = {rv["reviewer"]: rv["label_values"] for rv in three["attributes"]["reviews"]}
        assert reviews[names["r2"]]["quality"] == {"value": 4}
        assert reviews[names["r1"]]["helpful"] == {"value": True, "assessment": "pass"}
        # Paging by cursor gives the same items one at a time.
        first = c.get(base, params={"status": "all", "page[limit]": "1"}).json()
        assert [d["id"] for d in first["data"]] == [world.items[2]] and first["meta"]["after"]
        second = c.get(base, params={"status": "all", "page[limit]": "1", "page[cursor]": first["meta"]["after"]})
        assert [d["id"] for d in second.json()["data"]] == [world.items[3]]

        # Bad gold values change nothing.
        for bad in (gold_body(world, quality=9), gold_body(world, topic="weather"),
                    {"data": {"type": "adjudications", "attributes": {"label_values": [
                        {"label_schema_id": "no-such-label", "value": 1}]}}},
                    {"data": {"type": "adjudications", "attributes": {"label_values": []}}}):
            r = c.put(f"{base}/{world.items[3]}", json=bad)
            assert r.status_code == 400, r.text
        assert c.put(f"{base}/{uuid.uuid4()}", json=gold_body(world, quality=2)).status_code == 404
        assert c.delete(f"{base}/{world.items[3]}").status_code == 404  # nothing to withdraw
        assert c.get(base, params={"status": "adjudicated"}).json()["data"] == []

        r = c.put(f"{base}/{world.items[3]}", json=gold_body(world, quality=2))
        assert r.status_code == 200, r.text
        gold = r.json()["data"]["attributes"]["gold"]
        assert gold["label_values"] == {"quality": {"value": 2}} and gold["adjudicated_by"] == world.member[0]
        # Ruling again replaces the gold value.
        r = c.put(f"{base}/{world.items[3]}", json=gold_body(world, quality=3))
        assert r.json()["data"]["attributes"]["gold"]["label_values"] == {"quality": {"value": 3}}
        assert [d["id"] for d in c.get(base).json()["data"]] == [world.items[2]]
        adjudicated = c.get(base, params={"status": "adjudicated"}).json()["data"]
        assert [d["id"] for d in adjudicated] == [world.items[3]]
        one = c.get(f"{base}/{world.items[0]}").json()["data"]["attributes"]
        assert one["disagreeing_labels"] == [] and one["gold"] is None and len(one["reviews"]) == 3

        # A gold value on an item nobody disputes is allowed, and can be withdrawn.
        assert c.put(f"{base}/{world.items[4]}", json=gold_body(world, helpful=True)).status_code == 200
        assert c.delete(f"{base}/{world.items[4]}").status_code == 204

    # The Datadog route still lists the reviewers' annotations only.
    with world.client() as c:
        r = c.get(f"{V2}/annotation-queues/{world.queue_id}/annotated-interactions")
        listed = {i["id"]: i for i in r.json()["data"]["attributes"]["annotated_interactions"]}
        assert len(listed[world.items[3]]["annotations"]) == 3


# Export -------------------------------------------------------------------------------------------

def test_export_csv_and_jsonl(world: World) -> None:
    names = sorted(v[0] for v in world.reviewers.values())
    with world.client(world.member[1]) as c:
        c.put(f"{OWN}/{world.queue_id}/adjudications/{world.items[3]}", json=gold_body(world, quality=3))
        r = c.get(f"{OWN}/{world.queue_id}/export", params={"format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        header = next(csv.reader(io.StringIO(r.text)))
        jsonl = c.get(f"{OWN}/{world.queue_id}/export", params={"format": "jsonl"})
    assert header[:3] == ["interaction_id", "interaction_type", "content_id"]
    assert header[3:9] == [f"helpful [{names[0]}]", f"helpful [{names[0]}] assessment", f"helpful [{names[1]}]",
                           f"helpful [{names[1]}] assessment", f"helpful [{names[2]}]",
                           f"helpful [{names[2]}] assessment"]
    assert "quality [gold]" in header and f"comment [{names[2]}]" in header
    assert [row["interaction_id"] for row in rows] == [world.items[i] for i in (0, 1, 2, 3, 4, 6)]
    by_id = {row["interaction_id"]: row for row in rows}
    r1, r2 = world.reviewers["r1"][0], world.reviewers["r2"][0]
    assert by_id[world.items[3]]["quality [gold]"] == "3"
    assert by_id[world.items[3]][f"quality [{r2}]"] == "4"
    assert by_id[world.items[2]][f"comment [{r2}]"] == HOSTILE
    assert by_id[world.items[2]][f"helpful [{r1}] assessment"] == "pass"
    assert by_id[world.items[4]][f"helpful [{r2}]"] == ""
    assert by_id[world.items[6]]["interaction_type"] == "trace"
    lines = [orjson.loads(line) for line in jsonl.content.splitlines()]
    assert len(lines) == 6 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    three = next(line for line in lines if line["interaction_id"] == world.items[3])
    assert three["gold"] == {"quality": {"value": 3}} and len(three["annotations"]) == 3


# To a dataset -------------------------------------------------------------------------------------

def hand_off(c: httpx.Client, w: World, **attributes: Any) -> httpx.Response:
    return c.post(f"{OWN}/{w.queue_id}/to-dataset", json={"data": {"type": "to_dataset", "attributes": attributes}})


def records_of(c: httpx.Client, w: World, dataset_id: str) -> list[dict[str, Any]]:
    r = c.get(f"{V2}/{w.project_id}/datasets/{dataset_id}/records")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_hand_off_to_a_dataset(world: World) -> None:
    with world.client(world.member[1]) as c:
        c.put(f"{OWN}/{world.queue_id}/adjudications/{world.items[3]}", json=gold_body(world, quality=3))
        preview = hand_off(c, world, items="agreed", preview=True)
        assert preview.status_code == 200, preview.text
        attrs = preview.json()["data"]["attributes"]
        # Complete (two reviewers) and in agreement: items 0, 1 and 6.
        assert attrs["items"] == 3
        assert [r["interaction_id"] for r in attrs["records"]] == [world.items[i] for i in (0, 1, 6)]
        assert hand_off(c, world, items="agreed", reviewers_per_item=3, preview=True).json()[
            "data"]["attributes"]["items"] == 1
        first = attrs["records"][0]
        assert first["expected_output"] == {"helpful": True, "topic": "billing", "quality": 4, "confidence": 0.5,
                                            "comment": "fine answer"}
        assert first["input"] == {"display_block": [{"type": "markdown", "content": f"Answer 0 {HOSTILE}"}]}
        trace = attrs["records"][2]
        assert trace["input"] == {"value": "Where is my invoice?"}
        meta = trace["metadata"]
        assert meta["annotation_queue_id"] == world.queue_id and meta["interaction_id"] == world.items[6]
        assert meta["kennel_item"] == f"/queues/{world.queue_id}/adjudicate/{world.items[6]}"
        assert set(meta["reviewers"]) == {world.reviewers["r1"][0], world.reviewers["r2"][0]}
        assert meta["reviewers"][world.reviewers["r1"][0]]["helpful"] == {"value": False, "assessment": "fail"}
        assert meta["agreement"]["helpful"] == "agree" and "quality" in meta["queue_alpha"]

        # Bad requests write nothing.
        for bad in ({"items": "agreed"}, {"items": "agreed", "dataset_name": "x", "dataset_id": "y"},
                    {"items": "sometimes", "dataset_name": "x"}, {"dataset_name": "x", "label": "nope"},
                    {"dataset_name": "x", "reviewers_per_item": 0},
                    {"dataset_id": str(uuid.uuid4())}):
            r = hand_off(c, world, **bad)
            assert r.status_code in (400, 404), (bad, r.text)
        r = c.get(f"{V2}/{world.project_id}/datasets", params={"filter[name]": "x"})
        assert r.json()["data"] == []

        name = f"golden-{uuid.uuid4().hex[:6]}"
        done = hand_off(c, world, items="agreed", dataset_name=name)
        assert done.status_code == 201, done.text
        d = done.json()["data"]["attributes"]
        assert (d["created"], d["version"], d["items"], d["dataset_name"]) == (True, 1, 3, name)
        records = records_of(c, world, d["dataset_id"])
        assert len(records) == 3
        assert {r["attributes"]["metadata"]["interaction_id"] for r in records} == {world.items[i] for i in (0, 1, 6)}

        # The adjudicated item, its expected output the gold value of one label, as one more version.
        more = hand_off(c, world, items="adjudicated", dataset_id=d["dataset_id"], label="quality",
                        expected_output_from="gold")
        assert more.status_code == 201, more.text
        assert (more.json()["data"]["attributes"]["version"], more.json()["data"]["attributes"]["items"]) == (2, 1)
        records = records_of(c, world, d["dataset_id"])
        added = [r for r in records if r["attributes"]["metadata"]["interaction_id"] == world.items[3]]
        assert len(records) == 4 and len(added) == 1
        assert added[0]["attributes"]["expected_output"] == 3
        assert added[0]["attributes"]["metadata"]["gold"] == {"quality": {"value": 3}}
        assert added[0]["attributes"]["metadata"]["agreement"]["quality"] == "disagree"
        # The same hand-off again adds nothing to the existing dataset (same content), and makes no version.
        again = hand_off(c, world, items="adjudicated", dataset_id=d["dataset_id"], label="quality",
                         expected_output_from="gold").json()["data"]["attributes"]
        assert (again["version"], again["records_added"]) == (2, 0)

    pulled = run_ddtrace(world.server, f"""
ds = LLMObs.pull_dataset(dataset_name={name!r}, project_name={world.project_name!r})
print(json.dumps({{"version": ds.version, "records": [
    {{"input": r["input_data"], "expected": r["expected_output"], "meta": r.get("metadata")}} for r in ds]}}))
""")
    assert pulled["version"] == 2 and len(pulled["records"]) == 4
    by_item = {r["meta"]["interaction_id"]: r for r in pulled["records"]}
    assert by_item[world.items[3]]["expected"] == 3
    assert by_item[world.items[6]]["input"] == {"value": "Where is my invoice?"}
    assert by_item[world.items[0]]["meta"]["kennel_item"].endswith(world.items[0])


# The pages in Chromium ----------------------------------------------------------------------------

def sign_in(page: Any, login: str) -> None:
    page.goto("/login")
    page.get_by_label("User name or email").fill(login)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(queues)?$"))


def test_adjudicate_and_hand_off_in_the_browser(world: World, browser: Any) -> None:
    context = browser.new_context(base_url=world.server.base_url,
                                  extra_http_headers={"X-Forwarded-For": f"10.9.{uuid.uuid4().bytes[0]}.7"},
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    try:
        sign_in(page, world.member[0])
        page.goto("/queues")
        page.get_by_role("link", name="Agreement").first.click()
        expect(page.get_by_role("heading", name="quality (ordinal)")).to_be_visible()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{world.server.backend}-queue-agreement.png"), full_page=True)

        page.get_by_role("link", name="Adjudicate").click()
        card = page.locator(f"#item-{world.items[2]}")
        expect(card).to_be_visible()
        expect(card.get_by_text("differs")).to_be_visible()
        # Pick the second reviewer's value (false) as gold with a fail assessment, keyboard only.
        card.get_by_role("radio", name="false").focus()
        page.keyboard.press("Space")
        card.get_by_label("Gold assessment of helpful").select_option("fail")
        page.screenshot(path=str(SHOTS / f"{world.server.backend}-queue-adjudicate.png"), full_page=True)
        card.get_by_role("button", name=re.compile("Save gold value")).click()
        page.wait_for_load_state()
        # Saved: the item left the "to adjudicate" list, and shows its gold value on its own page.
        expect(page.locator(f"#item-{world.items[2]}")).to_have_count(0)
        page.goto(f"/queues/{world.queue_id}/adjudicate/{world.items[2]}")
        expect(page.get_by_text(f"Gold by {world.member[0]}")).to_be_visible()
        assert page.evaluate("window.__pwned") is None

        page.get_by_role("link", name="To a dataset").click()
        page.get_by_role("radio", name="Adjudicated (with a gold value)").check()
        name = f"browser-{uuid.uuid4().hex[:6]}"
        page.get_by_label("or a new one named").fill(name)
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_role("heading", name=re.compile(r"Preview: \d+ record"))).to_be_visible()
        page.screenshot(path=str(SHOTS / f"{world.server.backend}-queue-to-dataset.png"), full_page=True)
        page.get_by_role("button", name="Add as a new version").click()
        expect(page.get_by_role("status")).to_contain_text(f"Version 1 of dataset “{name}” (new)")
        assert page.evaluate("window.__pwned") is None
        assert problems == []
    finally:
        context.close()

    # An annotator is refused the owner's pages.
    annotator = browser.new_context(base_url=world.server.base_url,
                                    extra_http_headers={"X-Forwarded-For": f"10.8.{uuid.uuid4().bytes[0]}.7"})
    try:
        page = annotator.new_page()
        sign_in(page, world.reviewers["r1"][0])
        for path in ("agreement", "adjudicate", "to-dataset"):
            response = page.goto(f"/queues/{world.queue_id}/{path}")
            assert response is not None and response.status == 403
    finally:
        annotator.close()


def test_pages_escape_and_refuse_cross_site_posts(world: World) -> None:
    web = httpx.Client(base_url=world.server.base_url, timeout=30,
                       headers={"X-Forwarded-For": f"10.7.{uuid.uuid4().bytes[0]}.7"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    assert web.post("/login", data={"login": world.member[0], "password": PASSWORD, "csrf_token": token,
                                    "next": "/"}).status_code == 303
    t0 = time.monotonic()
    page = web.get(f"/queues/{world.queue_id}/adjudicate", params={"status": "all"})
    assert page.status_code == 200 and time.monotonic() - t0 < 30
    assert HOSTILE not in page.text and "&lt;img src=x" in page.text
    # No CSRF token: refused, nothing stored.
    r = web.post(f"/queues/{world.queue_id}/adjudicate/{world.items[1]}",
                 data={f"gold.{world.label_ids['quality']}": "5"})
    assert r.status_code == 403
    with world.client(world.member[1]) as c:
        assert c.get(f"{OWN}/{world.queue_id}/adjudications/{world.items[1]}").json()[
            "data"]["attributes"]["gold"] is None


def test_label_ids_no_json_path_can_spell_still_count(server: Server) -> None:
    """Agreement reads values through SQL JSON paths; a label id that cannot be one takes the other road."""
    odd = 'id with "quotes" and $.dots'
    with server.client() as c:
        pid = c.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": f"odd-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
        queue = c.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
            "project_id": pid, "name": "odd", "annotation_schema": {"label_schemas": [
                {"name": "ok", "type": "boolean", "id": odd}, {"name": "plain", "type": "boolean"}]}}}}).json()["data"]
        labels = {lab["name"]: lab["id"] for lab in queue["attributes"]["annotation_schema"]["label_schemas"]}
        assert labels["ok"] == odd
        added = c.post(f"{V2}/annotation-queues/{queue['id']}/interactions", json={"data": {"type": "interactions",
                       "attributes": {"interactions": [{"type": "trace", "content_id": f"t{i}"} for i in range(3)]}}})
        items = [i["id"] for i in added.json()["data"]["attributes"]["interactions"]]
    ratings = [[True, True, False], [True, False, False]]
    for given, (_, headers) in zip(ratings, make_users(server, "member", "member"), strict=False):
        with server.client(headers=headers) as c:
            r = c.post(f"{V2}/annotation-queues/{queue['id']}/annotations", json={"data": {
                "type": "annotations", "attributes": {"annotations": [
                    {"interaction_id": iid, "label_values": [{"label_schema_id": odd, "value": v},
                                                             {"label_schema_id": labels["plain"], "value": v}]}
                    for iid, v in zip(items, given, strict=False)]}}})
            assert r.status_code == 200 and not r.json()["data"]["attributes"].get("errors"), r.text
    with server.client() as c:
        found = c.get(f"{OWN}/{queue['id']}/agreement").json()["data"]["attributes"]["labels"]
    expected = krippendorff_alpha([list(u) for u in zip(*ratings, strict=False)], NOMINAL)
    assert [lab["alpha"] for lab in found] == [pytest.approx(expected, abs=1e-4)] * 2
