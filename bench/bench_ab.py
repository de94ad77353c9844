#!/usr/bin/env python
"""Per-request A/B of two versions of the server, interleaved request by request.

Starts one server from `git archive REF_A src` and one from REF_B (or the working tree), each on its
own fresh database of the chosen backend, then sends the same requests to each in turn, A B A B ...:
typed appends of 1,000 records (~1.2 KB each) and reads of a 1,000-record page, small requests
(a 1-record append, a project list), and the other shapes of record change: 1,000 inserts with ids,
100 updates, a delete of 100 records by id, and a page of an old version. Turn by turn, the machine's drift meets both sides alike. Prints
the median and p90 latency of each kind of request on each side, and the ratio B/A of the medians.

  .venv/bin/python bench/bench_ab.py --a 82f1c81 --b HEAD --backend sqlite --rounds 40

The cost of the access log: the same version on both sides, one logging each request, one not:

  .venv/bin/python bench/bench_ab.py --a HEAD --b HEAD --a-log-level warning --b-log-level info
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

from bench_datasets import PG_ADMIN_DEFAULT, append_body, batch_update_body, make_record, pg_admin, snapshot_src

V2 = "/api/v2/llm-obs/v1"


class Side:
    def __init__(self, label: str, server: Any) -> None:
        self.label = label
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, headers={**server.headers,
                                                                    "Content-Type": "application/json"}, timeout=120)
        self.project = self.http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": f"ab-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
        self.dataset = self.http.post(f"{V2}/{self.project}/datasets", json={"data": {"type": "datasets",
                                                                                      "attributes": {"name": "d"}}}
                                      ).json()["data"]["id"]
        self.times: dict[str, list[float]] = {}

    def timed(self, kind: str, method: str, path: str, body: bytes | None = None,
              ok: tuple[int, ...] = (200,)) -> None:
        began = time.perf_counter()
        r = self.http.request(method, path, content=body)
        took = time.perf_counter() - began
        if r.status_code not in ok:
            raise RuntimeError(f"{self.label} {kind}: {r.status_code} {r.text[:300]}")
        self.times.setdefault(kind, []).append(took * 1000)


def one_round(side: Side, i: int) -> None:
    records = [make_record(i * 1000 + k, with_id=False, salt=side.label) for k in range(1000)]
    side.timed("typed append 1,000", "POST", f"{V2}/{side.project}/datasets/{side.dataset}/records",
               append_body(records))
    side.timed("page read 1,000", "GET", f"{V2}/{side.project}/datasets/{side.dataset}/records?page[limit]=1000")
    small = orjson.dumps({"data": {"type": "records", "attributes": {"records": [
        {"input": {"q": f"small-{side.label}-{i}"}}]}}})
    side.timed("append 1", "POST", f"{V2}/{side.project}/datasets/{side.dataset}/records", small)
    side.timed("list projects", "GET", f"{V2}/projects?page[limit]=10")
    # The other shapes of record change: inserts with ids (looked up first), updates (the general plan),
    # a delete by id (queued closings), and a page of an old version.
    base = f"{V2}/{side.project}/datasets/{side.dataset}"
    keyed = [make_record(i * 1000 + k, with_id=True, salt=side.label) for k in range(1000)]
    side.timed("batch insert 1,000 with ids", "POST", f"{base}/batch_update",
               batch_update_body(side.dataset, keyed, new_version=True))
    changed = [{"id": r["id"], "input": {"changed": r["id"]}} for r in keyed[:100]]
    side.timed("update 100", "POST", f"{base}/batch_update",
               batch_update_body(side.dataset, changed, new_version=True, key="update_records"))
    gone = orjson.dumps({"data": {"type": "records", "attributes": {"record_ids": [r["id"] for r in keyed[100:200]]}}})
    side.timed("delete 100", "POST", f"{base}/records/delete", gone, ok=(204,))
    side.timed("old version page 1,000", "GET", f"{base}/records?page[limit]=1000&filter[version]=1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="git ref of side A")
    ap.add_argument("--b", default=None, help="git ref of side B (default: the working tree)")
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--a-log-level", default="warning", help="side A's --log-level (info: an access line per request)")
    ap.add_argument("--b-log-level", default="warning", help="side B's --log-level")
    ap.add_argument("--pg-admin", default=os.environ.get("KENNEL_BENCH_PG_ADMIN", PG_ADMIN_DEFAULT))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kennel-ab-") as tmp:
        sides, cleanup = [], []
        for label, ref, level in (("A", args.a, args.a_log_level), ("B", args.b, args.b_log_level)):
            env = dict(os.environ)
            if ref:
                where = Path(tmp) / label
                where.mkdir()
                env["PYTHONPATH"] = str(snapshot_src(ref, where))
            if args.backend == "sqlite":
                url = f"sqlite:///{tmp}/{label}.db"
            else:
                name = f"kennel_ab_{uuid.uuid4().hex[:10]}"
                with pg_admin(args.pg_admin) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                cleanup.append(name)
                url = args.pg_admin.rsplit("/", 1)[0] + "/" + name
            sides.append(Side(label, start_server(url, args.backend, Path(tmp), env=env, log_level=level)))
        try:
            for side in sides:  # warm-up, off the record
                one_round(side, -1)
                side.times.clear()
            for i in range(args.rounds):
                for side in (sides if i % 2 == 0 else sides[::-1]):
                    one_round(side, i)
        finally:
            for side in sides:
                stop_server(side.server)
            for name in cleanup:
                with pg_admin(args.pg_admin) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    a, b = sides
    out = {"backend": args.backend, "a": args.a, "b": args.b or "working tree", "rounds": args.rounds,
           "a_log_level": args.a_log_level, "b_log_level": args.b_log_level}
    for kind in a.times:
        ma, mb = statistics.median(a.times[kind]), statistics.median(b.times[kind])
        p90 = lambda xs: sorted(xs)[int(0.9 * (len(xs) - 1))]  # noqa: E731
        out[kind] = {"A_median_ms": round(ma, 2), "B_median_ms": round(mb, 2), "A_p90_ms": round(p90(a.times[kind]), 2),
                     "B_p90_ms": round(p90(b.times[kind]), 2), "B_over_A": round(mb / ma, 3)}
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
