#!/usr/bin/env python
"""Web app pages (issue 18): time of each page with 1,000 projects, 10,000 datasets and 100 queues,
and of the trace view of a 1,000-span trace (target 200 ms; 50 ms for the others).

Starts the real server on a fresh database of each backend, fills it through the API, signs an admin in
and fetches each page --repeat times over one keep-alive connection on loopback. Prints p50/p95 per page
in ms: the whole round trip as the client sees it, so an upper bound of the server's time.

  .venv/bin/python bench/bench_web.py --backend both
"""

from __future__ import annotations

import argparse
import os
import re
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

V2 = "/api/v2/llm-obs/v1"
TARGET_MS = 50


def fill(api: httpx.Client, projects: int, datasets: int, queues: int) -> str:
    """Returns the id of the project holding the datasets and queues."""
    ids = []
    for i in range(projects):
        r = api.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {"name": f"p{i:05d}"}}})
        ids.append(r.json()["data"]["id"])
    busy = ids[-1]
    for i in range(datasets):
        api.post(f"{V2}/{ids[i % len(ids)] if i >= datasets // 2 else busy}/datasets",
                 json={"data": {"type": "datasets", "attributes": {"name": f"d{i:05d}"}}}).raise_for_status()
    for i in range(queues):
        api.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
            "project_id": busy, "name": f"q{i:03d}"}}}).raise_for_status()
    return busy


def seed_trace(api: httpx.Client, spans: int) -> str:
    """One trace of `spans` spans, a few levels deep, with ~1 KB of input and output each."""
    trace = uuid.uuid4().hex
    base = time.time_ns() - 10**9
    batch = []
    for i in range(spans):
        parent = "undefined" if i == 0 else str(1 + (i - 1) // 10)
        batch.append({"trace_id": trace, "span_id": str(i + 1), "parent_id": parent, "name": f"step-{i}",
                      "start_ns": base + i, "duration": 1_000_000 + i, "status": "error" if i % 97 == 0 else "ok",
                      "meta": {"span": {"kind": "llm" if i % 2 else "tool"}, "input": {"value": "q" * 500},
                               "output": {"value": "a" * 500}, "metadata": {"i": i}},
                      "metrics": {"input_tokens": i}, "tags": ["ml_app:bench", "env:bench"]})
    for at in range(0, spans, 200):
        api.post("/api/v2/llmobs", json=[{"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span",
                                          "spans": batch[at:at + 200]}]).raise_for_status()
    return trace


def sign_in(base: str, database_url: str) -> httpx.Client:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", "admin", "--password-stdin", "--database-url", database_url,
               input="bench password\n")
    web = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    page = web.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = web.post("/login", data={"login": name, "password": "bench password", "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text
    return web


def timed(web: httpx.Client, path: str, repeat: int, target_ms: float = TARGET_MS) -> dict[str, Any]:
    web.get(path).raise_for_status()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        r = web.get(path)
        times.append((time.perf_counter() - began) * 1000)
        r.raise_for_status()
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1), "pass": p95 <= target_ms}


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/web.db"
    else:
        dbname = f"kennel_bench_{uuid.uuid4().hex[:10]}"
        with pg_admin(args.pg_admin) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = args.pg_admin.rsplit("/", 1)[0] + "/" + dbname
    server = start_server(url, backend, workdir)
    try:
        api = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60)
        began = time.monotonic()
        busy = fill(api, args.projects, args.datasets, args.queues)
        trace = seed_trace(api, args.spans)
        filled_s = round(time.monotonic() - began, 1)
        web = sign_in(server.base_url, url)
        pages = {
            "projects (/)": "/",
            "projects filtered": "/?q=p009",
            "project datasets (5,000 in it)": f"/projects/{busy}?tab=datasets",
            "project datasets filtered": f"/projects/{busy}?tab=datasets&q=d04",
            "project experiments": f"/projects/{busy}?tab=experiments",
            "project queues (100)": f"/projects/{busy}?tab=queues",
            "my queues": "/queues",
            "settings": "/settings",
            "people": "/admin/people",
        }
        out: dict[str, Any] = {"backend": backend, "fill_s": filled_s}
        for label, path in pages.items():
            out[label] = timed(web, path, args.repeat)
        out[f"trace view ({args.spans} spans)"] = timed(web, f"/traces/{trace}", args.repeat, target_ms=200)
        return out
    finally:
        stop_server(server)
        if dbname:
            with pg_admin(args.pg_admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--projects", type=int, default=1000)
    ap.add_argument("--datasets", type=int, default=10000)
    ap.add_argument("--queues", type=int, default=100)
    ap.add_argument("--spans", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--pg-admin", default=os.environ.get("KENNEL_BENCH_PG_ADMIN", PG_ADMIN_DEFAULT))
    args = ap.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="kennel-web-") as tmp:
        results = [run_backend(b, args, Path(tmp)) for b in backends]
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
