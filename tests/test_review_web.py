"""The reviewer's screen in Chromium, on both databases: the keyboard flow (a burst of 20 keys typed with no
waits labels exactly the items meant), required labels, a draft surviving a reload, keys not firing while
typing, undo and skip; N = 2 with blind review and three reviewers in separate browser contexts; injected
content staying inert; the owner's page over HTTP. Screenshots go to $KENNEL_SHOTS."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import markupsafe

from tests.conftest import Server, kennel_cli
from tests.test_review_api import V2, K, _ok
from tests.test_trace_view import person  # a person of a role, signed in over HTTP
from tests.test_web import SHOTS, browser, expect  # noqa: F401  - the Chromium fixture, shared

PASSWORD = "review screen pw"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
LABELS = [
    {"name": "quality", "type": "categorical", "values": ["good", "ok", "bad"], "is_required": True,
     "description": "Is the answer correct and complete?", "has_reasoning": True},
    {"name": "polite", "type": "boolean", "has_assessment": True},
    {"name": "stars", "type": "score", "min": 1, "max": 5, "is_integer": True},
]


def user(server: Server, role: str) -> str:
    name = f"rv-{role}-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", role, "--password-stdin", "--email", f"{name}@example.com",
               "--database-url", server.database_url, input=PASSWORD + "\n")
    return name


def queue_of(http: httpx.Client, items: list[dict[str, Any]], labels: list[dict[str, Any]] | None = None,
             **settings: Any) -> tuple[str, list[str], dict[str, str]]:
    pid = _ok(http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"rv-{uuid.uuid4().hex[:8]}"}}}))["data"]["id"]
    queue = _ok(http.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
        "project_id": pid, "name": "support answers", "description": "Read the customer's question and the "
        "bot's answer. Mark whether the answer is right, and whether it is polite.",
        "annotation_schema": {"label_schemas": labels or LABELS}}}}), 201)["data"]
    added = _ok(http.post(f"{V2}/annotation-queues/{queue['id']}/interactions", json={"data": {
        "type": "interactions", "attributes": {"interactions": items}}}), 201)
    if settings:
        _ok(http.patch(f"{K}/{queue['id']}/review-settings", json={"data": {"type": "review_settings",
                                                                          "attributes": settings}}))
    return (queue["id"], [i["id"] for i in added["data"]["attributes"]["interactions"]],
            {lab["name"]: lab["id"] for lab in queue["attributes"]["annotation_schema"]["label_schemas"]})


def qa(n: int) -> dict[str, Any]:
    return {"type": "display_block", "display_block": [
        {"type": "header", "content": f"Ticket #{1000 + n}", "level": "md"},
        {"type": "text", "label": "Customer", "content": f"How do I reset my password? (case {n})"},
        {"type": "markdown", "label": "Bot", "content": "Go to **Settings → Security** and choose *Reset*."}]}


@contextmanager
def reviewer_page(chromium: Any, server: Server, login: str) -> Iterator[Any]:
    b = uuid.uuid4().bytes
    context = chromium.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 860},
                                  extra_http_headers={"X-Forwarded-For": f"10.{b[0]}.{b[1]}.{b[2]}"})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto("/login")
    page.get_by_label("User name or email").fill(login)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(queues)?$"))
    try:
        yield page
    finally:
        context.close()
    assert problems == []


def progress(page: Any, text: str, timeout: float = 10_000) -> None:
    expect(page.locator("#review-progress")).to_have_text(re.compile(text), timeout=timeout)


def annotations(http: httpx.Client, qid: str, label_id: str) -> dict[str, list[Any]]:
    body = _ok(http.get(f"{V2}/annotation-queues/{qid}/annotated-interactions"))
    return {i["id"]: [a["label_values"].get(label_id, {}).get("value") for a in i["annotations"]]
            for i in body["data"]["attributes"]["annotated_interactions"]}


def shot(page: Any, server: Server, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{server.backend}-{name}.png"), full_page=True)


def test_keyboard_flow_burst_required_draft_undo_skip(browser: Any, server: Server,
                                                      http: httpx.Client) -> None:
    qid, ids, labels = queue_of(http, [qa(n) for n in range(13)])
    login = user(server, "annotator")
    with reviewer_page(browser, server, login) as page:
        page.goto(f"/queues/{qid}")
        progress(page, r"^item 1 / 13 · you: 0 done · queue: 0%$")
        expect(page.get_by_role("group", name="quality")).to_be_visible()
        expect(page.get_by_text("Is the answer correct and complete?")).to_be_visible()
        shot(page, server, "review-item")
        # Required labels block the submit and are named.
        page.keyboard.press("Control+Enter")
        expect(page.get_by_role("alert").filter(has_text="required label missing: quality")).to_be_visible()
        progress(page, r"^item 1 / 13")
        # A draft: a choice and half a reasoning, kept across a reload. Keys typed into the reasoning are text.
        page.keyboard.press("2")
        page.keyboard.press("r")
        page.keyboard.type("so-so; skip this? ")
        expect(page.get_by_label("quality reasoning")).to_have_value("so-so; skip this? ")
        progress(page, r"^item 1 / 13")
        page.keyboard.press("Escape")
        page.wait_for_timeout(900)  # the draft is saved 400 ms after the last change
        page.reload()
        progress(page, r"^item 1 / 13")
        expect(page.get_by_role("radio", name="ok")).to_be_checked()
        expect(page.get_by_label("quality reasoning")).to_have_value("so-so; skip this? ")
        page.keyboard.press("Control+Enter")
        progress(page, r"^item 2 / 13 · you: 1 done")
        # The burst: 10 items, a digit then Ctrl+Enter each, 20 keys with no waits in between.
        meant = [(n % 3) + 1 for n in range(10)]
        for digit in meant:
            page.keyboard.press(str(digit))
            page.keyboard.press("Control+Enter")
        progress(page, r"^item 12 / 13 · you: 11 done", timeout=30_000)
        expect(page.locator("#review-alert")).to_be_empty()
        got = annotations(http, qid, labels["quality"])
        options = ["good", "ok", "bad"]
        assert [got[i] for i in ids[1:11]] == [[options[d - 1]] for d in meant]
        assert got[ids[0]] == ["ok"] and got[ids[11]] == [] and got[ids[12]] == []
        # Undo takes back the last submit: item 11 returns with its value, and its annotation is gone.
        page.keyboard.press("u")
        progress(page, r"^item 11 / 13 · you: 10 done")
        expect(page.get_by_role("radio", name=options[meant[-1] - 1])).to_be_checked()
        assert annotations(http, qid, labels["quality"])[ids[10]] == []
        page.keyboard.press("1")
        page.keyboard.press("Control+Enter")
        progress(page, r"^item 12 / 13 · you: 11 done")
        # Skip: item 12 goes to the end, after item 13.
        page.keyboard.press("s")
        progress(page, r"^item 13 / 13")
        page.keyboard.press("3")
        page.keyboard.press("Control+Enter")
        progress(page, r"^item 12 / 13 · you: 12 done")
        # Go to item 1 by number, flag it; the help dialog lists the keys.
        page.keyboard.press("g")
        page.get_by_label("Go to item number").fill("1")
        page.keyboard.press("Enter")
        progress(page, r"^item 1 / 13")
        page.keyboard.press("x")
        expect(page.locator(".flag-badge")).to_have_text("flagged")
        page.keyboard.press("?")
        expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
        shot(page, server, "review-help")
        page.keyboard.press("Escape")
    assert annotations(http, qid, labels["quality"])[ids[10]] == ["good"]


def test_two_reviewers_per_item_blind_review_in_three_contexts(browser: Any, server: Server,
                                                              http: httpx.Client) -> None:
    hostile_item = {"type": "display_block", "display_block": [
        {"type": "text", "content": HOSTILE}, {"type": "markdown", "content": "<script>window.__pwned=1</script>"},
        {"type": "image", "url": "javascript:window.__pwned=1", "alt": "x"},
        {"type": "frontend", "code": "window.__pwned=1"}]}
    labels = [{"name": "verdict", "type": "categorical", "values": ["right", HOSTILE], "is_required": True}]
    qid, ids, label_ids = queue_of(http, [hostile_item, qa(1), qa(2)], labels, reviewers_per_item=2)
    a, b, c = user(server, "annotator"), user(server, "annotator"), user(server, "member")
    with reviewer_page(browser, server, a) as pa, reviewer_page(browser, server, b) as pb:
        pa.goto(f"/queues/{qid}")
        pb.goto(f"/queues/{qid}")
        progress(pa, r"^item 1 / 3")
        progress(pb, r"^item 1 / 3")
        expect(pa.get_by_text(HOSTILE, exact=True)).to_be_visible()
        expect(pa.get_by_role("radio", name=HOSTILE)).to_be_visible()
        assert pa.evaluate("window.__pwned") is None
        pa.keyboard.press("1")
        pa.keyboard.press("Control+Enter")
        progress(pa, r"^item 2 / 3")
        # b has not submitted: a's label is hidden from b, even on a fresh look at the item.
        pb.reload()
        progress(pb, r"^item 1 / 3")
        expect(pb.get_by_text("Blind review: 1 other reviewer")).to_be_visible()
        expect(pb.locator(".others table")).to_have_count(0)
        pb.keyboard.press("2")
        pb.keyboard.press("Control+Enter")
        progress(pb, r"^item 2 / 3")
        pb.keyboard.press("k")
        progress(pb, r"^item 1 / 3")
        expect(pb.locator(".others")).to_contain_text(a)
        expect(pb.locator(".others")).to_contain_text("right")
        # Item 1 is complete and a and b hold item 2: the third reviewer is handed item 3.
        with reviewer_page(browser, server, c) as pc:
            pc.goto(f"/queues/{qid}")
            progress(pc, r"^item 3 / 3 · you: 0 done · queue: 33%$")
            pc.keyboard.press("1")
            pc.keyboard.press("Control+Enter")
            expect(pc.get_by_role("heading", name="Nothing left for you in this queue")).to_be_visible()
            pc.goto(f"/queues/{qid}/manage?status=disagreement")
            rows = pc.get_by_role("region", name="Items").locator("tbody tr")
            expect(rows).to_have_count(1)
            expect(rows).to_contain_text("disagreement")
            shot(pc, server, "review-manage")
            assert pc.evaluate("window.__pwned") is None
    got = annotations(http, qid, label_ids["verdict"])
    assert sorted(got[ids[0]]) == sorted(["right", HOSTILE]) and got[ids[2]] == ["right"]


def csrf(web: httpx.Client) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', web.get("/queues").text)
    assert found
    return found.group(1)


def test_owner_page_and_who_may_use_it(server: Server, http: httpx.Client) -> None:
    qid, _, _ = queue_of(http, [qa(n) for n in range(3)])
    member, annotator = person(server, "member"), person(server, "annotator")
    try:
        page = member.get(f"/queues/{qid}/manage", params={"status": "todo", "type": "display_block"})
        assert page.status_code == 200 and page.text.count("<tr>") == 4, page.text
        assert 'aria-current="page">To do</a>' in page.text
        assert annotator.get(f"/queues/{qid}/manage").status_code == 403
        assert annotator.get(f"/queues/{qid}").status_code == 200
        refused = annotator.post(f"/queues/{qid}/settings",
                                 data={"reviewers_per_item": "2", "csrf_token": csrf(annotator)})
        assert "does not allow changing a queue" in refused.text
        assert refused.status_code == 403
        assert _ok(http.get(f"{K}/{qid}/review-settings"))["data"]["attributes"]["reviewers_per_item"] is None
        # A queue restricted to other reviewers does not exist for this annotator.
        _ok(http.patch(f"{V2}/annotation-queues/{qid}", json={"data": {"type": "queues", "attributes": {
            "reviewer_emails": ["someone@example.com"], "restrict_to_reviewers": True}}}))
        assert annotator.get(f"/queues/{qid}").status_code == 404
        assert annotator.post(f"/queues/{qid}/next", headers={"X-CSRF-Token": csrf(annotator)}).status_code == 404
    finally:
        member.close()
        annotator.close()


def test_each_interaction_type_renders_in_the_card(server: Server, http: httpx.Client) -> None:
    from tests.test_trace_view import HOSTILE_NAME, seed_trace

    sent = seed_trace(http)
    qid, _, _ = queue_of(http, [{"type": "trace", "content_id": sent.trace},
                                  {"type": "session", "content_id": sent.session}, qa(0),
                                  {"type": "trace", "content_id": "never-arrived"}])
    annotator = person(server, "annotator")
    try:
        token = csrf(annotator)
        cards = [annotator.post(f"/queues/{qid}/open", data={"position": str(n), "csrf_token": token})
                 for n in range(1, 5)]
        assert [c.status_code for c in cards] == [200] * 4, [c.text for c in cards]
        trace, session, blocks, missing = (c.text for c in cards)
        assert "workflow-root" in trace and "tool-call" in trace and f'href="/traces/{sent.trace}"' in trace
        assert str(markupsafe.escape(HOSTILE_NAME)) in trace and HOSTILE_NAME not in trace
        assert "What is the weather?" in session and 'class="transcript"' in session
        assert "<strong>Settings → Security</strong>" in blocks and "<em>Reset</em>" in blocks
        assert "No spans of trace <code>never-arrived</code> have arrived" in missing
        for card in (trace, session, blocks):
            assert '<legend>quality <span class="req">required</span></legend>' in card
    finally:
        annotator.close()
