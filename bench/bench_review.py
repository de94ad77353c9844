#!/usr/bin/env python
"""Reviewing a queue: the server's time to hand out the next item and to take a submit and hand out the
next, and in Chromium the time from Ctrl+Enter to the next item ready for keys. On each backend.

Starts the real server on a fresh database; a queue of --items trace interactions (each trace 3 spans,
sent through the intake) with 5 labels and 2 reviewers per item (blind review); --done items already
annotated by two other reviewers through the Datadog route, so that the next item lies past them. Then
3 reviewers (key pairs) take turns, --repeat times each:

  next            POST /api/kennel/v1/annotation-queues/{id}/next           (target: p95 <= 30 ms)
  submit and next PUT  .../items/{id}/annotation with next=true              (target: p95 <= 50 ms)
  page: next, page: submit and next   the same through the pages' routes (the HTML card)

Times are round trips on loopback over a kept-alive connection (an upper bound of the server's time) and
the server process's CPU per request from /proc (on PostgreSQL the database's share is not in it).
Chromium: a signed-in reviewer presses a digit then Ctrl+Enter --browser-repeat times; the time from the
key to the new card in the page (measured in the page) (target: p95 <= 150 ms).

  .venv/bin/python bench/bench_review.py --backend both
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.conftest import kennel_cli, start_server, stop_server

from bench_datasets import PG_ADMIN_DEFAULT, pg_admin
from bench_trace_view import cpu_ms

V2 = "/api/v2/llm-obs/v1"
K = "/api/kennel/v1/annotation-queues"
INTAKE = "/api/v2/llmobs"
TARGETS = {"next": 30, "submit and next": 50, "browser": 150}
LABELS = [
    {"name": "quality", "type": "categorical", "values": ["good", "ok", "bad"], "is_required": True},
    {"name": "correct", "type": "boolean", "has_assessment": True},
    {"name": "stars", "type": "score", "min": 1, "max": 5, "is_integer": True},
    {"name": "topic", "type": "categorical", "values": ["billing", "account", "other"]},
    {"name": "note", "type": "text", "has_reasoning": True},
]


def spans_of(trace: str, base: int) -> list[dict[str, Any]]:
    out = []
    for i, (name, kind, parent) in enumerate((("answer", "workflow", "undefined"), ("retrieve", "retrieval", "r"),
                                              ("llm", "llm", "r"))):
        sid = "r" if i == 0 else f"s{i}"
        out.append({"trace_id": trace, "span_id": sid, "parent_id": parent, "name": name, "start_ns": base + i * 1000,
                    "duration": 2_000_000, "status": "ok", "tags": ["ml_app:bench", "env:bench"],
                    "meta": {"span": {"kind": kind}, "input": {"value": f"How do I reset my password? ({trace[:6]})"},
                             "output": {"value": "Go to Settings, Security, Reset. " * 8}}, "metrics": {}})
    return out


def seed(api: httpx.Client, items: int) -> tuple[str, dict[str, str]]:
    pid = api.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"bench-review-{uuid.uuid4().hex[:6]}"}}}).raise_for_status().json()["data"]["id"]
    queue = api.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
        "project_id": pid, "name": "bench", "annotation_schema": {"label_schemas": LABELS}}}}).raise_for_status()
    qid = queue.json()["data"]["id"]
    labels = {lab["name"]: lab["id"] for lab in queue.json()["data"]["attributes"]["annotation_schema"]["label_schemas"]}
    base = time.time_ns() - 3600 * 10**9
    traces = [uuid.uuid4().hex for _ in range(items)]
    for start in range(0, items, 300):
        spans = [s for n, t in enumerate(traces[start:start + 300]) for s in spans_of(t, base + (start + n) * 10**6)]
        api.post(INTAKE, json=[{"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span",
                                 "spans": spans}]).raise_for_status()
    for start in range(0, items, 1000):
        api.post(f"{V2}/annotation-queues/{qid}/interactions", json={"data": {"type": "interactions", "attributes": {
            "interactions": [{"type": "trace", "content_id": t} for t in traces[start:start + 1000]]}}}
        ).raise_for_status()
    api.patch(f"{K}/{qid}/review-settings", json={"data": {"type": "review_settings", "attributes": {
        "reviewers_per_item": 2}}}).raise_for_status()
    return qid, labels


def values(labels: dict[str, str], n: int) -> list[dict[str, Any]]:
    return [{"label_schema_id": labels["quality"], "value": ["good", "ok", "bad"][n % 3]},
            {"label_schema_id": labels["correct"], "value": n % 2 == 0, "assessment": "pass"},
            {"label_schema_id": labels["stars"], "value": 1 + n % 5},
            {"label_schema_id": labels["topic"], "value": "account"},
            {"label_schema_id": labels["note"], "value": "fine", "reasoning": "reads well"}]


def pre_annotate(server: Any, qid: str, labels: dict[str, str], done: int) -> None:
    """The first `done` items, annotated by two reviewers through the Datadog route (complete at N = 2)."""
    items = [i["id"] for i in httpx.get(f"{server.base_url}{V2}/annotation-queues/{qid}/annotated-interactions",
                                        headers=server.headers, timeout=300).json()["data"]["attributes"][
        "annotated_interactions"]][:done]
    for who in range(2):
        api_key, app_key = server.new_key(f"early-{who}")
        with httpx.Client(base_url=server.base_url, timeout=300,
                          headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as c:
            for start in range(0, len(items), 1000):
                c.post(f"{V2}/annotation-queues/{qid}/annotations", json={"data": {"type": "annotations",
                       "attributes": {"annotations": [{"interaction_id": i, "label_values": values(labels, n)}
                                                      for n, i in enumerate(items[start:start + 1000])]}}}
                       ).raise_for_status()


def summary(times: list[float], cpu: float, target: float | None) -> dict[str, Any]:
    times = sorted(times)
    p95 = times[int(0.95 * (len(times) - 1))]
    out: dict[str, Any] = {"n": len(times), "p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                           "server_cpu_ms": round(cpu, 1)}
    if target is not None:
        out["target_ms"] = target
        out["pass"] = p95 <= target
    return out


def api_rounds(server: Any, qid: str, labels: dict[str, str], repeat: int) -> dict[str, Any]:
    clients = []
    for n in range(3):
        api_key, app_key = server.new_key(f"reviewer-{n}")
        clients.append(httpx.Client(base_url=server.base_url, timeout=60,
                                    headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}))
    pid = server.process.pid
    nexts: list[float] = []
    submits: list[float] = []
    cpu_next = cpu_submit = 0.0
    current: dict[int, str] = {}
    for c in clients:  # warm up
        c.post(f"{K}/{qid}/next", json={"data": {"type": "review_items"}}).raise_for_status()
    for r in range(repeat):
        for n, c in enumerate(clients):
            cpu = cpu_ms(pid)
            began = time.perf_counter()
            item = c.post(f"{K}/{qid}/next", json={"data": {"type": "review_items"}}).raise_for_status().json()
            nexts.append((time.perf_counter() - began) * 1000)
            cpu_next += cpu_ms(pid) - cpu
            current[n] = item["data"]["id"]
            cpu = cpu_ms(pid)
            began = time.perf_counter()
            c.put(f"{K}/{qid}/items/{current[n]}/annotation", json={"data": {"type": "annotations", "attributes": {
                "label_values": values(labels, r), "next": True}}}).raise_for_status()
            submits.append((time.perf_counter() - began) * 1000)
            cpu_submit += cpu_ms(pid) - cpu
    for c in clients:
        c.close()
    return {"next": summary(nexts, cpu_next / len(nexts), TARGETS["next"]),
            "submit and next": summary(submits, cpu_submit / len(submits), TARGETS["submit and next"])}


def sign_in(base: str, database_url: str) -> tuple[httpx.Client, str, str]:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", "annotator", "--password-stdin", "--database-url", database_url,
               input="bench password\n")
    web = httpx.Client(base_url=base, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    web.post("/login", data={"login": name, "password": "bench password", "csrf_token": token, "next": "/"})
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', web.get("/queues").text).group(1)
    return web, name, csrf


def page_rounds(server: Any, url: str, qid: str, labels: dict[str, str], repeat: int) -> dict[str, Any]:
    web, _, csrf = sign_in(server.base_url, url)
    pid = server.process.pid
    headers = {"X-CSRF-Token": csrf}
    nexts: list[float] = []
    submits: list[float] = []
    cpu_next = cpu_submit = 0.0
    web.post(f"/queues/{qid}/next", headers=headers).raise_for_status()
    for r in range(repeat):
        cpu = cpu_ms(pid)
        began = time.perf_counter()
        card = web.post(f"/queues/{qid}/next", headers=headers).raise_for_status().text
        nexts.append((time.perf_counter() - began) * 1000)
        cpu_next += cpu_ms(pid) - cpu
        iid = re.search(r'data-interaction="([^"]+)"', card).group(1)
        form = {f"v:{lid}": str(v["value"]).lower() if isinstance(v["value"], bool) else str(v["value"])
                for lid, v in ((v["label_schema_id"], v) for v in values(labels, r))}
        cpu = cpu_ms(pid)
        began = time.perf_counter()
        web.post(f"/queues/{qid}/items/{iid}/submit", data=form, headers=headers).raise_for_status()
        submits.append((time.perf_counter() - began) * 1000)
        cpu_submit += cpu_ms(pid) - cpu
    web.close()
    return {"page: next": summary(nexts, cpu_next / repeat, None),
            "page: submit and next": summary(submits, cpu_submit / repeat, None), "card_kb": round(len(card) / 1024)}


def browser_rounds(server: Any, url: str, qid: str, repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    _, name, _ = sign_in(server.base_url, url)
    exe = os.environ.get("KENNEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(base_url=server.base_url)
        page.goto("/login")
        page.get_by_label("User name or email").fill(name)
        page.get_by_label("Password", exact=True).fill("bench password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/queues$"))
        page.goto(f"/queues/{qid}")
        page.wait_for_function("() => document.getElementById('review').dataset.swaps === '1'")
        # In the page: from the Ctrl+Enter keydown to the new card swapped in (the keys' next target).
        page.evaluate("""() => {
            window.__lat = [];
            document.addEventListener('keydown', (e) => {
                if (e.key === 'Enter' && e.ctrlKey) window.__t0 = performance.now(); }, true);
            new MutationObserver(() => window.__lat.push(performance.now() - window.__t0))
                .observe(document.getElementById('review'), {attributes: true, attributeFilter: ['data-swaps']});
        }""")
        for r in range(repeat):
            page.keyboard.press(str(1 + r % 3))
            page.keyboard.press("Control+Enter")
            page.wait_for_function("(n) => window.__lat.length === n", arg=r + 1)
        lat = page.evaluate("window.__lat")
        browser.close()
    return {"browser: Ctrl+Enter to next item ready": summary(lat, 0.0, TARGETS["browser"])}


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/review.db"
    else:
        dbname = f"kennel_bench_{uuid.uuid4().hex[:10]}"
        with pg_admin(args.pg_admin) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = args.pg_admin.rsplit("/", 1)[0] + "/" + dbname
    server = start_server(url, backend, workdir)
    try:
        api = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=300)
        began = time.monotonic()
        qid, labels = seed(api, args.items)
        pre_annotate(server, qid, labels, args.done)
        if dbname:
            # What autovacuum does within a minute of a large load: without statistics the planner sorts
            # the whole queue to find the next item.
            with pg_admin(url) as conn:
                conn.execute("ANALYZE")
        out: dict[str, Any] = {"backend": backend, "items": args.items, "already complete": args.done,
                               "seed_s": round(time.monotonic() - began, 1)}
        out.update(api_rounds(server, qid, labels, args.repeat))
        out.update(page_rounds(server, url, qid, labels, args.repeat))
        if not args.no_browser:
            out.update(browser_rounds(server, url, qid, args.browser_repeat))
        return out
    finally:
        stop_server(server)
        if dbname:
            with pg_admin(args.pg_admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--done", type=int, default=5_000, help="items already complete before the reviewers start")
    ap.add_argument("--repeat", type=int, default=40, help="rounds of the 3 reviewers")
    ap.add_argument("--browser-repeat", type=int, default=40)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--pg-admin", default=os.environ.get("KENNEL_BENCH_PG_ADMIN", PG_ADMIN_DEFAULT))
    args = ap.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="kennel-review-") as tmp:
        results = [run_backend(b, args, Path(tmp)) for b in backends]
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
