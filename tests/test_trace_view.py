"""The trace view (/traces/{trace_id}): the span tree, each span's fields, and hostile content kept inert."""

from __future__ import annotations

import re
import time
import uuid

from typing import Any

import httpx

from tests.conftest import Server, kennel_cli
from tests.test_intake import INTAKE, event, make_span
from tests.test_web import browser  # noqa: F401  - the Chromium fixture, shared

HOSTILE_INPUT = "<script>window.__pwned=1</script>"
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'


def signed_in(server: Server, role: str = "member") -> httpx.Client:
    name = f"tv-{role}-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", role, "--password-stdin", "--database-url", server.database_url,
               input="trace view pw\n")
    # An address of its own, so sign-in failures elsewhere in the suite never slow this one down.
    web = httpx.Client(base_url=server.base_url, timeout=30,
                       headers={"X-Forwarded-For": f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    r = web.post("/login", data={"login": name, "password": "trace view pw", "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text
    return web


def seed_trace(http: httpx.Client) -> str:
    trace = uuid.uuid4().hex
    base = time.time_ns() - 10**9
    root = make_span("tv", trace_id=trace, span_id="1", name="workflow-root", kind="workflow", start_ns=base)
    child = make_span("tv", trace_id=trace, span_id="2", name=HOSTILE_NAME, kind="llm", start_ns=base + 10,
                      parent_id="1")
    child["meta"]["input"] = {"value": HOSTILE_INPUT}
    grandchild = make_span("tv", trace_id=trace, span_id="3", name="tool-call", kind="tool", start_ns=base + 20,
                           parent_id="2")
    grandchild["status"] = "error"
    grandchild["meta"]["metadata"] = {"error.message": "tool exploded"}
    long_output = make_span("tv", trace_id=trace, span_id="4", name="long", kind="task", start_ns=base + 30,
                            parent_id="1")
    long_output["meta"]["output"] = {"value": "x" * 5000}
    assert http.post(INTAKE, json=[event(root, child, grandchild, long_output)]).status_code == 202
    return trace


def test_trace_tree_fields_and_escaping(server: Server, http: httpx.Client) -> None:
    trace = seed_trace(http)
    page = signed_in(server).get(f"/traces/{trace}")
    assert page.status_code == 200
    html = page.text
    assert "4 spans, 1 with an error" in html
    # Nesting: the tool call sits inside the llm span, which sits inside the root.
    root_at, child_at, tool_at = html.index("workflow-root"), html.index("&lt;img src=x"), html.index("tool-call")
    assert root_at < child_at < tool_at
    assert html.count('<ul class="span-tree">') >= 2
    assert "tool exploded" in html and "span-error" in html
    # Hostile strings appear escaped, never as markup.
    assert HOSTILE_INPUT not in html and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert HOSTILE_NAME not in html
    # A long value is cut, with the whole of it one click away.
    assert "Show all (5000 characters)" in html
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_trace_view_refuses_unknown_traces_and_annotators(server: Server, http: httpx.Client) -> None:
    trace = seed_trace(http)
    assert signed_in(server).get(f"/traces/{uuid.uuid4().hex}").status_code == 404
    refused = signed_in(server, "annotator").get(f"/traces/{trace}")
    assert refused.status_code == 403 and "reading traces" in refused.text
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.get(f"/traces/{trace}").status_code == 303


def test_trace_view_in_chromium_runs_nothing_injected(server: Server, http: httpx.Client, browser: Any) -> None:
    trace = seed_trace(http)
    web = signed_in(server)
    context = browser.new_context()
    try:
        context.add_cookies([{"name": "kennel_session", "value": web.cookies.get("kennel_session"),
                              "url": server.base_url}])
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.base_url}/traces/{trace}")
        assert page.get_by_text("tool exploded", exact=True).is_visible()
        # Collapsing the llm span hides the tool call below it.
        page.get_by_text("tool-call").first.wait_for()
        page.locator("summary", has_text=HOSTILE_NAME).click()
        assert not page.get_by_text("tool-call").is_visible()
        page.locator("summary", has_text=HOSTILE_NAME).click()
        assert page.get_by_text("tool-call").is_visible()
        long_span = page.locator("details.span", has=page.locator("summary", has_text="long")).last
        long_span.locator("details.span-body > summary").click()
        page.get_by_text("Show all (5000 characters)").click()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.get_by_text(HOSTILE_INPUT).count() >= 1
        assert errors == []
        page.screenshot(path="/tmp/kennel-trace.png", full_page=True)
    finally:
        context.close()
