"""Kennel's answers have the status and shape the hosted backend's recorded answers have.

Each case replays a recorded ddtrace request (body verbatim, ids mapped to this server's) and checks
that the status is the same and that every member the real backend sent is present in ours.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import ROOT, unique

RECORDINGS = ROOT.parent / "shared" / "reference" / "recordings" / "real-backend.jsonl"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

pytestmark = pytest.mark.skipif(not RECORDINGS.exists(), reason="shared/reference recordings not present")


def _load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RECORDINGS.read_text().splitlines() if line.strip()]


def _template(path: str) -> str:
    return re.sub(UUID, "{id}", path.split("?")[0])


def examples(method: str, template: str, status: int, where=lambda rec: True) -> list[dict[str, Any]]:
    found = [r for r in _load() if r["request"]["method"] == method and _template(r["request"]["path"]) == template
             and r["response"]["status"] == status and where(r)]
    assert found, f"no recording of {method} {template} {status}"
    return found


# Members whose insides are the user's data, not the API's shape.
USER_CONTENT = {"input", "expected_output", "metadata", "config"}


def missing_members(recorded: Any, ours: Any, where: str = "") -> list[str]:
    """Paths of members present in the recorded answer but absent from ours (lists: first items)."""
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return [where or "/"]
        out: list[str] = []
        for key, value in recorded.items():
            if key not in ours:
                out.append(f"{where}/{key}")
            elif key not in USER_CONTENT:
                out.extend(missing_members(value, ours[key], f"{where}/{key}"))
        return out
    if isinstance(recorded, list) and recorded and isinstance(ours, list) and ours:
        return missing_members(recorded[0], ours[0], f"{where}/0")
    return []


def _map(value: str, ids: dict[str, str]) -> str:
    for theirs, mine in ids.items():
        value = value.replace(theirs, mine)
    return value


def replay(http, rec: dict[str, Any], ids: dict[str, str]):
    req = rec["request"]
    body = req["body"]
    content = _map(json.dumps(body), ids).encode() if body is not None else None
    resp = http.request(req["method"], _map(req["path"], ids), content=content,
                        headers={"content-type": "application/json"} if content else {})
    assert resp.status_code == rec["response"]["status"], (req["path"], resp.text)
    if rec["response"]["body"] is not None:
        ours = resp.json()
        assert missing_members(rec["response"]["body"], ours) == [], (rec["response"]["body"], ours)
    return resp


@pytest.fixture
def ids(http) -> dict[str, str]:
    """Every project id in the recordings mapped to a fresh project on this server."""
    mapping: dict[str, str] = {}
    for rec in _load():
        match = re.match(rf"/api/(?:unstable|v2)/llm-obs/v1/({UUID})/datasets", rec["request"]["path"])
        if match and match.group(1) not in mapping:
            resp = http.post("/api/unstable/llm-obs/v1/projects",
                             json={"data": {"type": "projects", "attributes": {"name": unique("rec")}}})
            mapping[match.group(1)] = resp.json()["data"]["id"]
    return mapping


def test_project_create_or_get(http):
    rec = examples("POST", "/api/unstable/llm-obs/v1/projects", 200)[0]
    first = replay(http, rec, {})
    second = replay(http, rec, {})
    assert first.json()["data"]["id"] == second.json()["data"]["id"]


def test_dataset_create_new_and_existing(http, ids):
    rec = examples("POST", "/api/unstable/llm-obs/v1/{id}/datasets", 200)[0]
    rec["request"]["body"]["data"]["attributes"]["name"] = unique("rec-ds")
    created = replay(http, rec, ids).json()["data"]
    assert created["attributes"]["current_version"] == 0
    existing = [r for r in examples("POST", "/api/unstable/llm-obs/v1/{id}/datasets", 200)
                if "dataset_type" in r["response"]["body"]["data"]["attributes"]]
    assert existing, "the recordings show get-or-create answers"
    again = replay(http, {**rec, "response": existing[0]["response"]}, ids).json()["data"]
    assert again["id"] == created["id"]


def _dataset(http, ids, project_theirs: str) -> str:
    resp = http.post(f"/api/unstable/llm-obs/v1/{ids[project_theirs]}/datasets",
                     json={"data": {"type": "datasets", "attributes": {"name": unique("rec-ds")}}})
    return resp.json()["data"]["id"]


def _ids_of(rec) -> tuple[str, str]:
    project, dataset = re.findall(UUID, rec["request"]["path"])[:2]
    return project, dataset


@pytest.mark.parametrize("kind", ["insert", "update", "delete"])
def test_batch_update_shapes(http, ids, kind):
    def has(rec, key):
        return bool(rec["request"]["body"]["data"]["attributes"].get(key) or [])

    key = {"insert": "insert_records", "update": "update_records", "delete": "delete_records"}[kind]
    rec = examples("POST", "/api/v2/llm-obs/v1/{id}/datasets/{id}/batch_update", 200,
                   lambda r: has(r, key) and r["response"]["body"]["data"])[0]
    project, dataset = _ids_of(rec)
    mine = _dataset(http, ids, project)
    mapping = {**ids, dataset: mine}
    attrs = rec["request"]["body"]["data"]["attributes"]
    existing = [u["id"] for u in attrs.get("update_records") or []] + list(attrs.get("delete_records") or [])
    if existing:
        seed = {"data": {"type": "datasets", "id": mine, "attributes": {
            "insert_records": [{"id": rid, "input": {"seed": rid}} for rid in existing]}}}
        assert http.post(f"/api/v2/llm-obs/v1/{ids[project]}/datasets/{mine}/batch_update", json=seed).status_code == 200
    resp = replay(http, rec, mapping).json()
    assert resp["data"][0]["attributes"]["version"] >= 1
    if kind == "delete":
        assert any("deleted_at" in item["attributes"] for item in resp["data"])


def test_records_list_and_bad_version(http, ids):
    rec = examples("GET", "/api/v2/llm-obs/v1/{id}/datasets/{id}/records", 200,
                   lambda r: "filter[tags]" in r["request"]["path"] and r["response"]["body"]["data"])[0]
    project, dataset = _ids_of(rec)
    mine = _dataset(http, ids, project)
    recorded = rec["response"]["body"]["data"][0]
    seed = {"data": {"type": "datasets", "id": mine, "attributes": {"insert_records": [{
        "id": recorded["id"], "input": recorded["attributes"]["input"],
        "expected_output": recorded["attributes"].get("expected_output"),
        "tags": recorded["attributes"].get("tags", [])}]}}}
    assert http.post(f"/api/v2/llm-obs/v1/{ids[project]}/datasets/{mine}/batch_update", json=seed).status_code == 200
    body = replay(http, rec, {**ids, dataset: mine}).json()
    assert [r["id"] for r in body["data"]] == [recorded["id"]] and body["meta"]["after"] == ""

    bad = examples("GET", "/api/v2/llm-obs/v1/{id}/datasets/{id}/records", 400)[0]
    project, dataset = _ids_of(bad)
    mine = _dataset(http, ids, project)
    resp = replay(http, bad, {**ids, dataset: mine})
    assert resp.json()["errors"][0]["detail"] == bad["response"]["body"]["errors"][0]["detail"]


def test_dataset_list_by_name_and_delete(http, ids):
    rec = examples("GET", "/api/v2/llm-obs/v1/{id}/datasets", 200, lambda r: r["response"]["body"]["data"])[0]
    project = re.findall(UUID, rec["request"]["path"])[0]
    name = rec["response"]["body"]["data"][0]["attributes"]["name"]
    http.post(f"/api/unstable/llm-obs/v1/{ids[project]}/datasets",
              json={"data": {"type": "datasets", "attributes": {"name": name}}})
    listed = replay(http, rec, ids).json()["data"]
    assert [d["attributes"]["name"] for d in listed] == [name]

    delete = examples("POST", "/api/unstable/llm-obs/v1/datasets/delete", 200)[0]
    theirs = delete["request"]["body"]["data"]["attributes"]["dataset_ids"][0]
    replay(http, delete, {theirs: listed[0]["id"]})
    assert replay.__name__ and http.get(f"/api/v2/llm-obs/v1/{ids[project]}/datasets",
                                        params={"filter[name]": name}).json()["data"] == []
