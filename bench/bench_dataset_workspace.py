#!/usr/bin/env python
"""The dataset workspace's server time, against the issue's targets, on each backend.

Starts the real server on a fresh database, imports --records records of ~1.2 KB (bench_datasets'
records, plus a `bucket` that one record in ten shares and a `rare` flag one in 10,000 has) as version 1,
then makes version 2 (1,000 records changed, spread over the dataset), version 3 (10,000 changed) and
small versions up to --versions in all (5 changes each, one delete in five). Then it times, --repeat times
each over one keep-alive connection (the Kennel API routes the pages call):

  records page         the first page (50 records) and the last one (a cursor to the oldest records)
  diff 1,000 / 10,000  counts and the first page of the diff of versions 1->2 and 2->3
  timeline             /versions: every version (up to 200) with its counts
  history              one record's history
  filter               first page of @metadata.bucket:b3 (1 in 10 match), @metadata.rare:true (1 in 10,000)
                       and a filter nothing matches (the whole version is read)

It prints p50/p95 of the round trip in ms (an upper bound of the server's time) and the server process's
CPU per request (from /proc; on PostgreSQL the database's own CPU is not in it). The machine is shared:
figures are noisy, compare them interleaved.

`--cold N` also times the timeline's first view N times, each on a server just restarted on the same
database (after one untimed request elsewhere, so the process's own start-up is not counted): what a
user meets first, whatever a server keeps once it has counted. `--only timeline` skips the other
measurements; `--ref` runs the server from `git archive REF src` instead of the working tree.

  .venv/bin/python bench/bench_dataset_workspace.py --backend both --records 100000
  .venv/bin/python bench/bench_dataset_workspace.py --records 20000 --only timeline --cold 10 --ref main
"""

from __future__ import annotations

import argparse
import os
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

from tests.conftest import start_server, stop_server

from bench_datasets import PG_ADMIN_DEFAULT, make_record, pg_admin, proc_cpu_s, snapshot_src

V2 = "/api/v2/llm-obs/v1"
K = "/api/kennel/v1"
BATCH = 1000
TARGETS_MS = {"records first page": 50, "records last page": 60, "diff 1,000 changes": 300,
              "diff 10,000 changes": 1000, "timeline": 100, "history": 50, "filter 1 in 10": 1000}


def record(i: int) -> dict[str, Any]:
    rec = make_record(i)
    rec["metadata"] = {**rec["metadata"], "bucket": f"b{i % 10}", "rare": i % 10_000 == 0}
    return rec


def encode_cursor(*parts: Any) -> str:
    from kennel.jsonapi import encode_cursor as encode

    return encode(*parts)


class Bench:
    def __init__(self, http: httpx.Client, pid: int, n: int, versions: int, repeat: int) -> None:
        self.http, self.pid, self.n, self.versions, self.repeat = http, pid, n, versions, repeat
        self.results: dict[str, dict[str, Any]] = {}

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> httpx.Response:
        r = self.http.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
        assert r.status_code == expect, r.text[:500]
        return r

    def batch(self, records: list[dict[str, Any]] | None = None, updates: list[dict[str, Any]] | None = None,
              deletes: list[str] | None = None, new_version: bool = True) -> None:
        self.post(f"{self.base}/batch_update", {"data": {"type": "datasets", "id": self.did, "attributes": {
            "insert_records": records or [], "update_records": updates or [], "delete_records": deletes or [],
            "create_new_version": new_version, "deduplicate": False}}})

    def build(self) -> None:
        project = self.post(f"{V2}/projects", {"data": {"type": "projects", "attributes": {
            "name": f"bench-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
        self.did = self.post(f"{V2}/{project}/datasets", {"data": {"type": "datasets", "attributes": {
            "name": "workspace"}}}).json()["data"]["id"]
        self.base = f"{V2}/{project}/datasets/{self.did}"
        t0 = time.perf_counter()
        for start in range(0, self.n, BATCH):
            self.batch([record(i) for i in range(start, min(start + BATCH, self.n))], new_version=start == 0)
        print(f"  imported {self.n:,} records in {time.perf_counter() - t0:.1f} s", flush=True)

        def changed(i: int, tag: str) -> dict[str, Any]:
            return {"id": f"rec-{i:08d}", "expected_output": {"answer": f"{tag} {i}", "score": 1.0}}

        step = max(1, self.n // 1000)
        self.batch(updates=[changed(i, "v2") for i in range(0, self.n, step)][:1000])
        step = max(1, self.n // 10_000)
        ten = [changed(i, "v3") for i in range(1, self.n, step)][:10_000]
        for start in range(0, len(ten), BATCH):
            self.batch(updates=ten[start:start + BATCH], new_version=start == 0)
        for v in range(4, self.versions + 1):
            ids = [(v * 7919 + k * 104_729) % self.n for k in range(5)]
            self.batch(updates=[changed(i, f"v{v}") for i in ids[:4]],
                       deletes=[f"rec-{ids[4]:08d}"] if v % 5 == 0 else None)
        print(f"  made {self.versions} versions", flush=True)

    def time(self, label: str, path: str, params: dict[str, Any], check: Any = None, repeat: int = 0) -> None:
        rounds, cpus = [], []
        body: Any = None
        self.http.get(path, params=params)  # untimed: the first request of a kind also warms caches up
        for _ in range(repeat or self.repeat):
            c0 = proc_cpu_s(self.pid)
            t0 = time.perf_counter()
            r = self.http.get(path, params=params)
            rounds.append((time.perf_counter() - t0) * 1000)
            cpus.append((proc_cpu_s(self.pid) - c0) * 1000)
            assert r.status_code == 200, r.text[:500]
            body = r.json()
        if check is not None:
            check(body)
        p95 = sorted(rounds)[max(0, round(0.95 * len(rounds)) - 1)]
        self.results[label] = {"p50_ms": round(statistics.median(rounds), 1), "p95_ms": round(p95, 1),
                               "server_cpu_ms": round(statistics.mean(cpus), 1),
                               "target_ms": TARGETS_MS.get(label)}
        print(f"  {label:28} p50 {self.results[label]['p50_ms']:8.1f} ms  p95 {p95:8.1f} ms  "
              f"server CPU {self.results[label]['server_cpu_ms']:7.1f} ms"
              + (f"  (target {TARGETS_MS[label]} ms)" if label in TARGETS_MS else ""), flush=True)

    def run(self, only: str | None) -> None:
        d = f"{K}/datasets/{self.did}"
        if only == "timeline":
            self.timeline()
            return
        self.time("records first page", f"{d}/records", {"page[limit]": 50},
                  lambda b: len(b["data"]) == 50 or sys.exit("short page"))
        self.time("records last page", f"{d}/records", {"page[limit]": 50,
                                                        "page[cursor]": encode_cursor(60, self.versions)})
        self.time("diff 1,000 changes", f"{d}/diff", {"from": 1, "to": 2, "page[limit]": 50},
                  lambda b: print(f"    counts {b['meta']['counts']}"))
        self.time("diff 10,000 changes", f"{d}/diff", {"from": 2, "to": 3, "page[limit]": 50},
                  lambda b: print(f"    counts {b['meta']['counts']}"))
        self.time("diff whole history", f"{d}/diff", {"from": 0, "to": self.versions, "page[limit]": 50,
                                                      "kind": "deleted"},
                  lambda b: print(f"    counts {b['meta']['counts']}"), repeat=3)
        self.timeline()
        self.time("history", f"{d}/history", {"record_id": f"rec-{0:08d}"})
        self.time("filter 1 in 10", f"{d}/records", {"page[limit]": 50, "filter": "@metadata.bucket:b3"})
        self.time("filter 1 in 10,000", f"{d}/records", {"page[limit]": 50, "filter": "@metadata.rare:true"},
                  repeat=5)
        self.time("filter matching nothing", f"{d}/records", {"page[limit]": 50,
                                                             "filter": "@metadata.difficulty:impossible"}, repeat=5)

    def first_view(self) -> float:
        t0 = time.perf_counter()
        assert self.http.get(f"{K}/datasets/{self.did}/versions").status_code == 200
        return (time.perf_counter() - t0) * 1000

    def timeline(self) -> None:
        first = self.first_view()
        self.results["timeline first view"] = {"ms": round(first, 1)}
        print(f"  {'timeline first view':28} {first:8.1f} ms (once, this server's first)", flush=True)
        self.time("timeline", f"{K}/datasets/{self.did}/versions", {},
                  lambda b: print(f"    {len(b['data'])} versions"))

    def cold(self, rounds: list[float]) -> None:
        p95 = sorted(rounds)[max(0, round(0.95 * len(rounds)) - 1)]
        self.results["timeline cold first view"] = {"p50_ms": round(statistics.median(rounds), 1),
                                                    "p95_ms": round(p95, 1), "n": len(rounds),
                                                    "target_ms": TARGETS_MS["timeline"]}
        print(f"  {'timeline cold first view':28} p50 {statistics.median(rounds):8.1f} ms  p95 {p95:8.1f} ms  "
              f"({len(rounds)} restarts; target {TARGETS_MS['timeline']} ms)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--pg-admin", default=PG_ADMIN_DEFAULT)
    ap.add_argument("--only", choices=["timeline"], default=None, help="measure only this")
    ap.add_argument("--cold", type=int, default=0, help="first timeline views, each on a restarted server")
    ap.add_argument("--ref", default=None, help="run the server from `git archive REF src` (e.g. main)")
    args = ap.parse_args()
    env: dict[str, str] = {}
    if args.ref:
        src = snapshot_src(args.ref, Path(tempfile.mkdtemp(prefix="kennel-src-")))
        env["PYTHONPATH"] = f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    out: dict[str, Any] = {}
    for backend in (["sqlite", "postgres"] if args.backend == "both" else [args.backend]):
        tmp = Path(tempfile.mkdtemp(prefix="bench-ws-"))
        db_name = None
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'kennel.db'}"
        else:
            db_name = f"bench_ws_{uuid.uuid4().hex[:8]}"
            with pg_admin(args.pg_admin) as conn:
                conn.execute(f'CREATE DATABASE "{db_name}"')
            url = args.pg_admin.rsplit("/", 1)[0] + "/" + db_name
        print(f"{backend}: {args.records:,} records, {args.versions} versions", flush=True)
        server = start_server(url, backend, tmp, env=env)
        try:
            with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=600) as http:
                bench = Bench(http, server.process.pid, args.records, args.versions, args.repeat)
                bench.build()
                bench.run(args.only)
            rounds = []
            for _ in range(args.cold):
                stop_server(server)
                server = start_server(url, backend, tmp, env=env)
                with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=600) as http:
                    bench.http = http
                    assert http.get(f"{V2}/projects").status_code == 200
                    rounds.append(bench.first_view())
            if rounds:
                bench.cold(rounds)
            out[backend] = bench.results
        finally:
            stop_server(server)
            if db_name:
                with pg_admin(args.pg_admin) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    print(orjson.dumps({"records": args.records, "versions": args.versions, "server_source": args.ref or "working tree",
                        "results": out}).decode())


if __name__ == "__main__":
    main()
