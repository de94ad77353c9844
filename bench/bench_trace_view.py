#!/usr/bin/env python
"""The trace view's server time: a 1,000-span trace (target: 200 ms a page), on each backend.

Starts the real server on a fresh database, sends one trace of --spans spans through the intake (a few
levels deep: an agent, its steps, their llm/tool/retrieval calls; ~1 KB of input and output each, chat
messages on the llm spans, metadata, token metrics, 1 error in 50, two evaluations on every tenth span),
plus --noise other spans so the trace is found among others, signs an admin in, and fetches:

  /traces/{id}             the default page (two levels open and the way to each error)
  /traces/{id}?open=all    every span open
  /traces/{small}          a trace of --inline-spans spans (200), the largest whose fields the page carries
  /traces/{id}/spans/{id}  one span in full, and ?part=fields (what opening a span of a large trace fetches)
  /sessions/{id}           the session's transcript (50 traces a page)

--repeat times each over one keep-alive connection on loopback. Prints p50/p95 in ms (the round trip as
the client sees it: an upper bound of the server's time), the CPU time the server process spent per
request (from /proc: the server's own cost, whatever else the machine runs; on PostgreSQL the database's
share is not in it) and the page's size.

  .venv/bin/python bench/bench_trace_view.py --backend both
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

INTAKE = "/api/v2/llmobs"
EVAL = "/api/intake/llm-obs/v2/eval-metric"
TARGET_MS = 200


def event(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span", "spans": spans}]


def trace_spans(trace: str, session: str, n: int, base: int) -> list[dict[str, Any]]:
    """An agent root; steps under it (one per 20 spans); llm, tool and retrieval calls under the steps."""
    spans = []
    steps = max(1, (n - 1) // 20)
    for i in range(n):
        if i == 0:
            parent, kind, name = "undefined", "agent", "support-agent"
        elif i <= steps:
            parent, kind, name = "s0", "workflow", f"step-{i}"
        else:
            parent, kind = f"s{1 + (i - steps - 1) % steps}", ("llm", "tool", "retrieval", "task")[i % 4]
            name = f"{kind}-{i}"
        meta: dict[str, Any] = {"span": {"kind": kind}, "metadata": {"i": i, "temperature": 0.2, "retries": i % 3},
                                "output": {"value": f"answer {i} " + "a" * 480}}
        if kind == "llm":
            meta["input"] = {"messages": [{"role": "system", "content": "You are a helpful assistant. " * 8},
                                          {"role": "user", "content": f"question {i} " + "q" * 300}]}
            meta["output"] = {"messages": [{"role": "assistant", "content": f"answer {i} " + "a" * 480}]}
            meta["model_name"], meta["model_provider"] = "gpt-4o-mini", "openai"
        else:
            meta["input"] = {"value": f"input {i} " + "q" * 480}
        span = {"trace_id": trace, "span_id": f"s{i}", "parent_id": parent, "name": name, "session_id": session,
                "start_ns": base + i * 1000, "duration": 1_000_000 + i * 1000, "status": "ok", "meta": meta,
                "metrics": {"input_tokens": 100 + i, "output_tokens": 50 + i, "total_tokens": 150 + 2 * i},
                "tags": ["ml_app:bench", "env:bench", f"step:{i % 7}"]}
        if i % 50 == 49:
            span["status"] = "error"
            meta["error"] = {"type": "TimeoutError", "message": f"call {i} timed out", "stack": "Traceback ...\n" * 5}
        spans.append(span)
    return spans


def seed(api: httpx.Client, spans: int, noise: int, session_traces: int, *,
         session: str | None = None) -> tuple[str, str]:
    trace, session = uuid.uuid4().hex, session or f"bench-session-{uuid.uuid4().hex[:6]}"
    base = time.time_ns() - 3600 * 10**9
    batch = trace_spans(trace, session, spans, base)
    for at in range(0, len(batch), 250):
        api.post(INTAKE, json=event(batch[at:at + 250])).raise_for_status()
    metrics = []
    for s in batch[::10]:
        join = {"span": {"span_id": s["span_id"], "trace_id": trace}}
        metrics.append({"join_on": join, "label": "faithfulness", "metric_type": "score", "score_value": 0.8,
                        "ml_app": "bench", "timestamp_ms": int(time.time() * 1000), "tags": []})
        metrics.append({"join_on": join, "label": "tone", "metric_type": "categorical", "categorical_value": "polite",
                        "assessment": "pass", "reasoning": "It is polite. " * 10, "ml_app": "bench",
                        "timestamp_ms": int(time.time() * 1000), "tags": []})
    api.post(EVAL, json={"data": {"type": "evaluation_metric", "attributes": {"metrics": metrics}}}).raise_for_status()
    # Other traces of the same session (10 spans each), then unrelated traces, so that reads must seek.
    for t in range(session_traces - 1):
        later = base + (t + 1) * 10**9
        api.post(INTAKE, json=event(trace_spans(uuid.uuid4().hex, session, 10, later))).raise_for_status()
    for _ in range(0, noise, 1000):
        other = [s for _ in range(100) for s in trace_spans(uuid.uuid4().hex, f"other-{uuid.uuid4().hex[:6]}", 10,
                                                             base)]
        api.post(INTAKE, json=event(other)).raise_for_status()
    return trace, session


def sign_in(base: str, database_url: str) -> httpx.Client:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", "admin", "--password-stdin", "--database-url", database_url,
               input="bench password\n")
    web = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    r = web.post("/login", data={"login": name, "password": "bench password", "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text
    return web


def cpu_ms(pid: int) -> float:
    """CPU time the process has used (user + system), from /proc: a server's own time, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(web: httpx.Client, pid: int, path: str, repeat: int, target_ms: float | None = TARGET_MS) -> dict[str, Any]:
    first = web.get(path)
    first.raise_for_status()
    times = []
    cpu = cpu_ms(pid)
    for _ in range(repeat):
        began = time.perf_counter()
        r = web.get(path)
        r.raise_for_status()
        times.append((time.perf_counter() - began) * 1000)
    cpu = (cpu_ms(pid) - cpu) / repeat
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    out: dict[str, Any] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                           "server_cpu_ms": round(cpu, 1), "html_kb": round(len(first.content) / 1024)}
    if target_ms is not None:
        out["pass"] = p95 <= target_ms
    return out


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/traces.db"
    else:
        dbname = f"kennel_bench_{uuid.uuid4().hex[:10]}"
        with pg_admin(args.pg_admin) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = args.pg_admin.rsplit("/", 1)[0] + "/" + dbname
    server = start_server(url, backend, workdir)
    try:
        api = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120)
        began = time.monotonic()
        trace, session = seed(api, args.spans, args.noise, args.session_traces)
        small, _ = seed(api, args.inline_spans, 0, 0)
        out: dict[str, Any] = {"backend": backend, "seed_s": round(time.monotonic() - began, 1)}
        web = sign_in(server.base_url, url)
        pid = server.process.pid
        out[f"trace view, {args.spans} spans"] = timed(web, pid, f"/traces/{trace}", args.repeat)
        out[f"trace view, {args.spans} spans, all open"] = timed(web, pid, f"/traces/{trace}?open=all", args.repeat)
        out[f"trace view, {args.inline_spans} spans, every span's fields in the page"] = timed(
            web, pid, f"/traces/{small}", args.repeat)
        out["one span in full"] = timed(web, pid, f"/traces/{trace}/spans/s7", args.repeat, None)
        out["one span's fields (fetched on opening it)"] = timed(web, pid, f"/traces/{trace}/spans/s7?part=fields",
                                                                args.repeat, None)
        out[f"session of {args.session_traces} traces"] = timed(web, pid, f"/sessions/{session}", args.repeat, None)
        return out
    finally:
        stop_server(server)
        if dbname:
            with pg_admin(args.pg_admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--spans", type=int, default=1000)
    ap.add_argument("--inline-spans", type=int, default=200,
                    help="a second trace, as large as one whose fields the page carries (spans.trace_view.INLINE_SPANS)")
    ap.add_argument("--noise", type=int, default=20_000, help="spans of other traces and sessions")
    ap.add_argument("--session-traces", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--pg-admin", default=os.environ.get("KENNEL_BENCH_PG_ADMIN", PG_ADMIN_DEFAULT))
    args = ap.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="kennel-traces-") as tmp:
        results = [run_backend(b, args, Path(tmp)) for b in backends]
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
