#!/usr/bin/env python
"""Peak memory of the server over one import of a large CSV through the app's import page (upload,
preview, write with a mapping), two versions of the server interleaved: A from `git archive REF_A src`,
B from REF_B (or the working tree). Each import runs on a fresh server on a fresh database, so the
server's VmHWM (its peak resident memory since it started) covers that import and nothing else.

  .venv/bin/python bench/bench_import.py --a main --b WORKTREE --mb 60 --rounds 2

Prints, per side and round, the peak RSS, the RSS after start-up, and the seconds each step took.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.conftest import kennel_cli, start_server, stop_server

from bench_datasets import snapshot_src

PASSWORD = "bench-import-password-1"
MAPPING = {"question": "input", "answer": "expected_output", "meta": "metadata", "ref": "id"}


def csv_file(mb: int) -> bytes:
    rows = ["question,answer,meta,ref,notes"]
    size = 0
    i = 0
    while size < mb * 1_000_000:
        row = (f'"{{""q"": ""question number {i} {"x" * 150}""}}",answer {i} {"y" * 60},'
               f'"{{""n"": {i}, ""shard"": {i % 16}}}",r{i},note')
        rows.append(row)
        size += len(row) + 1
        i += 1
    return ("\n".join(rows) + "\n").encode()


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def sign_in(base: str, env: dict[str, str], database_url: str) -> httpx.Client:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    kennel_cli("users", "create", name, "--role", "member", "--password-stdin", "--database-url", database_url,
               input=PASSWORD + "\n", env=env)
    web = httpx.Client(base_url=base, timeout=900)
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text)
    assert token
    r = web.post("/login", data={"login": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"})
    assert r.status_code == 303, r.text
    return web


def import_once(web: httpx.Client, http: httpx.Client, data: bytes) -> dict[str, float]:
    pid = http.post("/api/v2/llm-obs/v1/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"bench-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
    did = http.post(f"/api/v2/llm-obs/v1/{pid}/datasets", json={"data": {"type": "datasets", "attributes": {
        "name": "import"}}}).json()["data"]["id"]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get(f"/datasets/{did}/import").text)
    assert csrf
    started = time.perf_counter()
    preview = web.post(f"/datasets/{did}/import", files={"file": ("big.csv", data, "text/csv")},
                       data={"csrf_token": csrf.group(1)}, follow_redirects=True)
    assert preview.status_code == 200, preview.text[:2000]
    staged = time.perf_counter()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*data-progress="write-progress".*?</form>',
                     preview.text, re.DOTALL)
    assert form, preview.text[:2000]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(0)))
    fields = {k: html.unescape(v) for k, v in fields.items()}
    for key, column in list(fields.items()):
        if key.startswith("column-"):
            fields[f"role-{key.split('-', 1)[1]}"] = MAPPING.get(column, "ignore")
    done = web.post(html.unescape(form.group(1)), data=fields)
    assert done.status_code == 303 and "imported=" in done.headers["location"], done.text[:2000]
    return {"upload_and_preview_s": staged - started, "write_s": time.perf_counter() - staged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default="main", help="git ref of side A")
    ap.add_argument("--b", default="WORKTREE", help="git ref of side B, or WORKTREE")
    ap.add_argument("--mb", type=int, default=60, help="size of the CSV file")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    data = csv_file(args.mb)
    rows = data.count(b"\n") - 1
    print(f"CSV: {len(data) / 1e6:.1f} MB, {rows} rows; load {os.getloadavg()}")
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {}
        for side, ref in (("A", args.a), ("B", args.b)):
            Path(tmp, side).mkdir()
            srcs[side] = str(ROOT / "src") if ref == "WORKTREE" else str(snapshot_src(ref, Path(tmp, side)))
        for rnd in range(args.rounds):
            for side in ("A", "B"):
                env = {"PYTHONPATH": srcs[side]}
                os.environ["PYTHONPATH"] = srcs[side]
                url = f"sqlite:///{tmp}/{side}-{rnd}.db"
                server = start_server(url, "sqlite", Path(tmp), env=env)
                try:
                    web = sign_in(server.base_url, env, url)
                    with server.client() as http:
                        base_kb = status_kb(server.process.pid, "VmRSS")
                        times = import_once(web, http, data)
                    peak_kb = status_kb(server.process.pid, "VmHWM")
                finally:
                    stop_server(server)
                row = {"peak_rss_mb": peak_kb / 1024, "start_rss_mb": base_kb / 1024, **times}
                results[side].append(row)
                print(f"round {rnd} {side}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items())
                      + f"; load {os.getloadavg()[0]:.1f}", flush=True)
    for side in ("A", "B"):
        print(f"{side} ({args.a if side == 'A' else args.b}): median peak RSS "
              f"{statistics.median(r['peak_rss_mb'] for r in results[side]):.0f} MB, median write "
              f"{statistics.median(r['write_s'] for r in results[side]):.1f} s")


if __name__ == "__main__":
    main()
