#!/usr/bin/env python
"""Load benchmark (issue 17): the real `kennel serve` under bursts, slow clients and large bodies.

For each backend it starts a server as `kennel serve` starts it and prints one JSON summary:

  burst N     N clients connect, then all send at the same moment: a third append one record to dataset
              A, a third one record to dataset B, a third read a page of 100 from A. Throughput,
              p50/p99, the answers by status, whether every acknowledged record is stored, and how long
              a plain read took while the burst was on and right after it.
  slow        3 clients trickle an append body at 2 bytes/s and 100 connections send half their
              headers and stop, for --slow-seconds; meanwhile one normal append every 0.5 s.
  memory      --big-count appends of --big-mb MiB bodies at once; the server's RSS before, at its
              peak, and 5 s after, and the peak over the bodies the budget lets in at once.

  .venv/bin/python bench/bench_load.py --backend both
  .venv/bin/python bench/bench_load.py --backend sqlite --bursts 10,50,200,1000 --ref HEAD~3

`--ref REF` runs the server from `git archive REF src` instead of the working tree. Loopback only;
every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from tests.loadclient import Answer, hold_open, request, summary

from bench_datasets import PG_ADMIN_DEFAULT, RssSampler, pg_admin, snapshot_src

V2 = "/api/v2/llm-obs/v1"


def one_record_body(tag: str, i: int) -> bytes:
    return orjson.dumps({"data": {"type": "records", "attributes": {
        "records": [{"input": {"q": f"{tag}-{i}"}, "expected_output": "a"}]}}})


def big_body(mb: int, salt: str) -> bytes:
    filler = "x" * 1000
    n = mb * 1024 * 1024 // 1100
    records = [{"input": {"q": f"{salt}-{i}", "f": filler}, "expected_output": str(i)} for i in range(n)]
    return orjson.dumps({"data": {"type": "records", "attributes": {"records": records}}})


class Bench:
    def __init__(self, server: Any, budget_mb: float) -> None:
        self.server = server
        self.budget_mb = budget_mb
        host, port = server.base_url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        self.http = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120)
        project = self.http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": f"load-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
        self.project = project
        self.datasets = [self.new_dataset(f"d{i}") for i in range(2)]

    def new_dataset(self, name: str) -> str:
        r = self.http.post(f"{V2}/{self.project}/datasets", json={"data": {"type": "datasets",
                                                                          "attributes": {"name": name}}})
        r.raise_for_status()
        return r.json()["data"]["id"]

    def count(self, dataset: str) -> int:
        n, cursor = 0, None
        while True:
            params = {"page[limit]": "10000", **({"page[cursor]": cursor} if cursor else {})}
            body = self.http.get(f"{V2}/{self.project}/datasets/{dataset}/records", params=params).json()
            n += len(body["data"])
            cursor = body["meta"]["after"]
            if not cursor:
                return n

    def headers(self, json_body: bool = False) -> dict[str, str]:
        h = dict(self.server.headers)
        if json_body:
            h["Content-Type"] = "application/json"
        return h

    async def probe_reads(self, stop: asyncio.Event, out: list[float]) -> None:
        """A plain read every 0.25 s while the burst runs."""
        while not stop.is_set():
            a = await request(self.addr, "GET", f"{V2}/projects?page[limit]=1", headers=self.headers(), timeout=90)
            out.append(a.seconds if a.status == 200 else float("inf"))
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass

    async def burst(self, n: int) -> dict[str, Any]:
        before = [self.count(d) for d in self.datasets]
        start = asyncio.Event()
        tag = uuid.uuid4().hex[:6]
        tasks = []
        kinds = []
        for i in range(n):
            kind = i % 3
            kinds.append(kind)
            if kind < 2:
                path = f"{V2}/{self.project}/datasets/{self.datasets[kind]}/records"
                tasks.append(request(self.addr, "POST", path, headers=self.headers(True),
                                     body=one_record_body(tag, i), timeout=90, start=start))
            else:
                path = f"{V2}/{self.project}/datasets/{self.datasets[0]}/records?page[limit]=100"
                tasks.append(request(self.addr, "GET", path, headers=self.headers(), timeout=90, start=start))
        running = [asyncio.ensure_future(t) for t in tasks]
        await asyncio.sleep(min(5.0, 0.5 + n / 200))  # let every client connect
        stop = asyncio.Event()
        probes: list[float] = []
        prober = asyncio.ensure_future(self.probe_reads(stop, probes))
        began = time.monotonic()
        start.set()
        answers: list[Answer] = await asyncio.gather(*running)
        wall = time.monotonic() - began
        stop.set()
        await prober
        after_read = await request(self.addr, "GET", f"{V2}/projects?page[limit]=1", headers=self.headers())
        acked = [sum(1 for a, k in zip(answers, kinds, strict=True) if k == d and 200 <= a.status < 300) for d in (0, 1)]
        stored = [self.count(d) - b for d, b in zip(self.datasets, before, strict=True)]
        out = summary(answers, wall)
        bad = [a for a in answers if a.status == 503]
        out.update({
            "acknowledged_appends": sum(acked), "stored_appends": sum(stored),
            "acknowledged_all_stored": all(s >= a for s, a in zip(stored, acked, strict=True)),
            "read_during_burst_max_s": round(max(probes), 3) if probes else None,
            "read_during_burst_n": len(probes),
            "read_after_burst_s": round(after_read.seconds, 3) if after_read.status == 200 else after_read.status,
            "retry_after_on_every_503": all("retry-after" in a.headers for a in bad),
        })
        return out

    async def slow(self, seconds: float) -> dict[str, Any]:
        path = f"{V2}/{self.project}/datasets/{self.datasets[0]}/records"
        body = one_record_body("slow", 0) + b" " * 200
        trickles = [asyncio.ensure_future(request(self.addr, "POST", path, headers=self.headers(True), body=body,
                                                  trickle=(2, 1.0), timeout=seconds + 30))
                    for _ in range(3)]
        holders = [asyncio.ensure_future(hold_open(self.addr, seconds)) for _ in range(100)]
        normal: list[Answer] = []
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            normal.append(await request(self.addr, "POST", path, headers=self.headers(True),
                                        body=one_record_body("normal", i), timeout=30))
            i += 1
            await asyncio.sleep(0.5)
        trickled = await asyncio.gather(*trickles)
        await asyncio.gather(*holders)
        return {"normal": summary(normal, seconds),
                "trickle": [{"status": a.status, "seconds": round(a.seconds, 1), "error": a.error,
                             "detail": a.body[:200].decode(errors="replace")} for a in trickled]}

    async def memory(self, sampler: RssSampler, mb: int, count: int) -> dict[str, Any]:
        path = f"{V2}/{self.project}/datasets/{self.datasets[1]}/records"
        bodies = [big_body(mb, f"{uuid.uuid4().hex[:6]}") for _ in range(count)]
        await asyncio.sleep(1)
        baseline = sampler.rss_mb()
        sampler.phase = "memory"
        answers = await asyncio.gather(*[request(self.addr, "POST", path, headers=self.headers(True), body=b,
                                                 timeout=300) for b in bodies])
        peak = sampler.phase_peak.get("memory", 0) / 1024
        body_mb = len(bodies[0]) / 2**20
        in_flight = min(count, max(1, int(self.budget_mb // body_mb))) * body_mb
        await asyncio.sleep(5)
        return {"body_mb": round(len(bodies[0]) / 2**20, 1), "count": count, "statuses": [a.status for a in answers],
                "baseline_mb": baseline, "peak_mb": round(peak, 1), "after_5s_mb": sampler.rss_mb(),
                # The gate holds at most the budget of bodies at once; the others wait unread.
                "in_flight_mb_at_most": round(in_flight, 1),
                "peak_over_baseline_per_mb_in_flight": round((peak - baseline) / in_flight, 2)}


def run_backend(backend: str, args: argparse.Namespace, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/load.db"
    else:
        dbname = f"kennel_bench_{uuid.uuid4().hex[:10]}"
        with pg_admin(args.pg_admin) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        url = args.pg_admin.rsplit("/", 1)[0] + "/" + dbname
    server = start_server(url, backend, workdir, env=env)
    sampler = RssSampler(server.process.pid)
    sampler.start()
    result: dict[str, Any] = {"backend": backend}
    try:
        bench = Bench(server, budget_mb=args.budget_mb)
        for n in args.bursts:
            result[f"burst_{n}"] = asyncio.run(bench.burst(n))
            print(backend, f"burst {n}", orjson.dumps(result[f"burst_{n}"]).decode(), flush=True)
        if args.slow_seconds:
            result["slow"] = asyncio.run(bench.slow(args.slow_seconds))
            print(backend, "slow", orjson.dumps(result["slow"]).decode(), flush=True)
        if args.big_count:
            result["memory"] = asyncio.run(bench.memory(sampler, args.big_mb, args.big_count))
            print(backend, "memory", orjson.dumps(result["memory"]).decode(), flush=True)
    finally:
        sampler.stop_event.set()
        stop_server(server)
        if dbname:
            with pg_admin(args.pg_admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--bursts", default="10,50,200,1000", help="comma-separated client counts")
    ap.add_argument("--slow-seconds", type=float, default=40.0, help="0 skips the slow-client case")
    ap.add_argument("--big-mb", type=int, default=56)
    ap.add_argument("--big-count", type=int, default=12, help="0 skips the memory case")
    ap.add_argument("--budget-mb", type=float, default=256,
                    help="the server's KENNEL_MAX_BODIES_IN_FLIGHT_BYTES in MiB (set it in the environment too)")
    ap.add_argument("--pg-admin", default=os.environ.get("KENNEL_BENCH_PG_ADMIN", PG_ADMIN_DEFAULT))
    ap.add_argument("--ref", default=None, help="run the server from `git archive REF src`")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.bursts = [int(x) for x in args.bursts.split(",") if x]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="kennel-load-") as tmp:
        env = dict(os.environ)
        if args.ref:
            env["PYTHONPATH"] = str(snapshot_src(args.ref, Path(tmp)))
        results = [run_backend(b, args, Path(tmp), env) for b in backends]
    text = orjson.dumps(results, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
