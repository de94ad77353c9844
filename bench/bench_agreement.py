"""The queue owner's bulk work against a real `kennel serve`: agreement for a whole queue, and its items into
a dataset as one version.

    .venv/bin/python bench/bench_agreement.py [--items 10000] [--database-url postgresql://...] [--repeat 5]
    .venv/bin/python bench/bench_agreement.py --ref main --repeat 20   # this tree against main, interleaved

Builds a queue of N trace interactions (each with a root span sent through the intake), annotated by 3
reviewers on 5 labels (boolean with pass/fail, categorical, integer score 1-5, continuous score, text),
about four in five items agreeing. Then times, over HTTP until the whole body has arrived:
  agreement    GET  /api/kennel/v1/annotation-queues/{id}/agreement (computed afresh on every call; no cache)
  to_dataset   POST /api/kennel/v1/annotation-queues/{id}/to-dataset, items=all: N records into a new
               dataset as one version (each run a new dataset)
and the same agreement computed in-process on the server's database (service call, no HTTP), to separate
the server's work from the transport. Prints one JSON summary with medians and the targets.
Times on a shared machine are noisy: compare runs interleaved, not across days. With --ref REF a second
server runs `git archive REF src` on the same database, and the agreement requests alternate between the
two (which goes first alternates too), after one untimed request each; both answers must be identical. Neither version keeps a cache, so
every request is a first computation.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from tests.conftest import start_server, stop_server

from bench_datasets import proc_cpu_s, snapshot_src, speed_probe_ms

TARGETS = {"agreement_s": 0.3, "to_dataset_s": 2.0}
V2 = "/api/v2/llm-obs/v1"
OWN = "/api/kennel/v1/annotation-queues"
LABELS = [
    {"name": "helpful", "type": "boolean", "has_assessment": True},
    {"name": "topic", "type": "categorical", "values": ["billing", "tech", "account", "other"]},
    {"name": "quality", "type": "score", "min": 1, "max": 5, "is_integer": True},
    {"name": "confidence", "type": "score", "min": 0, "max": 1},
    {"name": "comment", "type": "text"},
]
WORDS = ["the", "answer", "is", "polite", "correct", "wrong", "slow", "helpful", "missing", "invoice", "refund", "account", "password"]


def check(resp: httpx.Response, *statuses: int) -> dict:
    if resp.status_code not in (statuses or (200,)):
        raise SystemExit(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json() if resp.content else {}


def values(rng: random.Random, ids: dict[str, str], base: tuple) -> list[dict]:
    helpful, topic, quality, confidence, comment = base
    if rng.random() < 0.2:  # this reviewer departs from the shared reading
        helpful, quality = not helpful, max(1, min(5, quality + rng.choice((-1, 1))))
        confidence = round(rng.random(), 2)
    return [{"label_schema_id": ids["helpful"], "value": helpful, "assessment": "pass" if helpful else "fail"},
            {"label_schema_id": ids["topic"], "value": topic},
            {"label_schema_id": ids["quality"], "value": quality},
            {"label_schema_id": ids["confidence"], "value": confidence},
            {"label_schema_id": ids["comment"], "value": " ".join(rng.sample(WORDS, 3)) + f" {comment}"}]


def build(c: httpx.Client, keys: list[httpx.Client], n: int) -> tuple[str, str]:
    rng = random.Random(19)
    project = check(c.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
        "name": f"bench-agreement-{uuid.uuid4().hex[:6]}"}}}))["data"]["id"]
    queue = check(c.post(f"{V2}/annotation-queues", json={"data": {"type": "queues", "attributes": {
        "project_id": project, "name": "bench", "annotation_schema": {"label_schemas": LABELS}}}}), 201)["data"]
    ids = {lab["name"]: lab["id"] for lab in queue["attributes"]["annotation_schema"]["label_schemas"]}
    traces = [uuid.uuid4().hex for _ in range(n)]
    now = time.time_ns()
    for start in range(0, n, 1000):
        spans = [{"trace_id": t, "span_id": "1", "parent_id": "undefined", "name": "root", "start_ns": now + i,
                  "duration": 1000, "status": "ok", "meta": {"span": {"kind": "workflow"},
                                                              "input": {"value": f"question {start + i}"}},
                  "metrics": {}, "tags": ["ml_app:bench"]} for i, t in enumerate(traces[start:start + 1000])]
        check(c.post("/api/v2/llmobs", json=[{"_dd.stage": "raw", "event_type": "span", "spans": spans}]), 202)
    interactions: list[str] = []
    for start in range(0, n, 1000):
        body = {"data": {"type": "interactions", "attributes": {"interactions": [
            {"type": "trace", "content_id": t} for t in traces[start:start + 1000]]}}}
        got = check(c.post(f"{V2}/annotation-queues/{queue['id']}/interactions", json=body), 200, 201)
        interactions += [i["id"] for i in got["data"]["attributes"]["interactions"]]
    bases = [(rng.random() < 0.6, rng.choice(LABELS[1]["values"]), rng.randint(1, 5), round(rng.random(), 2),
              rng.choice(WORDS)) for _ in interactions]
    for k in keys:
        for start in range(0, n, 1000):
            batch = [{"interaction_id": iid, "label_values": values(rng, ids, bases[start + j])}
                     for j, iid in enumerate(interactions[start:start + 1000])]
            check(k.post(f"{V2}/annotation-queues/{queue['id']}/annotations", json={"data": {
                "type": "annotations", "attributes": {"annotations": batch}}}))
    return project, queue["id"]


def in_process(database_url: str, queue_id: str, repeat: int) -> list[float]:
    from kennel.annotations.owner import queue_agreement
    from kennel.db.engine import make_engine
    from kennel.db.session import make_sessionmaker, unit_of_work

    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    times = []
    for _ in range(repeat):
        with unit_of_work(factory, write=False) as session:
            t0 = time.perf_counter()
            queue_agreement(session, queue_id=queue_id)
            times.append(time.perf_counter() - t0)
    engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a fresh SQLite file)")
    parser.add_argument("--keep", metavar="DIR", help="build the SQLite database in DIR and keep it (for profiling)")
    parser.add_argument("--ref", help="also run `git archive REF src` on the same database; agreement A/B only")
    args = parser.parse_args()
    if args.ref:
        ab(args)
        return
    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        backend = "postgres" if url.startswith("postgres") else "sqlite"
        server = start_server(url, backend, Path(tmp))
        try:
            reviewer_keys = [server.new_key(f"reviewer-{i}") for i in range(3)]
            reviewers = [server.client(headers={"DD-API-KEY": a, "DD-APPLICATION-KEY": b}) for a, b in reviewer_keys]
            with server.client() as c:
                t0 = time.perf_counter()
                _, queue_id = build(c, reviewers, args.items)
                build_s = time.perf_counter() - t0
                agreement, handoff = [], []
                probes = [speed_probe_ms()]
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    body = check(c.get(f"{OWN}/{queue_id}/agreement"))
                    agreement.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    done = check(c.post(f"{OWN}/{queue_id}/to-dataset", json={"data": {"type": "to_dataset",
                                 "attributes": {"items": "all", "dataset_name": f"bench-{uuid.uuid4().hex[:8]}"}}}),
                                 201)
                    handoff.append(time.perf_counter() - t0)
                    assert done["data"]["attributes"]["items"] == args.items, done
                probes.append(speed_probe_ms())
            for r in reviewers:
                r.close()
            service = in_process(url, queue_id, args.repeat)
        finally:
            stop_server(server)
    alphas = {lab["name"]: lab["alpha"] if lab["level"] != "text" else lab["similarity"]
              for lab in body["data"]["attributes"]["labels"]}
    print(orjson.dumps({
        "backend": backend, "items": args.items, "reviewers": 3, "labels": len(LABELS), "build_s": round(build_s, 1),
        "agreement_s_median": round(median(agreement), 3), "agreement_s_first": round(agreement[0], 3),
        "agreement_s_all": [round(t, 3) for t in agreement],
        "queue_id": queue_id, "agreement_in_process_s_median": round(median(service), 3),
        "to_dataset_s_median": round(median(handoff), 3), "to_dataset_s_all": [round(t, 3) for t in handoff],
        "alphas": alphas, "speed_probe_ms_before_after": probes, "targets": TARGETS}, option=orjson.OPT_INDENT_2).decode())


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ab(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        backend = "postgres" if url.startswith("postgres") else "sqlite"
        here = start_server(url, backend, tmp)
        servers = {"ref": None, "this": here}
        try:
            reviewer_keys = [here.new_key(f"reviewer-{i}") for i in range(3)]
            reviewers = [here.client(headers={"DD-API-KEY": a, "DD-APPLICATION-KEY": b}) for a, b in reviewer_keys]
            with here.client() as c:
                _, queue_id = build(c, reviewers, args.items)
            for r in reviewers:
                r.close()
            src = snapshot_src(args.ref, Path(tempfile.mkdtemp(prefix="kennel-src-", dir=tmp)))
            servers["ref"] = start_server(url, backend, tmp, env={"PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
            clients = {side: server.client() for side, server in servers.items() if server is not None}
            pids = {side: server.process.pid for side, server in servers.items() if server is not None}
            times: dict[str, list[float]] = {"ref": [], "this": []}
            cpu: dict[str, list[float]] = {"ref": [], "this": []}  # the server process's CPU per request
            bodies = {}
            for client in clients.values():  # each process's own warm-up (imports, compiled statements), untimed
                check(client.get(f"{OWN}/{queue_id}/agreement"))
            probes = [speed_probe_ms()]
            for turn in range(args.repeat):
                for side in (("ref", "this") if turn % 2 == 0 else ("this", "ref")):
                    c0, t0 = proc_cpu_s(pids[side]), time.perf_counter()
                    resp = clients[side].get(f"{OWN}/{queue_id}/agreement")
                    times[side].append(time.perf_counter() - t0)
                    cpu[side].append(proc_cpu_s(pids[side]) - c0)
                    bodies[side] = check(resp)
            probes.append(speed_probe_ms())
            for client in clients.values():
                client.close()
        finally:
            for server in servers.values():
                if server is not None:
                    stop_server(server)
    print(orjson.dumps({
        "backend": backend, "items": args.items, "ref": args.ref, "queue_id": queue_id, "requests_each": args.repeat,
        "agreement_s": {side: {"median": round(median(t), 3), "p95": round(p95(t), 3), "first": round(t[0], 3),
                               "all": [round(x, 3) for x in t]} for side, t in times.items()},
        # Clock ticks of 10 ms: a median over many requests; on PostgreSQL the database's share is not in it.
        "server_cpu_s_median": {side: round(median(c), 3) for side, c in cpu.items()},
        "same_answer": bodies["ref"] == bodies["this"], "load_average": [round(x, 2) for x in os.getloadavg()],
        "speed_probe_ms_before_after": probes, "target_s": TARGETS["agreement_s"]}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
