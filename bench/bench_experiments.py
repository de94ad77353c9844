#!/usr/bin/env python
"""Experiments and span intake benchmark (issue 5, "Performance"): the real `kennel serve` on a temp SQLite
file, driven over HTTP.

  1. span intake: POST /api/v2/llmobs with payloads of 100 spans of ~2 KB each (API key only), from
     `--clients` concurrent connections; spans/s over the whole run (target >= 5,000/s);
  2. an experiment over 10,000 records: 10,000 experiment spans through the intake plus three metrics
     per span through the events route (in ddtrace-sized batches), then
       - its events listed in pages of 100 through the typed v3 route (per-page ms; target <= 50 ms),
       - the full events read ddtrace's pull_experiment makes (the unstable route; target <= 3 s).

  .venv/bin/python bench/bench_experiments.py [--spans 50000] [--records 10000] [--clients 4]

It prints one JSON summary with each target's verdict.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server, stop_server

FILLER = "lorem ipsum dolor sit amet " * 40  # ~1 KB of text per field, ~2 KB per span on the wire


def make_span(ml_app: str, trace_id: str, start_ns: int, *, experiment_id: str | None = None,
              record: int = 0) -> dict:
    span_id = str(uuid.uuid4().int >> 65)
    tags = [f"ml_app:{ml_app}", "env:bench", "service:bench", "ddtrace.version:4.16.0", "error:0"]
    meta: dict = {"span": {"kind": "llm"}, "input": {"messages": [{"role": "user", "content": FILLER}]},
                  "output": {"messages": [{"role": "assistant", "content": FILLER[:800]}]},
                  "metadata": {"temperature": 0.2}, "model_name": "gpt-bench", "model_provider": "openai"}
    if experiment_id:
        tags += [f"experiment_id:{experiment_id}", f"dataset_record_id:rec-{record}", "run_id:r1"]
        meta = {"span": {"kind": "experiment"}, "input": {"q": FILLER[:900], "n": record},
                "output": FILLER[:700], "expected_output": {"a": record}, "metadata": {"i": record}}
    return {"trace_id": trace_id, "span_id": span_id, "parent_id": "undefined", "name": "bench-op",
            "start_ns": start_ns, "duration": 12345, "status": "ok", "meta": meta,
            "metrics": {"input_tokens": 10, "output_tokens": 20}, "tags": tags,
            "_dd": {"span_id": span_id, "trace_id": trace_id, "apm_trace_id": trace_id}}


def payload(spans: list[dict], scope: str | None = None) -> bytes:
    events = []
    for s in spans:
        e = {"_dd.stage": "raw", "_dd.tracer_version": "4.16.0", "event_type": "span", "spans": [s]}
        if scope:
            e["_dd.scope"] = scope
        events.append(e)
    return orjson.dumps(events)


def bench_intake(base: str, api_key: str, total: int, clients: int) -> dict:
    ml_app = f"bench-{uuid.uuid4().hex[:6]}"
    per = 100
    bodies = []
    start = time.time_ns()
    for i in range(total // per):
        trace = uuid.uuid4().hex
        bodies.append(payload([make_span(ml_app, trace, start + i * per + j) for j in range(per)]))
    size = sum(len(b) for b in bodies) / (len(bodies) * per)
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(bodies)

    def worker() -> None:
        with httpx.Client(base_url=base, headers={"DD-API-KEY": api_key, "Content-Type": "application/json"},
                          timeout=60) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                t = time.perf_counter()
                r = c.post("/api/v2/llmobs", content=body)
                assert r.status_code == 202, r.text
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"spans": len(bodies) * per, "bytes_per_span": round(size), "clients": clients,
            "seconds": round(elapsed, 2), "spans_per_s": round(len(bodies) * per / elapsed),
            "request_ms_median": round(statistics.median(latencies), 1),
            "request_ms_p95": round(sorted(latencies)[int(len(latencies) * 0.95) - 1], 1)}


def bench_experiment(c: httpx.Client, api_key: str, records: int) -> dict:
    pid = c.post("/api/unstable/llm-obs/v1/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"bench-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
    eid = c.post("/api/unstable/llm-obs/v1/experiments", json={"data": {"type": "experiments", "attributes": {
        "name": "bench-exp", "project_id": pid, "config": {}, "metadata": {"tags": []}}}}).json()["data"]["id"]
    start = time.time_ns()
    spans = [make_span("bench-exp", uuid.uuid4().hex, start + i, experiment_id=eid, record=i) for i in range(records)]
    t0 = time.perf_counter()
    for i in range(0, records, 100):
        r = c.post("/api/v2/llmobs", content=payload(spans[i:i + 100], "experiments"),
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 202, r.text
    ts = int(time.time() * 1000)
    for i in range(0, records, 300):
        metrics = []
        for s in spans[i:i + 300]:
            common = {"metric_source": "custom", "span_id": s["span_id"], "trace_id": s["trace_id"],
                      "timestamp_ms": ts, "error": None, "tags": [], "experiment_id": eid, "status": "OK"}
            metrics += [{**common, "label": "exact", "metric_type": "boolean", "boolean_value": True},
                        {**common, "label": "score", "metric_type": "score", "score_value": 0.5},
                        {**common, "label": "grade", "metric_type": "categorical", "categorical_value": "good"}]
        r = c.post(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", json={"data": {"type": "experiments",
                   "attributes": {"scope": "experiments", "metrics": metrics, "tags": []}}})
        assert r.status_code == 202, r.text
    load_s = time.perf_counter() - t0

    pages: list[float] = []
    cursor, seen = None, 0
    while True:
        params = {"page[limit]": "100"}
        if cursor:
            params["page[cursor]"] = cursor
        t = time.perf_counter()
        r = c.get(f"/api/v2/llm-obs/v3/experiments/{eid}/events", params=params)
        pages.append((time.perf_counter() - t) * 1000)
        body = r.json()
        seen += len(body["data"]["attributes"]["spans"])
        cursor = body["meta"]["after"]
        if not cursor:
            break
    assert seen == records, seen

    fulls = []
    for _ in range(3):
        t = time.perf_counter()
        r = c.get(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", params={"include[eval_metrics]": "true"})
        body = r.content
        fulls.append(time.perf_counter() - t)
        assert r.status_code == 200
    doc = orjson.loads(body)
    assert len(doc["data"]["attributes"]["spans"]) == records
    assert all(len(s["eval_metrics"]) == 3 for s in doc["data"]["attributes"]["spans"])
    return {"records": records, "load_seconds": round(load_s, 2), "pages": len(pages),
            "page_ms_median": round(statistics.median(pages), 1),
            "page_ms_p95": round(sorted(pages)[int(len(pages) * 0.95) - 1], 1),
            "page_ms_max": round(max(pages), 1), "full_read_s": round(min(fulls), 2),
            "full_read_mb": round(len(body) / 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=50_000)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kennel-bench-xp-"))
    server = start_server(f"sqlite:///{tmp / 'bench.db'}", "sqlite", tmp)
    try:
        intake = bench_intake(server.base_url, server.api_key, args.spans, args.clients)
        with server.client() as c:
            experiment = bench_experiment(c, server.api_key, args.records)
    finally:
        stop_server(server)
    summary = {
        "backend": "sqlite",
        "intake": intake,
        "experiment": experiment,
        "targets": {
            "intake_spans_per_s >= 5000": intake["spans_per_s"] >= 5000,
            "events_page_of_100 <= 50 ms (p95)": experiment["page_ms_p95"] <= 50,
            "full_events_read <= 3 s": experiment["full_read_s"] <= 3,
        },
    }
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
