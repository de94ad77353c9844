"""Benchmark of the dataset lifecycle on SQLite, against a real server process.

    .venv/bin/python bench/bench_lifecycle.py [--records 1000000] [--upload-rows 100000]

Prints one JSON summary: export throughput and the server's peak RSS while exporting, upload
throughput, clone and restore times, each next to its target.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server, stop_server

V1 = "/api/v2/llm-obs/v1"
TARGETS = {"export_records_per_s": 50_000, "export_peak_rss_mb": 300, "upload_records_per_s": 20_000,
           "clone_s": 2.0, "restore_s": 2.0}


def record(i: int) -> dict:
    """About 1.2 KB of JSON per record."""
    return {"id": f"rec-{i:08d}",
            "input": {"question": f"question {i} " + "q" * 560, "context": "c" * 200},
            "expected_output": {"answer": f"answer {i} " + "a" * 300},
            "metadata": {"source": "bench", "n": i}, "tags": [f"shard:{i % 16}"]}


def seed(c: httpx.Client, pid: str, did: str, n: int) -> None:
    started = time.perf_counter()
    for start in range(0, n, 1000):
        body = {"data": {"type": "datasets", "id": did, "attributes": {
            "insert_records": [record(i) for i in range(start, min(n, start + 1000))],
            "create_new_version": start == 0, "deduplicate": False}}}
        c.post(f"{V1}/{pid}/datasets/{did}/batch_update", json=body).raise_for_status()
        if start and start % 100_000 == 0:
            print(f"  seeded {start} records ({time.perf_counter() - started:.0f} s)", file=sys.stderr)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make(c: httpx.Client, pid: str, name: str) -> str:
    r = c.post(f"{V1}/{pid}/datasets", json={"data": {"type": "datasets", "attributes": {"name": name}}})
    r.raise_for_status()
    return r.json()["data"]["id"]


class RssSampler:
    """Samples the server's RSS every 20 ms; `phase(name)` records in `report[name]` the RSS before a phase
    and its peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.current = pid, ""
        self.peaks: dict[str, float] = {}
        self.report: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            mb = rss_mb(self.pid)
            if self.current:
                self.peaks[self.current] = max(self.peaks.get(self.current, 0.0), mb)

    @contextlib.contextmanager
    def phase(self, name: str):
        before = rss_mb(self.pid)
        self.peaks[name], self.current = before, name
        try:
            yield
        finally:
            self.current = ""
            self.peaks[name] = max(self.peaks[name], rss_mb(self.pid))
            self.report[name] = {"server_rss_before_mb": round(before), "server_peak_rss_mb": round(self.peaks[name])}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def bench_export(c: httpx.Client, pid: str, did: str) -> dict:
    started = time.perf_counter()
    size = lines = 0
    with c.stream("GET", f"{V1}/{pid}/datasets/{did}/export", params={"format": "csv"}) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    return {"records": lines - 1, "seconds": round(elapsed, 2), "records_per_s": round((lines - 1) / elapsed),
            "mb": round(size / 1e6, 1)}


def bench_upload(c: httpx.Client, pid: str, did: str, rows: int) -> dict:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["id", "input", "expected_output", "metadata", "tags"])
    for i in range(rows):
        r = record(i)
        w.writerow([r["id"], json.dumps(r["input"]), json.dumps(r["expected_output"]), json.dumps(r["metadata"]),
                    json.dumps(r["tags"])])
    body = buf.getvalue().encode()
    started = time.perf_counter()
    last = None
    with c.stream("POST", f"/api/v2/llm-obs/v2/{pid}/datasets/{did}/records/upload",
                  files={"file": ("bench.csv", body, "text/csv")}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("event:"):
                last = line[6:].strip()
            elif line.startswith("data:") and last in ("completed", "error"):
                result = json.loads(line[5:])
    elapsed = time.perf_counter() - started
    if last != "completed":
        raise SystemExit(f"upload failed: {result}")
    return {"rows": rows, "mb": round(len(body) / 1e6, 1), "seconds": round(elapsed, 2),
            "records_per_s": round(result["records_created"] / elapsed)}


def timed_post(c: httpx.Client, path: str, body: dict) -> float:
    started = time.perf_counter()
    c.post(path, json=body).raise_for_status()
    return round(time.perf_counter() - started, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="size of the exported dataset")
    ap.add_argument("--upload-rows", type=int, default=100_000, help="rows of the uploaded CSV (also the size "
                    "of the cloned and restored dataset)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as tmp:
        # A 100,000-row CSV of 1.2 KB rows is over the default 64 MiB body limit.
        server = start_server(f"sqlite:///{tmp}/bench.db", "sqlite", Path(tmp),
                              env={"KENNEL_MAX_BODY_BYTES": str(1 << 30)})
        try:
            with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=600) as c:
                pid = c.post(f"{V1}/projects", json={"data": {"type": "projects", "attributes": {
                    "name": "bench"}}}).json()["data"]["id"]
                summary: dict = {"backend": "sqlite", "targets": TARGETS}

                # Export first: the server's RSS then reflects the export, not an earlier upload.
                print(f"seeding {args.records} records for the export ...", file=sys.stderr)
                ex = make(c, pid, "export")
                started = time.perf_counter()
                seed(c, pid, ex, args.records)
                summary["seed_seconds"] = round(time.perf_counter() - started, 1)
                rss = RssSampler(server.process.pid)
                with rss.phase("export"):
                    summary["export"] = bench_export(c, pid, ex)
                summary["export"].update(rss.report["export"])
                print(json.dumps({"export": summary["export"]}), file=sys.stderr)


                print(f"uploading {args.upload_rows} rows ...", file=sys.stderr)
                up = make(c, pid, "upload")
                with rss.phase("upload"):
                    summary["upload"] = bench_upload(c, pid, up, args.upload_rows)

                print("clone and restore ...", file=sys.stderr)
                with rss.phase("clone"):
                    summary["clone"] = {"records": args.upload_rows, "seconds": timed_post(
                        c, f"{V1}/{pid}/datasets/{up}/clone",
                        {"data": {"type": "datasets", "attributes": {"name": "upload-clone"}}})}
                # v2 changes 1,000 records and deletes 1,000, v3 adds 1,000; then restore v1 as v4.
                n = args.upload_rows
                changes = {"data": {"type": "datasets", "id": up, "attributes": {
                    "update_records": [{"id": f"rec-{i:08d}", "input": {"changed": i}} for i in range(1000)],
                    "delete_records": [f"rec-{i:08d}" for i in range(1000, 2000)]}}}
                c.post(f"{V1}/{pid}/datasets/{up}/batch_update", json=changes).raise_for_status()
                c.post(f"{V1}/{pid}/datasets/{up}/batch_update", json={"data": {
                    "type": "datasets", "id": up, "attributes": {
                        "insert_records": [record(n + i) for i in range(1000)]}}}).raise_for_status()
                with rss.phase("restore"):
                    summary["restore"] = {"records": n, "from_version": 3, "to_version": 1, "seconds": timed_post(
                        c, f"{V1}/{pid}/datasets/{up}/restore",
                        {"data": {"type": "datasets", "attributes": {"dataset_version": 1}}})}
                # The worst case: every record differs between the current version and the restored one.
                with rss.phase("restore_full_swap"):
                    summary["restore_full_swap"] = {"records": n, "seconds": timed_post(
                        c, f"{V1}/{pid}/datasets/{up}/restore",
                        {"data": {"type": "datasets", "attributes": {"dataset_version": 0}}})}
                    summary["restore_full_swap"]["seconds_back"] = timed_post(
                        c, f"{V1}/{pid}/datasets/{up}/restore",
                        {"data": {"type": "datasets", "attributes": {"dataset_version": 1}}})
                rss.stop()
                for phase in ("upload", "clone", "restore", "restore_full_swap"):
                    summary[phase].update(rss.report[phase])

            summary["meets_targets"] = {
                "export_records_per_s": summary["export"]["records_per_s"] >= TARGETS["export_records_per_s"],
                "export_peak_rss_mb": summary["export"]["server_peak_rss_mb"] < TARGETS["export_peak_rss_mb"],
                "upload_records_per_s": summary["upload"]["records_per_s"] >= TARGETS["upload_records_per_s"],
                "clone_s": summary["clone"]["seconds"] <= TARGETS["clone_s"],
                "restore_s": summary["restore"]["seconds"] <= TARGETS["restore_s"],
            }
            print(json.dumps(summary, indent=2))
        finally:
            stop_server(server)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
