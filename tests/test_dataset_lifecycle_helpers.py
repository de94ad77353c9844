"""Small HTTP helpers shared by the dataset lifecycle, upload and CLI tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import unique

V1 = "/api/v2/llm-obs/v1"


def make_project(http: httpx.Client, name: str | None = None) -> str:
    r = http.post(f"{V1}/projects", json={"data": {"type": "projects", "attributes": {"name": name or unique("p")}}})
    assert r.status_code == 200, r.text
    return r.json()["data"]["id"]


def make_dataset(http: httpx.Client, pid: str, name: str | None = None) -> str:
    r = http.post(f"{V1}/{pid}/datasets",
                  json={"data": {"type": "datasets", "attributes": {"name": name or unique("ds")}}})
    assert r.status_code == 200, r.text
    return r.json()["data"]["id"]


def batch(http: httpx.Client, pid: str, did: str, *, inserts: list[dict[str, Any]] | None = None,
          updates: list[dict[str, Any]] | None = None, deletes: list[str] | None = None,
          create_new_version: bool = True) -> httpx.Response:
    return http.post(f"{V1}/{pid}/datasets/{did}/batch_update", json={"data": {
        "type": "datasets", "id": did, "attributes": {
            "insert_records": inserts or [], "update_records": updates or [], "delete_records": deletes or [],
            "create_new_version": create_new_version, "deduplicate": False}}})


def ok_batch(http: httpx.Client, pid: str, did: str, **kwargs: Any) -> int:
    r = batch(http, pid, did, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["attributes"]["version"]


def records(http: httpx.Client, pid: str, did: str, version: int | None = None) -> dict[str, dict[str, Any]]:
    """Every record at `version` (all pages), by record id: {input, expected_output, metadata, tags, canonical_id}."""
    out: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"page[limit]": 1000}
    if version is not None:
        params["filter[version]"] = version
    while True:
        r = http.get(f"{V1}/{pid}/datasets/{did}/records", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        for item in body["data"]:
            a = item["attributes"]
            out[item["id"]] = {k: a.get(k) for k in ("input", "expected_output", "metadata", "tags",
                                                     "canonical_id")}
        if not body["meta"]["after"]:
            return out
        params = {"page[cursor]": body["meta"]["after"]}


def content(recs: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {rid: (r["input"], r["expected_output"], r["metadata"], sorted(r["tags"] or [])) for rid, r in recs.items()}


def dataset_attrs(http: httpx.Client, pid: str, did: str) -> dict[str, Any]:
    r = http.get(f"{V1}/{pid}/datasets", params={"filter[id]": did})
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["attributes"]


def error_detail(r: httpx.Response) -> str:
    return r.json()["errors"][0]["detail"]
