"""The trace view (/traces/{id}), a span's own page and the session transcript (/sessions/{id}), on both
databases, with spans sent through the real intake route: the tree's shape, each span's fields, who may
look, and hostile content kept inert (escaped in the HTML, and running nothing in Chromium)."""

from __future__ import annotations

import html
import re
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

from tests.conftest import Server, kennel_cli
from tests.test_intake import EVAL, INTAKE, event, make_span
from tests.test_web import SHOTS, browser, expect  # noqa: F401  - the Chromium fixture, shared

V2 = "/api/v2/llm-obs/v1"
PASSWORD = "trace view pw"
HOSTILE_INPUT = "<script>window.__pwned=1</script>"
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_REASONING = '"><svg onload="window.__pwned=1">'


# Helpers ------------------------------------------------------------------------------------------

def person(server: Server, role: str = "member", email: str | None = None) -> httpx.Client:
    """A new person of this role, signed in; the client keeps the session cookie."""
    name = f"tv-{role}-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", role, "--password-stdin", "--database-url", server.database_url,
               *(["--email", email] if email else []), input=PASSWORD + "\n")
    b = uuid.uuid4().bytes
    # An address of its own, so sign-in failures elsewhere in the suite never slow this one down.
    web = httpx.Client(base_url=server.base_url, timeout=30, headers={"X-Forwarded-For": f"10.{b[0]}.{b[1]}.{b[2]}"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    r = web.post("/login", data={"login": name, "password": PASSWORD, "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text
    return web


def send(http: httpx.Client, *spans: dict[str, Any]) -> None:
    r = http.post(INTAKE, json=[event(*spans)])
    assert r.status_code == 202 and r.json()["meta"]["rejected"] == 0, r.text


def metric(span: dict[str, Any], label: str, kind: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"join_on": {"span": {"span_id": span["span_id"], "trace_id": span["trace_id"]}}, "label": label,
            "metric_type": kind, f"{kind}_value": value, "ml_app": "tv", "timestamp_ms": int(time.time() * 1000),
            "tags": [], **extra}


@dataclass
class Sent:
    trace: str
    session: str
    spans: dict[str, dict[str, Any]] = field(default_factory=dict)


def seed_trace(http: httpx.Client) -> Sent:
    """root ─┬─ llm (hostile name and input, two evaluations) ── tool (an error, ddtrace 4's meta.error)
             └─ long (a 5,000-character output)
       and an orphan whose parent never arrived."""
    trace, sid = uuid.uuid4().hex, f"sess-{uuid.uuid4().hex[:8]}"
    base = time.time_ns() - 10**9
    root = make_span("tv", trace_id=trace, span_id="1", name="workflow-root", kind="workflow", start_ns=base)
    root["meta"]["input"] = {"value": "What is the weather?"}
    llm = make_span("tv", trace_id=trace, span_id="2", name=HOSTILE_NAME, kind="llm", start_ns=base + 10_000,
                    parent_id="1")
    llm["meta"]["input"] = {"messages": [{"role": "system", "content": "Be brief"},
                                         {"role": "user", "content": HOSTILE_INPUT}]}
    llm["duration"] = 250_000_000
    tool = make_span("tv", trace_id=trace, span_id="3", name="tool-call", kind="tool", start_ns=base + 20_000,
                     parent_id="2")
    tool["status"] = "error"
    tool["meta"]["error"] = {"type": "TimeoutError", "message": "tool exploded <b>here</b>",
                             "stack": "Traceback (most recent call last):\n  File \"tool.py\", line 1"}
    long = make_span("tv", trace_id=trace, span_id="4", name="long-output", kind="task", start_ns=base + 30_000,
                     parent_id="1")
    long["meta"]["output"] = {"value": "x" * 5000}
    orphan = make_span("tv", trace_id=trace, span_id="5", name="orphan-span", kind="task", start_ns=base + 40_000,
                       parent_id="999")
    for s in (root, llm, tool, long, orphan):
        s["session_id"] = sid
    send(http, root, llm, tool, long, orphan)
    r = http.post(EVAL, json={"data": {"type": "evaluation_metric", "attributes": {"metrics": [
        metric(llm, "faithfulness", "score", 0.875), metric(llm, "checks", "json", {"cited": "<b>no</b>"}),
        metric(llm, "tone", "categorical", "polite", assessment="pass", reasoning=HOSTILE_REASONING)]}}})
    assert r.status_code == 202 and r.json()["meta"]["rejected"] == 0, r.text
    return Sent(trace, sid, {"root": root, "llm": llm, "tool": tool, "long": long, "orphan": orphan})


@dataclass
class SpanBox:
    name: str
    open: bool
    classes: str
    parent: SpanBox | None = None
    children: list[SpanBox] = field(default_factory=list)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class TreeParser(HTMLParser):
    """The span boxes (<details class="span">) of a page, with how they nest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, SpanBox | None]] = []
        self.boxes: list[SpanBox] = []
        self.in_name: SpanBox | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        box = None
        if tag == "details" and "span" in (a.get("class") or "").split():
            parent = next((b for _, b in reversed(self.stack) if b is not None), None)
            box = SpanBox("", "open" in a, a.get("class") or "", parent)
            if parent:
                parent.children.append(box)
            self.boxes.append(box)
        if tag == "span" and a.get("class") == "span-name":
            self.in_name = next(b for _, b in reversed(self.stack) if b is not None)
        if tag not in VOID:
            self.stack.append((tag, box))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <rect/> and the like: nothing nests in them

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag == "span":
            self.in_name = None
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.in_name is not None:
            self.in_name.name += data


def tree_of(page: str) -> dict[str, SpanBox]:
    parser = TreeParser()
    parser.feed(page)
    return {b.name: b for b in parser.boxes}


# The tree and each span's fields ------------------------------------------------------------------

def test_tree_fields_and_escaping(server: Server, http: httpx.Client) -> None:
    sent = seed_trace(http)
    page = person(server).get(f"/traces/{sent.trace}")
    assert page.status_code == 200, page.text
    text = page.text
    boxes = tree_of(text)
    assert set(boxes) == {"workflow-root", HOSTILE_NAME, "tool-call", "long-output", "orphan-span"}
    parent = {name: (b.parent.name if b.parent else None) for name, b in boxes.items()}
    assert parent == {"workflow-root": None, HOSTILE_NAME: "workflow-root", "tool-call": HOSTILE_NAME,
                      "long-output": "workflow-root", "orphan-span": None}
    assert [c.name for c in boxes["workflow-root"].children] == [HOSTILE_NAME, "long-output"], "oldest first"
    # A small trace opens every span with children; a leaf opens onto its fields, so it starts closed.
    assert [n for n, b in boxes.items() if b.open] == ["workflow-root", HOSTILE_NAME]
    assert "span-error" in boxes["tool-call"].classes and "span-error" not in boxes["workflow-root"].classes
    assert '<dt>Spans</dt><dd>5, <span class="status-error">1 with an error</span>' in text
    # Each node's summary: kind, status, duration; the error's type and message.
    assert '<span class="kind">tool</span> <span class="status status-error">error</span>' in text
    assert "TimeoutError: tool exploded &lt;b&gt;here&lt;/b&gt;" in text
    assert "Traceback (most recent call last):" in text
    assert "250.0 ms" in text and "1.2 µs" in text
    assert "(not in this trace)" in text, "the orphan says its parent is missing"
    # Fields: messages with their roles, metadata, metrics, tags and evaluations.
    assert '<span class="role">system</span><pre>Be brief</pre>' in text
    assert "&#34;temperature&#34;: 0.1" in text or "&quot;temperature&quot;: 0.1" in text
    assert '<p class="line">input_tokens 3</p>' in text
    assert '<p class="line tags-line">ml_app:tv  env:test</p>' in text
    assert "span 3 (tool) · parent 2 · started +20.0 µs into the trace, took 1.2 µs · model p / m · ML app tv" in text
    assert '<span class="eval">faithfulness 0.875</span>' in text and "3 evaluations" in text
    assert "<td>faithfulness</td><td>0.875</td><td></td>" in text and "<td>polite</td><td>pass</td>" in text
    assert "&#34;cited&#34;: &#34;&lt;b&gt;no&lt;/b&gt;&#34;" in text, "a JSON evaluation, pretty-printed and escaped"
    # Nothing hostile arrives as markup: names, inputs, error messages, evaluation reasoning.
    for hostile in (HOSTILE_INPUT, HOSTILE_NAME, HOSTILE_REASONING, "<b>here</b>"):
        assert hostile not in text
    assert html.escape(HOSTILE_INPUT) in text or "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=" in text and "&lt;svg onload=" in text
    # A long value shows its head, the rest one click away, sent once.
    assert "Show all 5,000 characters" in text
    assert text.count("x" * 2000) == 2 and "x" * 3001 not in text
    # The session it belongs to is a link away; the page is under the strict CSP.
    assert f'href="/sessions/{sent.session}"' in text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in text.replace('<script src="/static/', "")


def test_very_long_values_are_whole_on_the_span_page(server: Server, http: httpx.Client) -> None:
    trace = uuid.uuid4().hex
    span = make_span("tv", trace_id=trace, span_id="a/b 1", name="huge")
    span["meta"]["output"] = {"value": "<" + "y" * 79_998 + ">"}
    send(http, span)
    web = person(server)
    text = web.get(f"/traces/{trace}").text
    assert "y" * 10_000 not in text, "the trace page does not carry an 80,000-character value"
    link = re.search(r'<a href="(/traces/[^"]+/spans/[^"]+)">Show all 80,000 characters</a>', text)
    assert link and link.group(1) == f"/traces/{trace}/spans/a%2Fb%201"
    whole = web.get(html.unescape(link.group(1)))
    assert whole.status_code == 200
    assert "&lt;" + "y" * 79_998 + "&gt;" in whole.text and "Show all" not in whole.text
    assert web.get(f"/traces/{trace}/spans/nope").status_code == 404


def test_a_trace_too_large_for_one_page_links_the_rest(server: Server, http: httpx.Client) -> None:
    """Fields are inline while their values add up to 3,000,000 characters; later spans link to their page."""
    trace = uuid.uuid4().hex
    base = time.time_ns() - 10**9
    spans = []
    for i in range(70):
        span = make_span("tv", trace_id=trace, span_id=f"s{i:02d}", name=f"big-{i:02d}", start_ns=base + i)
        span["meta"]["output"] = {"value": f"{i:02d}" + "z" * 44_998}
        spans.append(span)
    for at in range(0, 70, 10):
        send(http, *spans[at:at + 10])
    web = person(server)
    page = web.get(f"/traces/{trace}")
    assert page.status_code == 200
    assert len(tree_of(page.text)) == 70
    assert len(page.text) < 3_300_000 and "the fields of its later spans load when you open them" in page.text
    inline = [f"{i:02d}" + "z" * 1998 in page.text for i in range(70)]
    first_out = inline.index(False)
    assert 60 <= first_out < 70 and not any(inline[first_out:]), "the earliest spans' fields, up to the budget"
    for i in range(first_out, 70):
        assert f'<a href="/traces/{trace}/spans/s{i:02d}">This span’s fields</a>' in page.text
        assert f'hx-get="/traces/{trace}/spans/s{i:02d}?part=fields"' in page.text
    assert "69" + "z" * 44_998 in web.get(f"/traces/{trace}/spans/s69").text


def seed_large_trace(http: httpx.Client, spans: int = 250) -> str:
    """A root and `spans - 1` children: one with hostile input and two evaluations, one with an error."""
    trace = uuid.uuid4().hex
    base = time.time_ns() - 10**9
    batch = [make_span("tv", trace_id=trace, span_id="root", name="large-root", kind="agent", start_ns=base)]
    for i in range(1, spans):
        span = make_span("tv", trace_id=trace, span_id=f"c{i}", name=f"child-{i}", kind="tool", start_ns=base + i,
                         parent_id="root")
        span["meta"]["input"] = {"value": f"input of child {i} " + "q" * 200}
        batch.append(span)
    batch[7]["name"] = HOSTILE_NAME
    batch[7]["meta"]["input"] = {"value": HOSTILE_INPUT}
    batch[9]["status"] = "error"
    batch[9]["meta"]["error"] = {"type": "ValueError", "message": "bad <i>value</i>", "stack": "Traceback ..."}
    send(http, *batch)
    r = http.post(EVAL, json={"data": {"type": "evaluation_metric", "attributes": {"metrics": [
        metric(batch[7], "tone", "categorical", "rude", reasoning=HOSTILE_REASONING)]}}})
    assert r.status_code == 202 and r.json()["meta"]["rejected"] == 0, r.text
    return trace


def test_a_large_trace_fetches_each_span_when_opened(server: Server, http: httpx.Client) -> None:
    """Past 200 spans the page is a tree of summaries; a span's fields come from ?part=fields when opened."""
    trace = seed_large_trace(http)
    web = person(server)
    page = web.get(f"/traces/{trace}")
    assert page.status_code == 200
    text = page.text
    boxes = tree_of(text)
    assert len(boxes) == 250 and len(boxes["large-root"].children) == 249
    assert "input of child" not in text, "no span's input is read for the page"
    assert "each span’s input, output and other fields load when you open it" in text
    assert "ValueError: bad &lt;i&gt;value&lt;/i&gt;" in text and '<span class="eval">tone rude</span>' in text
    assert HOSTILE_NAME not in text and HOSTILE_INPUT not in text
    assert f'hx-get="/traces/{trace}/spans/c7?part=fields" hx-trigger="toggle once"' in text
    assert f'<a href="/traces/{trace}/spans/c7">This span’s fields</a>' in text, "without script, a link"
    part = web.get(f"/traces/{trace}/spans/c7", params={"part": "fields"})
    assert part.status_code == 200 and "<html" not in part.text and "<body" not in part.text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in part.text and HOSTILE_INPUT not in part.text
    assert HOSTILE_REASONING not in part.text and "&lt;svg onload=" in part.text
    assert "script-src 'self'" in part.headers["content-security-policy"]
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.get(f"/traces/{trace}/spans/c7", params={"part": "fields"}).status_code == 303


def test_odd_shapes_and_the_open_modes(server: Server, http: httpx.Client) -> None:
    """150 spans: a 60-deep chain (listed flat below depth 40), a parent cycle, and an error deep down."""
    trace = uuid.uuid4().hex
    base = time.time_ns() - 10**9
    spans = [make_span("tv", trace_id=trace, span_id="c0", name="chain-0", start_ns=base)]
    for i in range(1, 60):
        spans.append(make_span("tv", trace_id=trace, span_id=f"c{i}", name=f"chain-{i}", start_ns=base + i,
                               parent_id=f"c{i - 1}"))
    spans[30]["status"] = "error"
    for i in range(88):
        spans.append(make_span("tv", trace_id=trace, span_id=f"w{i}", name=f"wide-{i}", start_ns=base + 100 + i,
                               parent_id="c0"))
    spans.append(make_span("tv", trace_id=trace, span_id="x", name="cycle-x", start_ns=base + 500, parent_id="y"))
    spans.append(make_span("tv", trace_id=trace, span_id="y", name="cycle-y", start_ns=base + 501, parent_id="x"))
    send(http, *spans)
    web = person(server)
    page = web.get(f"/traces/{trace}")
    assert page.status_code == 200
    boxes = tree_of(page.text)
    assert len(boxes) == 150
    depth = {}
    for name, b in boxes.items():
        d, p = 0, b.parent
        while p:
            d, p = d + 1, p.parent
        depth[name] = d
    assert depth["chain-40"] == 40 and depth["chain-41"] == 41 and depth["chain-59"] == 41
    assert boxes["chain-41"].parent.name == "chain-40" and boxes["chain-59"].parent.name == "chain-40"
    assert "19 spans nested deeper than this" in page.text
    assert boxes["cycle-x"].parent is None and boxes["cycle-y"].parent.name == "cycle-x"
    assert "(below this span: a parent loop)" in page.text
    # A large trace opens two levels and the way to its error.
    assert boxes["chain-0"].open and boxes["chain-1"].open and not boxes["wide-5"].open, "leaves start closed"
    assert boxes["chain-29"].open, "the error's parent is open, so the error shows"
    assert not boxes["chain-30"].open and not boxes["chain-31"].open and not boxes["chain-45"].open
    everything = tree_of(web.get(f"/traces/{trace}?open=all").text)
    assert all(b.open == bool(b.children) for b in everything.values())
    nothing = tree_of(web.get(f"/traces/{trace}?open=none").text)
    assert not any(b.open for b in nothing.values())


# Who may look -------------------------------------------------------------------------------------

def queue(http: httpx.Client, **attributes: Any) -> str:
    r = http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"tv-{uuid.uuid4().hex[:8]}"}}})
    assert r.status_code in (200, 201), r.text
    r = http.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
        "project_id": r.json()["data"]["id"], "name": f"q-{uuid.uuid4().hex[:6]}", **attributes}}})
    assert r.status_code in (200, 201), r.text
    return r.json()["data"]["id"]


def add_interaction(http: httpx.Client, queue_id: str, kind: str, content_id: str) -> None:
    r = http.post(f"{V2}/annotation-queues/{queue_id}/interactions", json={"data": {
        "type": "interactions", "attributes": {"interactions": [{"type": kind, "content_id": content_id}]}}})
    assert r.status_code in (200, 201), r.text


def test_who_may_see_a_trace(server: Server, http: httpx.Client) -> None:
    sent, other = seed_trace(http), seed_trace(http)
    member = person(server)
    assert member.get(f"/traces/{sent.trace}").status_code == 200
    assert member.get(f"/sessions/{sent.session}").status_code == 200
    missing = member.get(f"/traces/{uuid.uuid4().hex}")
    assert missing.status_code == 404 and "Trace not found" in missing.text and "Sign out" in missing.text
    with httpx.Client(base_url=server.base_url) as anonymous:
        r = anonymous.get(f"/traces/{sent.trace}")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Ftraces%2F")

    annotator = person(server, "annotator", email=f"{uuid.uuid4().hex[:6]}@example.com")
    refused = annotator.get(f"/traces/{sent.trace}")
    assert refused.status_code == 404 and "not in an annotation queue you review" in refused.text
    assert "workflow-root" not in refused.text
    assert annotator.get(f"/sessions/{sent.session}").status_code == 404
    # A queue only its listed reviewers see does not open the trace to anyone else.
    closed = queue(http, restrict_to_reviewers=True, reviewer_emails=["someone-else@example.com"])
    add_interaction(http, closed, "trace", sent.trace)
    assert annotator.get(f"/traces/{sent.trace}").status_code == 404
    # In a queue the annotator sees: the trace, its spans' own pages, and the way back to them.
    add_interaction(http, queue(http), "trace", sent.trace)
    assert annotator.get(f"/traces/{sent.trace}").status_code == 200
    assert annotator.get(f"/traces/{sent.trace}/spans/1").status_code == 200
    assert f"/sessions/{sent.session}" not in annotator.get(f"/traces/{sent.trace}").text, \
        "the session is not theirs to open, so it is not linked"
    assert annotator.get(f"/sessions/{sent.session}").status_code == 404
    assert annotator.get(f"/traces/{other.trace}").status_code == 404
    assert annotator.get(f"/traces/{other.trace}/spans/1").status_code == 404
    # A session in the queue opens the session and every trace in it.
    add_interaction(http, queue(http), "session", other.session)
    assert annotator.get(f"/sessions/{other.session}").status_code == 200
    assert annotator.get(f"/traces/{other.trace}").status_code == 200
    assert f'href="/sessions/{other.session}"' in annotator.get(f"/traces/{other.trace}").text


# Sessions -----------------------------------------------------------------------------------------

def test_session_transcript(server: Server, http: httpx.Client) -> None:
    sid = f"chat/{uuid.uuid4().hex[:8]}"  # a slash in the id, as some applications use
    base = time.time_ns() - 10**10
    traces = []
    for i in range(52):
        trace = uuid.uuid4().hex
        traces.append(trace)
        root = make_span("tv", trace_id=trace, span_id="r", name=f"turn-{i}", kind="agent", start_ns=base + i * 1000)
        root["session_id"] = sid
        root["meta"]["input"] = {"messages": [{"role": "user", "content": f"question {i}"}] if i else
                                 [{"role": "system", "content": "earlier context"},
                                  {"role": "user", "content": HOSTILE_INPUT}]}
        root["meta"]["output"] = {"messages": [{"role": "assistant", "content": f"answer {i}"}]}
        child = make_span("tv", trace_id=trace, span_id="c", name="llm", start_ns=base + i * 1000 + 1, parent_id="r")
        child["session_id"] = sid
        if i == 1:
            child["status"] = "error"
        send(http, root, child)
    web = person(server)
    page = web.get(f"/sessions/{sid.replace('/', '%2F')}")
    assert page.status_code == 200, page.text
    text = page.text
    names = re.findall(r'<a href="/traces/([0-9a-f]+)">(turn-\d+)</a>', text)
    assert [n for _, n in names] == [f"turn-{i}" for i in range(50)], "oldest first, 50 a page"
    assert [t for t, _ in names] == traces[:50]
    assert "question 3" in text and "answer 3" in text and "2 spans" in text and "1 with an error" in text
    assert "1 earlier message" in text, "a turn shows its last input message; the history is folded"
    assert HOSTILE_INPUT not in text and "&lt;script&gt;" in text
    later = re.search(r'<a href="([^"]+)" rel="next">', text)
    assert later
    rest = web.get(html.unescape(later.group(1))).text
    assert re.findall(r">(turn-\d+)</a>", rest) == ["turn-50", "turn-51"]
    trace_page = web.get(f"/traces/{traces[0]}").text
    assert f'href="/sessions/{sid.replace("/", "%2F")}"' in trace_page
    assert web.get(f"/sessions/{uuid.uuid4().hex}").status_code == 404


# In a real browser --------------------------------------------------------------------------------

def test_trace_view_in_chromium_runs_nothing_injected(server: Server, http: httpx.Client, browser: Any) -> None:
    sent, large = seed_trace(http), seed_large_trace(http)
    web = person(server)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    try:
        context.add_cookies([{"name": "kennel_session", "value": web.cookies.get("kennel_session"),
                              "url": server.base_url}])
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: None if r.url.startswith(server.base_url + "/") or r.url.startswith("data:")
                else problems.append(f"request to {r.url}"))
        page.goto(f"{server.base_url}/traces/{sent.trace}")
        llm = page.locator("details.span", has=page.locator(":scope > summary", has_text=HOSTILE_NAME))
        tool = page.locator("details.span", has=page.locator(":scope > summary", has_text="tool-call"))
        assert tool.locator(":scope > summary").is_visible()
        # Closing the llm span hides the tool call below it; opening it shows it again.
        llm.locator(":scope > summary").click()
        assert not tool.locator(":scope > summary").is_visible()
        llm.locator(":scope > summary").click()
        assert tool.locator(":scope > summary").is_visible()
        # The llm span's fields: the hostile input shows as text, and runs nothing.
        llm.locator(":scope > details.span-body > summary").click()
        assert llm.get_by_text(HOSTILE_INPUT, exact=True).is_visible()
        assert llm.get_by_text(HOSTILE_REASONING, exact=True).is_visible()
        # A leaf opens onto its fields.
        assert not tool.get_by_text("Traceback (most recent call last):", exact=False).is_visible()
        tool.locator(":scope > summary").click()
        assert tool.get_by_text("Traceback (most recent call last):", exact=False).is_visible()
        long = page.locator("details.span", has=page.locator(":scope > summary", has_text="long-output"))
        long.locator(":scope > summary").click()
        long.get_by_text("Show all 5,000 characters").click()
        assert long.locator("pre.rest").is_visible()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('img, svg[onload], script:not([src])').length") == 0
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{server.backend}-trace.png"), full_page=True)
        # A large trace fetches a span's fields when it is opened (htmx), and they run nothing either.
        page.goto(f"{server.base_url}/traces/{large}")
        hostile = page.locator("details.span", has=page.locator(":scope > summary", has_text=HOSTILE_NAME))
        hostile.locator(":scope > summary").click()
        expect(hostile.get_by_text(HOSTILE_INPUT, exact=True)).to_be_visible()
        expect(hostile.get_by_text(HOSTILE_REASONING, exact=True)).to_be_visible()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        page.screenshot(path=str(SHOTS / f"{server.backend}-trace-large.png"))
        page.goto(f"{server.base_url}/sessions/{sent.session}")
        assert page.get_by_role("link", name="workflow-root").is_visible()
        page.screenshot(path=str(SHOTS / f"{server.backend}-session.png"), full_page=True)
        page.get_by_role("link", name="workflow-root").click()
        page.wait_for_url(f"**/traces/{sent.trace}")
        assert page.evaluate("typeof window.__pwned") == "undefined"
    finally:
        context.close()
    assert problems == []
