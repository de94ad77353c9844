"""Annotation queue throughput against a real `kennel serve` on a fresh SQLite file, measured over HTTP.

    .venv/bin/python bench/bench_annotations.py [--interactions 10000] [--batch 500]

Builds a queue with N trace interactions, upserts 2*N annotations in batches (two keys, each
annotating every interaction), then times the reads and a bulk delete. Prints one JSON summary.
Times are wall clock over HTTP until the whole response body has arrived; the client's own JSON
decoding of the large queue read is reported separately.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server, stop_server

TARGETS = {"upsert_annotations_per_s": 5000, "read_queue_s": 1.0, "lookup_100_content_ids_s": 0.05,
           "delete_1000_annotations_s": 0.2}
QUEUES = "/api/v2/llm-obs/v1/annotation-queues"


def check(resp: httpx.Response, status: int = 200) -> dict:
    if resp.status_code != status:
        raise SystemExit(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json() if resp.content else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--keep", metavar="DIR", help="build the database in DIR and keep it (for profiling)")
    args = parser.parse_args()
    n, batch = args.interactions, args.batch

    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        server = start_server(url, "sqlite", Path(tmp))
        try:
            second_keys = server.new_key("bench-second")
            with server.client() as c, server.client(headers={"DD-API-KEY": second_keys[0],
                                                              "DD-APPLICATION-KEY": second_keys[1]}) as c2:
                project = check(c.post("/api/v2/llm-obs/v1/projects", json={
                    "data": {"type": "projects", "attributes": {"name": "bench-annotations"}}}))["data"]["id"]
                queue = check(c.post(QUEUES, json={"data": {"type": "queues", "attributes": {
                    "project_id": project, "name": "bench", "annotation_schema": {"label_schemas": [
                        {"name": "quality", "type": "score", "min": 1, "max": 5, "is_integer": True,
                         "is_required": True},
                        {"name": "topic", "type": "categorical", "values": ["billing", "shipping", "other"]},
                        {"name": "notes", "type": "text"}]}}}}), 201)["data"]
                qid = queue["id"]
                labels = {lab["name"]: lab["id"] for lab in queue["attributes"]["annotation_schema"]["label_schemas"]}

                content_ids = [f"trace-{i:06d}" for i in range(n)]
                started = time.perf_counter()
                interaction_ids: list[str] = []
                for i in range(0, n, 1000):
                    body = {"data": {"type": "interactions", "attributes": {"interactions": [
                        {"type": "trace", "content_id": cid} for cid in content_ids[i:i + 1000]]}}}
                    added = check(c.post(f"{QUEUES}/{qid}/interactions", json=body), 201)
                    interaction_ids += [it["id"] for it in added["data"]["attributes"]["interactions"]]
                add_s = time.perf_counter() - started

                def annotation(iid: str, i: int) -> dict:
                    return {"interaction_id": iid, "label_values": [
                        {"label_schema_id": labels["quality"], "value": float(1 + i % 5)},
                        {"label_schema_id": labels["topic"], "value": ("billing", "shipping", "other")[i % 3]},
                        {"label_schema_id": labels["notes"], "value": f"note {i}"}]}

                bodies = []
                for client in (c, c2):
                    for i in range(0, n, batch):
                        items = [annotation(iid, i + k) for k, iid in enumerate(interaction_ids[i:i + batch])]
                        bodies.append((client, orjson.dumps(
                            {"data": {"type": "annotations", "attributes": {"annotations": items}}})))
                stored_ids: list[str] = []
                started = time.perf_counter()
                for client, body in bodies:
                    out = check(client.post(f"{QUEUES}/{qid}/annotations", content=body,
                                            headers={"content-type": "application/json"}))
                    attrs = out["data"]["attributes"]
                    if attrs["errors"]:
                        raise SystemExit(f"unexpected upsert errors: {attrs['errors'][:3]}")
                    stored_ids += [a["id"] for a in attrs["annotations"]]
                upsert_s = time.perf_counter() - started
                total_annotations = len(stored_ids)

                read_times, parse_times = [], []
                for _ in range(3):
                    started = time.perf_counter()
                    resp = c.get(f"{QUEUES}/{qid}/annotated-interactions")  # returns with the whole body read
                    read_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    body = check(resp)
                    parse_times.append(time.perf_counter() - started)
                items = body["data"]["attributes"]["annotated_interactions"]
                assert len(items) == n and sum(len(it["annotations"]) for it in items) == total_annotations

                lookup_times = []
                for r in range(5):
                    wanted = content_ids[r * 100: r * 100 + 100]
                    started = time.perf_counter()
                    found = check(c.get("/api/v2/llm-obs/v1/annotated-interactions",
                                        params=[("contentIds", cid) for cid in wanted]))
                    lookup_times.append(time.perf_counter() - started)
                    assert found["data"]["attributes"]["total_count"] == 100

                doomed = stored_ids[:1000]
                started = time.perf_counter()
                deleted = check(c.post(f"{QUEUES}/{qid}/annotations/delete", json={
                    "data": {"type": "annotations", "attributes": {"annotation_ids": doomed}}}))
                delete_s = time.perf_counter() - started
                assert len(deleted["data"]["attributes"]["annotation_ids"]) == 1000
        finally:
            stop_server(server)
        if "Traceback" in server.log():
            raise SystemExit(server.log())

    summary = {
        "backend": "sqlite",
        "interactions": n,
        "annotations": total_annotations,
        "batch": batch,
        "add_interactions_per_s": round(n / add_s),
        "upsert_annotations_per_s": round(total_annotations / upsert_s),
        "read_queue_s": round(median(read_times), 3),
        "read_queue_response_mb": round(len(resp.content) / 1e6, 1),
        "read_queue_client_json_decode_s": round(median(parse_times), 3),
        "lookup_100_content_ids_s": round(median(lookup_times), 4),
        "delete_1000_annotations_s": round(delete_s, 4),
    }
    summary["meets_targets"] = {
        "upsert_annotations_per_s": summary["upsert_annotations_per_s"] >= TARGETS["upsert_annotations_per_s"],
        "read_queue_s": summary["read_queue_s"] <= TARGETS["read_queue_s"],
        "lookup_100_content_ids_s": summary["lookup_100_content_ids_s"] <= TARGETS["lookup_100_content_ids_s"],
        "delete_1000_annotations_s": summary["delete_1000_annotations_s"] <= TARGETS["delete_1000_annotations_s"],
    }
    summary["targets"] = TARGETS
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
