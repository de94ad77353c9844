#!/usr/bin/env python
"""The experiment workspace's server time, on each backend.

Starts the real server on a fresh database and seeds, over the API: a 10,000-record dataset; three runs
over it (--records spans each, 4 metrics per record: a boolean, two scores, a categorical; 1 record in
200 errored, 1 in 100 missing from the third run); and a second project of --list-runs small runs, each
with two summary metrics. Then, over one keep-alive loopback connection, --repeat times each:

  compare        /api/kennel/v1/experiments/compare   cards, counts, paired tests and the first page of rows
  next page      /api/kennel/v1/experiments/compare/rows?cursor=...   a further page (sorted by a metric)
  tests          /api/kennel/v1/experiments/compare/tests   the paired tests of all metrics
  list           /api/kennel/v1/experiments?project_id=...   the newest page of 1,000 runs
  compare page   /experiments/compare?...   the HTML page (signed in)

Figures: p50/p95 of the round trip as the client sees it (an upper bound of the server's time), the CPU
the server process spent per request (from /proc; on PostgreSQL the database's own share is not in it),
and "cold": the first compare after start, which loads the three runs into the server's cache (later
requests find them there until a run gains spans or metrics) from their columns, stored after the intake;
"cold, nothing stored": the same after the stored columns were deleted, so the runs are read from their
spans and metrics (as for runs from before the stored columns); "cold compare (after each run gained a
metric)": --repeat compares, each right after a metric was written to every run (the server reads the new
metrics and keeps the rest of each cached run); "cold compare (after each run gained a span)": the same
after a child span was written to every run (the server reads the new spans and metrics and keeps the rest
of each cached run). Targets (p95; the compare's also for the cold compares): compare 300 ms, next page
100 ms, tests 200 ms, list 50 ms.

  .venv/bin/python bench/bench_compare.py --backend both
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, inspect, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.conftest import start_server, stop_server

from bench_datasets import PG_ADMIN_DEFAULT, pg_admin, speed_probe_ms
from bench_trace_view import cpu_ms, sign_in, timed

V2 = "/api/v2/llm-obs/v1"
UNSTABLE = "/api/unstable/llm-obs/v1"
API = "/api/kennel/v1/experiments"
TARGETS = {"compare": 300, "next page": 100, "tests": 200, "list": 50}
BATCH = 1000


def _post(api: httpx.Client, path: str, body: dict[str, Any], ok: tuple[int, ...] = (200, 201, 202)) -> Any:
    r = api.post(path, json=body)
    if r.status_code not in ok:
        raise RuntimeError(f"{path}: {r.status_code} {r.text[:500]}")
    return r.json() if r.content else None


def make_run(api: httpx.Client, project: str, dataset: str, name: str, ids: list[str], quality: float,
             rng: random.Random, *, missing_every: int = 0) -> str:
    eid = _post(api, f"{UNSTABLE}/experiments", {"data": {"type": "experiments", "attributes": {
        "name": name, "project_id": project, "dataset_id": dataset, "config": {"model": name, "temperature": 0.2}}}}
    )["data"]["id"]
    base = time.time_ns()
    for at in range(0, len(ids), BATCH):
        spans, metrics = [], []
        for i, rid in enumerate(ids[at:at + BATCH], start=at):
            if missing_every and i % missing_every == 0:
                continue
            span_id, trace_id = f"{name}-{i}", f"{name}-t{i}"
            error = i % 200 == 0
            spans.append({"trace_id": trace_id, "span_id": span_id, "parent_id": "undefined", "name": "task",
                          "start_ns": base + i, "duration": 1_000_000 + i, "status": "error" if error else "ok",
                          "meta": {"span": {"kind": "experiment"}, "input": {"question": f"question {i}"},
                                   "output": {"answer": f"{name} answer {i}", "tokens": i % 50},
                                   "expected_output": {"answer": f"answer {i}"},
                                   **({"error": {"message": "timeout", "type": "TimeoutError"}} if error else {})},
                          "metrics": {}, "tags": [f"experiment_id:{eid}", f"dataset_record_id:{rid}"]})
            good = rng.random() < quality
            for label, kind, value in (("correct", "boolean", good),
                                       ("faithfulness", "score", min(1.0, max(0.0, rng.gauss(quality, 0.2)))),
                                       ("latency_score", "score", rng.random() * 10),
                                       ("tone", "categorical", rng.choice(("polite", "neutral", "curt")))):
                metrics.append({"span_id": span_id, "trace_id": trace_id, "timestamp_ms": base // 10**6,
                                "metric_type": kind, "label": label, f"{kind}_value": value})
        _post(api, f"{UNSTABLE}/experiments/{eid}/events", {"data": {"type": "experiments", "attributes": {
            "scope": "experiments", "spans": spans, "metrics": metrics}}})
    return eid


def seed(api: httpx.Client, records: int, list_runs: int) -> dict[str, Any]:
    rng = random.Random(5)
    project = _post(api, f"{V2}/projects", {"data": {"type": "projects", "attributes": {
        "name": f"bench-compare-{uuid.uuid4().hex[:6]}"}}})["data"]["id"]
    dataset = _post(api, f"{V2}/{project}/datasets", {"data": {"type": "datasets", "attributes": {
        "name": "qa"}}})["data"]["id"]
    ids = [uuid.uuid4().hex for _ in range(records)]
    for at in range(0, records, BATCH):
        _post(api, f"{V2}/{project}/datasets/{dataset}/records", {"data": {"type": "records", "attributes": {
            "records": [{"id": rid, "input": {"question": f"question {at + i}"},
                         "expected_output": {"answer": f"answer {at + i}"}} for i, rid in enumerate(ids[at:at + BATCH])]}}})
    runs = [make_run(api, project, dataset, "baseline", ids, 0.70, rng),
            make_run(api, project, dataset, "candidate", ids, 0.72, rng),
            make_run(api, project, dataset, "other", ids, 0.60, rng, missing_every=100)]
    many = _post(api, f"{V2}/projects", {"data": {"type": "projects", "attributes": {
        "name": f"bench-many-{uuid.uuid4().hex[:6]}"}}})["data"]["id"]
    for i in range(list_runs):
        eid = _post(api, f"{UNSTABLE}/experiments", {"data": {"type": "experiments", "attributes": {
            "name": f"sweep-{i % 10}", "project_id": many, "dataset_id": dataset, "config": {"i": i}}}})["data"]["id"]
        _post(api, f"{UNSTABLE}/experiments/{eid}/events", {"data": {"type": "experiments", "attributes": {
            "scope": "experiments", "metrics": [
                {"span_id": "", "trace_id": "", "timestamp_ms": 1, "metric_type": "score", "label": "accuracy",
                 "score_value": rng.random(), "metric_source": "summary"},
                {"span_id": "", "trace_id": "", "timestamp_ms": 1, "metric_type": "score", "label": "f1",
                 "score_value": rng.random(), "metric_source": "summary"}]}}})
    return {"project": project, "many": many, "runs": runs}


def cold_after_change(api: httpx.Client, pid: int, path: str, runs: list[str], repeat: int,
                      what: str) -> dict[str, Any]:
    """The compare right after every run changed: before each timed request, each run gains one more metric
    (a repeat of a record's `correct`, which the compare ignores: a record's first metric of a label counts)
    or, with what="span", one more child span (not a record's result: the figures stay the same, but the
    server must read what each run gained)."""
    times, cpu = [], 0.0
    for n in range(repeat):
        for eid, name in zip(runs, ("baseline", "candidate", "other"), strict=True):
            if what == "span":
                change: dict[str, Any] = {"spans": [{
                    "trace_id": f"{name}-t1", "span_id": f"{name}-child-{n}", "parent_id": f"{name}-1",
                    "name": "step", "start_ns": time.time_ns(), "duration": 1000, "status": "ok",
                    "meta": {"span": {"kind": "task"}}, "metrics": {}, "tags": [f"experiment_id:{eid}"]}]}
            else:
                change = {"metrics": [{"span_id": f"{name}-1", "trace_id": f"{name}-t1", "timestamp_ms": n + 1,
                                       "metric_type": "boolean", "label": "correct", "boolean_value": n % 2 == 0}]}
            _post(api, f"{UNSTABLE}/experiments/{eid}/events", {"data": {"type": "experiments", "attributes": {
                "scope": "experiments", **change}}})
        before, began = cpu_ms(pid), time.perf_counter()
        api.get(path).raise_for_status()
        times.append((time.perf_counter() - began) * 1000)
        cpu += cpu_ms(pid) - before
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "server_cpu_ms": round(cpu / repeat, 1), "pass": times[int(0.95 * (len(times) - 1))] <= TARGETS["compare"]}


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/compare.db"
    else:
        dbname = f"kennel_bench_{uuid.uuid4().hex[:10]}"
        with pg_admin(args.pg_admin) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = args.pg_admin.rsplit("/", 1)[0] + "/" + dbname
    server = start_server(url, backend, workdir)
    try:
        api = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=300)
        began = time.monotonic()
        seeded = seed(api, args.records, args.list_runs)
        out: dict[str, Any] = {"backend": backend, "seed_s": round(time.monotonic() - began, 1),
                               "speed_probe_ms (1M additions; ~60-90 on a quiet machine)": speed_probe_ms()}
        stop_server(server)  # a fresh process: nothing of the runs in its cache
        server = start_server(url, backend, workdir)
        api = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=300)
        pid = server.process.pid
        runs = ",".join(seeded["runs"])
        compare = f"{API}/compare?runs={runs}&baseline={seeded['runs'][0]}"
        cpu, began = cpu_ms(pid), time.perf_counter()
        api.get(compare).raise_for_status()
        out["cold compare (loads the 3 runs)"] = {"ms": round((time.perf_counter() - began) * 1000, 1),
                                                  "server_cpu_ms": round(cpu_ms(pid) - cpu, 1)}
        # The same with nothing stored (runs from before the stored columns, or past their size limit): the
        # 3 runs read from their spans and metrics. Their columns are stored again afterwards.
        stop_server(server)
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        if inspect(engine).has_table("experiment_run_columns"):  # not in a Kennel before them (an A/B)
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM experiment_run_columns"))
        engine.dispose()
        server = start_server(url, backend, workdir)
        api = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=300)
        pid = server.process.pid
        cpu, began = cpu_ms(pid), time.perf_counter()
        api.get(compare).raise_for_status()
        out["cold compare, nothing stored (reads the 3 runs' rows)"] = {
            "ms": round((time.perf_counter() - began) * 1000, 1), "server_cpu_ms": round(cpu_ms(pid) - cpu, 1)}
        out["compare"] = timed(api, pid, compare, args.repeat, TARGETS["compare"])
        for what in ("metric", "span"):
            out[f"cold compare (after each run gained a {what})"] = cold_after_change(
                api, pid, compare, seeded["runs"], args.repeat, what)
        first = api.get(f"{API}/compare/rows?runs={runs}&sort=faithfulness&order=desc").json()
        after = first["meta"]["after"]
        out["next page"] = timed(api, pid, f"{API}/compare/rows?runs={runs}&sort=faithfulness&order=desc"
                                           f"&cursor={after}", args.repeat, TARGETS["next page"])
        out["tests"] = timed(api, pid, f"{API}/compare/tests?runs={runs}", args.repeat, TARGETS["tests"])
        out[f"list of {args.list_runs} runs"] = timed(api, pid, f"{API}?project_id={seeded['many']}", args.repeat,
                                                    TARGETS["list"])
        web = sign_in(server.base_url, url)
        out["compare page (HTML)"] = timed(web, pid, f"/experiments/compare?runs={runs}", max(5, args.repeat // 4),
                                           None)
        return out
    finally:
        stop_server(server)
        if dbname:
            with pg_admin(args.pg_admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--list-runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg-admin", default=PG_ADMIN_DEFAULT)
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            result = run_backend(backend, args, Path(tmp))
            result.pop("backend")
            print(f"\n== {backend} (seeded in {result.pop('seed_s')} s)")
            for name, figures in result.items():
                print(f"  {name:48} {figures}")


if __name__ == "__main__":
    main()
