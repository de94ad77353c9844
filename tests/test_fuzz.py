"""Schemathesis over the served /openapi.json, on each backend: no generated request gets a 5xx.

Only `not_a_server_error` is checked. The other checks judge conformance this API does not claim
(FastAPI's default 422 responses are documented, the API answers 400; response bodies are not
described), so they would fail on purpose-built behaviour rather than on bugs.

The run is bounded: a fixed seed, MAX_EXAMPLES generated cases per operation in the fuzzing phase, and
the coverage phase's boundary values (about 6,500 requests; 60-110 s per backend on a busy 2-core
machine). Path ids and project/dataset ids in bodies are real ones, so requests get past the 404 of an
unknown id to the code behind it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, create_database, start_server, stop_server, unique

SEED = 20240611
MAX_EXAMPLES = 20
# A hard stop well above the usual run, so a slow machine does not fail it but a hang does.
RUN_TIMEOUT = 420


@pytest.fixture(scope="module")
def fuzz_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the fuzzer changes and deletes what it finds, and other tests' servers
    fail on any traceback in their log, which a 5xx found here would leave."""
    databases = create_database(backend, tmp_path_factory)
    url = next(databases)
    server = start_server(url, backend, tmp_path_factory.mktemp("fuzz-logs"))
    try:
        yield server
    finally:
        stop_server(server)
        databases.close()


def _seed_ids(server: Server) -> dict[str, str]:
    with server.client() as http:
        def post(path: str, attributes: dict[str, Any], kind: str) -> dict[str, Any]:
            resp = http.post(path, json={"data": {"type": kind, "attributes": attributes}})
            assert resp.status_code in (200, 201), resp.text
            return resp.json()["data"]

        base = "/api/v2/llm-obs/v1"
        pid = post(f"{base}/projects", {"name": unique("fuzz")}, "projects")["id"]
        did = post(f"{base}/{pid}/datasets", {"name": unique("fuzz")}, "datasets")["id"]
        post(f"{base}/{pid}/datasets/{did}/records", {"records": [{"input": {"q": "x"}, "expected_output": "y"}]},
             "records")
        eid = post(f"{base}/experiments", {"project_id": pid, "dataset_id": did, "name": unique("fuzz")},
                   "experiments")["id"]
        qid = post(f"{base}/annotation-queues", {"project_id": pid, "name": unique("fuzz")}, "queues")["id"]
        spare = post(f"{base}/annotation-queues", {"project_id": pid, "name": unique("fuzz")}, "queues")["id"]
        added = post(f"{base}/annotation-queues/{qid}/interactions",
                     {"interactions": [{"type": "trace", "content_id": unique("trace")}]}, "interactions")
        iid = added["attributes"]["interactions"][0]["id"]
    return {"project_id": pid, "dataset_id": did, "experiment_id": eid, "queue_id": qid, "interaction_id": iid,
            "spare_queue_id": spare}


def _cursor(parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


# Values random generation seldom reaches that have tripped servers like this one: integers at and past
# 64 bits, times far out of range, well-formed cursors holding the wrong things.
EDGE_INTEGERS = [-1, 0, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**20, 10**30]
EDGE_TIMES = ["now-99999999999999d", "now+99999999999999d", str(2**63), str(10**20), "-99999999999999999999", "1e9"]
EDGE_CURSORS = [_cursor([2**63]), _cursor([10**20, 1]), _cursor(["x"]), _cursor([1.5]), _cursor([-1]),
                _cursor([None, None]), _cursor({}), _cursor([[2**63], "x"]), _cursor([2**63, 2**63])]


def _integer_body_paths(spec: dict[str, Any]) -> list[str]:
    """Where request bodies hold integers, as schemathesis body paths (`data.attributes.x`, `a[*].b`):
    bound to EDGE_INTEGERS there, since its type-wide binding reaches parameters only."""
    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(node: Any, path: str, depth: int) -> Iterator[str]:
        node = resolve(node)
        if not isinstance(node, dict) or depth > 8:
            return
        for option in node.get("anyOf", []):
            yield from walk(option, path, depth + 1)
        if node.get("type") == "integer" and path:
            yield path
        if node.get("type") == "array":
            yield from walk(node.get("items"), path + "[*]", depth + 1)
        for name, child in node.get("properties", {}).items():
            if name.replace("_", "").replace("-", "").isalnum():
                yield from walk(child, f"{path}.{name}" if path else name, depth + 1)

    found = {path for item in spec["paths"].values() for op in item.values()
             for media in op.get("requestBody", {}).get("content", {}).values()
             for path in walk(media.get("schema"), "", 0)}
    return sorted(found)


def _toml(value: Any) -> str:
    return json.dumps(value)  # the JSON of strings, integers and lists of them is TOML too


def _config(ids: dict[str, str], spec: dict[str, Any]) -> str:
    lines = ["[parameters]"]
    lines += [f'"path.{name}" = {_toml(value)}' for name, value in ids.items() if name != "spare_queue_id"]
    # Bodies naming a project or dataset name the real one half the time, unknown ones otherwise.
    lines += ['"body.data.attributes.project_id" = { dictionary = "project_ids", probability = 0.5 }',
              '"body.data.attributes.dataset_id" = { dictionary = "dataset_ids", probability = 0.5 }']
    lines += [f'"query.{name}" = {{ dictionary = "edge_cursors", probability = 0.3 }}'
              for name in ("page[cursor]", "cursor")]
    lines += [f'"query.{name}" = {{ dictionary = "edge_times", probability = 0.3 }}'
              for name in ("filter[from]", "filter[to]")]
    lines += [f'"body.{path}" = {{ dictionary = "edge_integers", probability = 0.6 }}'
              for path in _integer_body_paths(spec)]
    lines += ["", "[generation.dictionaries]",
              # Integers only: the string parameters are `anyOf: [string, null]`, which a type binding skips.
              'integer = { dictionary = "edge_integers", probability = 0.5 }',
              "", "[dictionaries]",
              f"project_ids = {{ values = {_toml([ids['project_id']])} }}",
              f"dataset_ids = {{ values = {_toml([ids['dataset_id']])} }}",
              f"edge_integers = {{ values = {_toml(EDGE_INTEGERS)} }}",
              f"edge_times = {{ values = {_toml(EDGE_TIMES)} }}",
              f"edge_cursors = {{ values = {_toml(EDGE_CURSORS)} }}",
              # Deleting the queue the other routes use would leave them nothing but 404s.
              "", "[[operations]]", 'include-method = "DELETE"',
              'include-path = "/api/v2/llm-obs/v1/annotation-queues/{queue_id}"',
              f'parameters = {{ "path.queue_id" = {_toml(ids["spare_queue_id"])} }}']
    return "\n".join(lines) + "\n"


def test_no_generated_request_gets_a_server_error(fuzz_server: Server, tmp_path: Path):
    config = tmp_path / "schemathesis.toml"
    with fuzz_server.client() as http:
        spec = http.get("/openapi.json").json()
    config.write_text(_config(_seed_ids(fuzz_server), spec))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{fuzz_server.base_url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        # Hypothesis's health checks judge the generation's speed, which a busy machine varies.
        "--suppress-health-check", "all",
        "--generation-database", "none",
        "--request-timeout", "60",
        "--header", f"DD-API-KEY: {fuzz_server.api_key}",
        "--header", f"DD-APPLICATION-KEY: {fuzz_server.app_key}",
    ]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    print(f"schemathesis on {fuzz_server.backend}: {elapsed:.0f} s\n{output[-3000:]}")
    assert proc.returncode == 0, f"schemathesis found server errors or could not run:\n{output[-20000:]}"
