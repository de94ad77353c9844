"""The dataset workspace's pages on both databases: over HTTP (escaping, the editor's errors, the draft
lock, bad filters and versions) and in headless Chromium (browse, filter, page, view as of a version, diff,
edit and save, the refused concurrent save, restore, an import with its mapping and its progress bar),
every edit read back with both real clients."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import markupsafe
import orjson
import pytest

from tests.conftest import Server, run_ddtrace
from tests.test_dataset_lifecycle_helpers import (
    V1,
    make_dataset,
    make_project,
    ok_batch,
    records,
)
from tests.test_datasets import plain
from tests.test_trace_view import person
from tests.test_web import SHOTS, browser, expect  # noqa: F401  - the Chromium fixture, shared

HOSTILE = '<img src=x onerror="window.__pwned=1">'
HOSTILE_KEY = "<script>window.__pwned=1</script>"


def seed(http: httpx.Client, name: str | None = None) -> tuple[str, str, str]:
    """A project and a dataset of 60 records: v1 adds them, v2 changes q003, deletes q010 and adds a hostile one."""
    project = f"ws-{uuid.uuid4().hex[:6]}"
    pid = make_project(http, project)
    did = make_dataset(http, pid, name or f"golden-{uuid.uuid4().hex[:6]}")
    ok_batch(http, pid, did, inserts=[{
        "id": f"q{i:03}", "input": {"country": ["France", "Spain", "Italy"][i % 3], "question": f"Capital? #{i}"},
        "expected_output": {"answer": "Paris is the capital" if i % 3 == 0 else "Madrid"},
        "metadata": {"difficulty": ["easy", "hard"][i % 2]}, "tags": ["lang:en"]} for i in range(60)])
    ok_batch(http, pid, did, updates=[{"id": "q003", "expected_output": {"answer": "Paris is the capital of France"}}],
             inserts=[{"id": "evil", "input": {HOSTILE_KEY: HOSTILE}, "expected_output": HOSTILE,
                       "tags": [HOSTILE]}], deletes=["q010"])
    return project, pid, did


@pytest.fixture(scope="module")
def web(server: Server) -> Iterator[httpx.Client]:
    """A member, signed in (one per server: making a person runs the CLI)."""
    client = person(server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def seeded(server: Server) -> tuple[str, str, str]:
    """One seeded dataset for the tests that only read it."""
    with server.client() as http:
        return seed(http)


def test_pages_show_the_workspace_and_escape_record_content(server: Server, web: httpx.Client,
                                                            seeded: tuple[str, str, str]) -> None:
    _, pid, did = seeded
    pages = {
        "list": web.get(f"/projects/{pid}/datasets"),
        "records": web.get(f"/datasets/{did}"),
        "full": web.get(f"/datasets/{did}", params={"view": "full"}),
        "versions": web.get(f"/datasets/{did}/versions"),
        "diff": web.get(f"/datasets/{did}/diff", params={"from": 1, "to": 2}),
        "record": web.get(f"/datasets/{did}/record", params={"id": "evil"}),
    }
    for name, page in pages.items():
        assert page.status_code == 200, (name, page.text)
        assert HOSTILE not in page.text and HOSTILE_KEY not in page.text, name
    assert str(markupsafe.escape(HOSTILE)) in pages["records"].text
    assert re.search(r">\s*60\s*<", pages["list"].text), "the record count of the current version"
    versions = pages["versions"].text
    assert "+60" in versions and "+1" in versions and "~1" in versions and "−1" in versions
    diff = pages["diff"].text
    assert "Added <strong>1</strong>" in diff and "Changed <strong>1</strong>" in diff
    assert "<ins> of France</ins>" in diff, "a word diff inside the changed answer"
    # The page of version 1 shows q010 (deleted in 2), and the current one does not.
    assert ">q010</a>" in web.get(f"/datasets/{did}", params={"version": 1, "filter": "id:q010"}).text
    assert ">q010</a>" not in web.get(f"/datasets/{did}", params={"filter": "id:q010"}).text
    annotator = person(server, "annotator")
    assert annotator.get(f"/datasets/{did}").status_code == 403


def test_bad_filters_and_versions_answer_clearly(web: httpx.Client, seeded: tuple[str, str, str]) -> None:
    _, _, did = seeded
    page = web.get(f"/datasets/{did}", params={"filter": "@input.country:France @nope.x:1"})
    assert page.status_code == 400
    assert "filter does not parse at position 24" in html.unescape(page.text)
    assert web.get(f"/datasets/{did}/diff", params={"from": 0, "to": 7}).status_code == 404
    assert web.get(f"/datasets/{did}", params={"version": 9}).status_code == 400
    assert web.get(f"/datasets/{did}/record", params={"id": "q010"}).status_code == 404
    assert web.get(f"/datasets/{did}/record", params={"id": "q010", "version": 1}).status_code == 200


def _form(page: str, action_part: str) -> dict[str, str]:
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    base = re.search(r'name="base_revision" value="([^"]*)"', page)
    assert token and base and action_part in page
    return {"csrf_token": token.group(1), "base_revision": base.group(1)}


def test_the_editor_points_at_bad_json_and_honours_the_draft_lock(http: httpx.Client, web: httpx.Client) -> None:
    _, pid, did = seed(http)
    url = f"/datasets/{did}/record"
    fields = _form(web.get(url, params={"id": "q001"}).text, "Save as a new version")
    bad = web.post(url, params={"id": "q001"}, data={**fields, "input": '{"country": "Spain"}',
                                                     "expected_output": '{\n  "answer": "Madrid"\n  "x": 1\n}',
                                                     "metadata": "", "tags": "lang:en"})
    assert bad.status_code == 400
    assert "Line 3, column 3: Expecting &#39;,&#39; delimiter" in bad.text or \
        "Line 3, column 3: Expecting ',' delimiter" in html.unescape(bad.text)
    assert 'aria-invalid="true" aria-describedby="err-expected_output"' in bad.text
    not_object = web.post(url, params={"id": "q001"}, data={**fields, "input": '"x"', "metadata": "[1]"})
    assert not_object.status_code == 400 and "metadata must be a JSON object" in not_object.text
    assert records(http, pid, did)["q001"]["input"] == {"country": "Spain", "question": "Capital? #1"}

    # The test suite's key pair takes the draft lock: the page says who holds it, and refuses to save.
    assert http.patch(f"{V1}/{pid}/datasets/{did}/draft_state/lock").status_code == 200
    page = web.get(url, params={"id": "q001"}).text
    assert "Locked for editing by" in page and "test-suite" in page and "Save as a new version" not in page
    refused = web.post(url, params={"id": "q001"}, data={**fields, "input": '{"a": 1}'})
    assert refused.status_code == 409 and "locked for editing by" in html.unescape(refused.text)
    # The import page says so before a file is sent, rather than after its mapping.
    assert "Locked for editing by <strong>test-suite</strong>" in web.get(f"/datasets/{did}/import").text
    assert http.patch(f"{V1}/{pid}/datasets/{did}/draft_state/unlock").status_code == 200
    assert records(http, pid, did)["q001"]["input"] == {"country": "Spain", "question": "Capital? #1"}


def test_workspace_in_chromium(server: Server, http: httpx.Client, web: httpx.Client, browser: Any,
                               typed: Any) -> None:
    name = f"golden-answers-{uuid.uuid4().hex[:4]}"
    project, pid, did = seed(http, name)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.base_url)
    problems: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        context.add_cookies([{"name": "kennel_session", "value": web.cookies.get("kennel_session"),
                              "url": server.base_url}])
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("request", lambda r: None if r.url.startswith(server.base_url + "/") or r.url.startswith("data:")
                else problems.append(f"request to {r.url}"))

        # Browse: the project's datasets, then the dataset.
        page.goto(f"/projects/{pid}/datasets")
        page.get_by_role("link", name=re.compile("golden-answers")).click()
        expect(page.get_by_role("link", name="q059")).to_be_visible()
        page.screenshot(path=str(SHOTS / f"{server.backend}-dataset-records.png"))

        # Filter (kept in the URL), then page through the matches.
        page.get_by_label("Filter").fill("@input.country:France @metadata.difficulty:hard")
        page.get_by_role("button", name="Show").click()
        assert "filter=%40input.country%3AFrance" in page.url
        shown = page.locator("table.records tbody tr")
        expect(shown).to_have_count(10)  # i % 6 == 3: 3, 9, ..., 57
        page.get_by_label("Filter").fill("tag:lang:en")
        page.get_by_role("button", name="Show").click()
        expect(shown).to_have_count(50)
        page.get_by_role("link", name="Next page →").click()
        expect(shown).to_have_count(9)
        expect(page.get_by_role("link", name="q000")).to_be_visible()

        # View as of version 1: q010 is there again, the hostile record is not yet.
        page.goto(f"/datasets/{did}/versions")
        page.screenshot(path=str(SHOTS / f"{server.backend}-dataset-versions.png"))
        page.get_by_role("link", name="View as of version 1").click()
        page.get_by_label("Record id").fill("q010")
        page.get_by_role("button", name="Go to record").click()
        expect(page.get_by_text("at version 1")).to_be_visible()

        # Diff of versions 1 and 2, changed records only; the word diff shows what the answer gained.
        page.goto(f"/datasets/{did}/diff?from=1&to=2")
        page.get_by_role("link", name=re.compile("^Changed")).click()
        expect(page.locator("ins", has_text="of France")).to_be_visible()
        expect(page.locator(".change-card")).to_have_count(1)
        page.screenshot(path=str(SHOTS / f"{server.backend}-dataset-diff.png"), full_page=True)

        # Edit q003's expected output in two tabs: the first save wins, the second is refused, showing both.
        other = context.new_page()
        other.goto(f"/datasets/{did}/record?id=q003")
        page.goto(f"/datasets/{did}/record?id=q003")
        page.get_by_label("Expected output (JSON)").fill('{"answer": "Paris"}')
        page.get_by_role("button", name="Save as a new version").click()
        expect(page.get_by_text("Saved as version 3.")).to_be_visible()
        other.get_by_label("Expected output (JSON)").fill('{"answer": "Paris, France"}')
        other.get_by_role("button", name="Save as a new version").click()
        expect(other.get_by_role("heading", name="Someone else saved this record while you were editing it")
               ).to_be_visible()
        other.screenshot(path=str(SHOTS / f"{server.backend}-dataset-conflict.png"), full_page=True)
        page.screenshot(path=str(SHOTS / f"{server.backend}-dataset-record.png"), full_page=True)

        # Restore version 1 from the timeline.
        page.goto(f"/datasets/{did}/versions")
        page.get_by_role("button", name="Restore version 1").click()
        expect(page.get_by_text("Version 1 was restored as version 4.")).to_be_visible()
        assert page.evaluate("typeof window.__pwned") == "undefined"
    finally:
        context.close()
    assert problems == []

    # Both real clients read what the app wrote: the save (version 3) and the restore (version 4).
    current = {r.id: r for r in typed.list_llm_obs_dataset_records(pid, did, page_limit=1000).data}
    assert plain(current["q003"].expected_output) == {"answer": "Paris is the capital"} and "q010" in current
    assert records(http, pid, did, 3)["q003"]["expected_output"] == {"answer": "Paris"}
    pulled = run_ddtrace(server, f"""
v3 = LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r}, version=3)
v4 = LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r})
pick = lambda ds: {{r["record_id"]: r["expected_output"] for r in ds}}
print(json.dumps({{"v3": pick(v3)["q003"], "v4": pick(v4)["q003"], "n4": len(v4), "version": v4.version}}))
""")
    assert pulled == {"v3": {"answer": "Paris"}, "v4": {"answer": "Paris is the capital"}, "n4": 60, "version": 4}


CSV_FILE = ('question,answer,meta,notes\n'
            '"{""country"": ""France""}",Paris,"{""difficulty"": ""easy""}",ignored\n'
            'Capital of Spain?,Madrid,,\n'
            '"What is 2+2?",4,"{""difficulty"": ""hard""}",x\n')


def test_import_with_preview_and_mapping_in_chromium(server: Server, http: httpx.Client, web: httpx.Client,
                                                     browser: Any, typed: Any) -> None:
    _, pid, did = seed(http)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.base_url)
    try:
        context.add_cookies([{"name": "kennel_session", "value": web.cookies.get("kennel_session"),
                              "url": server.base_url}])
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        page.goto(f"/datasets/{did}")
        page.get_by_role("link", name="Import").click()
        page.get_by_label("File (.csv or .jsonl)").set_input_files(files=[{
            "name": "more.csv", "mimeType": "text/csv", "buffer": CSV_FILE.encode()}])
        page.get_by_role("button", name="Preview").click()
        # The preview guesses question -> input and answer -> expected output; meta is mapped by hand.
        expect(page.get_by_label("Column question is")).to_have_value("input")
        expect(page.get_by_label("Column answer is")).to_have_value("expected_output")
        expect(page.get_by_role("cell", name="Capital of Spain?")).to_be_visible()
        page.get_by_label("Column meta is").select_option("metadata")
        page.screenshot(path=str(SHOTS / f"{server.backend}-dataset-import.png"), full_page=True)
        # A mapping that leaves no input is refused, and nothing is stored.
        page.get_by_label("Column question is").select_option("ignore")
        page.get_by_role("button", name="Import as a new version").click()
        expect(page.get_by_role("alert")).to_contain_text("the mapping leaves no input")
        assert len(records(http, pid, did)) == 60
        # The file is still there, with the mapping as it was sent: correct it and import.
        expect(page.get_by_label("Column meta is")).to_have_value("metadata")
        page.get_by_label("Column question is").select_option("input")
        page.get_by_role("button", name="Import as a new version").click()
        expect(page.get_by_text("Imported: 3 records added, 0 replaced, as version 3.")).to_be_visible()
        assert problems == []
    finally:
        context.close()
    expected = sorted([(repr({"country": "France"}), "Paris", {"difficulty": "easy"}),
                       (repr("Capital of Spain?"), "Madrid", None), (repr("What is 2+2?"), 4, {"difficulty": "hard"})])
    seeded = {f"q{i:03}" for i in range(60)} | {"evil"}
    by_typed = sorted((repr(plain(r.input)), plain(r.expected_output), plain(r.metadata))
                      for r in typed.list_llm_obs_dataset_records(pid, did, page_limit=1000).data if r.id not in seeded)
    assert by_typed == expected
    by_http = sorted((repr(r["input"]), r["expected_output"], r["metadata"])
                     for rid, r in records(http, pid, did).items() if rid not in seeded)
    assert by_http == expected


def test_add_delete_export_and_clone_from_the_pages(http: httpx.Client, web: httpx.Client, typed: Any) -> None:
    _, pid, did = seed(http)
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get(f"/datasets/{did}/new").text)
    assert token
    csrf = token.group(1)
    added = web.post(f"/datasets/{did}/new", data={"csrf_token": csrf, "id": "new/one", "input": '{"q": "hi"}',
                                                   "expected_output": '"hello"', "metadata": "", "tags": "a\nb"})
    assert added.status_code == 303 and added.headers["location"].endswith("id=new%2Fone&saved=3")
    again = web.post(f"/datasets/{did}/new", data={"csrf_token": csrf, "id": "new/one", "input": "1"})
    assert again.status_code == 409 and "has a record &#39;new/one&#39; already" in again.text
    got = {r.id: r for r in typed.list_llm_obs_dataset_records(pid, did, page_limit=1000).data}
    assert plain(got["new/one"].input) == {"q": "hi"} and got["new/one"].expected_output == "hello"
    assert web.get(f"/datasets/{did}/record", params={"id": "new/one"}).status_code == 200

    deleted = web.post(f"/datasets/{did}/record/delete", params={"id": "q001"}, data={"csrf_token": csrf})
    assert deleted.status_code == 303
    # The page the delete leads to says what it did, and where the record can still be seen.
    after = web.get(deleted.headers["location"]).text
    assert "Record <code>q001</code> was deleted, as version 4." in after
    assert f'href="/datasets/{did}/record?id=q001&amp;version=3"' in after
    assert "q001" not in records(http, pid, did) and "q001" in records(http, pid, did, 3)

    export = web.get(f"/datasets/{did}/export", params={"version": 1, "format": "jsonl"})
    assert export.status_code == 200 and len(export.text.splitlines()) == 60
    diff_lines = web.get(f"/datasets/{did}/diff.jsonl", params={"from": 2, "to": 4}).text.splitlines()
    assert sorted(orjson.loads(line)["record_id"] for line in diff_lines) == ["new/one", "q001"]

    cloned = web.post(f"/datasets/{did}/clone", data={"csrf_token": csrf, "name": f"copy-{uuid.uuid4().hex[:6]}"})
    assert cloned.status_code == 303
    copy_id = cloned.headers["location"].split("?")[0].rsplit("/", 1)[1]
    assert "Made as a copy of golden-" in web.get(cloned.headers["location"]).text
    assert set(records(http, pid, copy_id)) == set(records(http, pid, did))


# Every change of an import page's progress text, with the bar's value and maximum at that moment: recorded
# by the page itself on each document (the write ends by leaving the page), so the test polls nothing.
RECORD_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  for (const status of document.querySelectorAll("[id$='-progress-status']")) {
    const bar = document.getElementById(status.id.replace(/-status$/, ""));
    new MutationObserver(() => window.progressSeen(status.textContent, bar.value, bar.max))
      .observe(status, {childList: true, characterData: true, subtree: true});
  }
});
"""


def test_the_import_progress_bar_follows_the_write_in_chromium(server: Server, http: httpx.Client,
                                                               web: httpx.Client, browser: Any) -> None:
    """The bar shows part of the file written (0 < done < total) before the versions page says it is done.
    Nothing here is paced: the file is 24 write chunks (transfer.UPLOAD_CHUNK rows each), so its write
    spans several of the page's status polls (every 0.5 s); a bar that is never updated fails the test."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    n = 120000
    body = "key,question,answer\n" + "".join(f'k{i},"{{""q"": {i}}}",a{i}\n' for i in range(n))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.base_url)
    seen: list[tuple[str, float, float]] = []
    try:
        context.add_cookies([{"name": "kennel_session", "value": web.cookies.get("kennel_session"),
                              "url": server.base_url}])
        context.expose_binding("progressSeen", lambda _source, text, value, top: seen.append((text, value, top)))
        context.add_init_script(RECORD_PROGRESS)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.goto(f"/datasets/{did}/import")
        page.get_by_label("File (.csv or .jsonl)").set_input_files(files=[{
            "name": "big.csv", "mimeType": "text/csv", "buffer": body.encode()}])
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_label("Column key is")).to_have_value("ignore")
        page.get_by_label("Column key is").select_option("id")
        page.get_by_role("button", name="Import as a new version").click()
        expect(page.get_by_text(f"Imported: {n:,} records added")).to_be_visible(timeout=120_000)
        assert problems == []
    finally:
        context.close()
    writing = [(text, value, top) for text, value, top in seen if text.startswith("Writing:")]
    partial = [(value, top) for _, value, top in writing if 0 < value < top]
    assert partial and all(top == n for _, top in partial), seen
    values = [value for _, value, _ in writing]
    assert values == sorted(values), "the bar never goes back"
    # Read back through the API: the count of the new version, and one record as the file had it.
    listed = http.get("/api/kennel/v1/datasets", params={"project_id": pid}).json()["data"]
    assert [(d["attributes"]["record_count"], d["attributes"]["current_version"]) for d in listed] == [(n, 1)]
    k42 = http.get(f"/api/kennel/v1/datasets/{did}/record", params={"id": "k42"}).json()["data"]["attributes"]
    assert (k42["input"], k42["expected_output"]) == ({"q": 42}, "a42")
