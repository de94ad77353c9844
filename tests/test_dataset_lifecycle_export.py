"""Export as CSV and JSONL: typed client, httpx streaming, versions, bad parameters (both backends)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_dataset_export_format import LLMObsDatasetExportFormat

from tests.test_dataset_lifecycle_helpers import (
    V1,
    content,
    error_detail,
    make_dataset,
    make_project,
    ok_batch,
    records,
)

ODD = [
    {"id": "plain", "input": "just text", "expected_output": "out", "tags": ["b:2", "a:1"]},
    {"id": "num-string", "input": "123", "expected_output": 123, "metadata": {"k": [1, {"n": None}]}},
    {"id": "obj", "input": {"q": "a, \"quoted\"\nmulti-line", "u": "üñí ✓"}, "expected_output": {"x": True}},
    {"id": "list", "input": [1, "two", None], "expected_output": None},
    {"id": "null-in", "input": None, "expected_output": ""},
    {"id": "bool", "input": False, "metadata": {}},
]


def _parse_csv(text: str) -> dict[str, tuple]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    out = {}
    for r in rows:
        assert list(r) == ["id", "input", "expected_output", "metadata", "tags"]
        dec = [json.loads(r[k]) if r[k] != "" else None for k in ("input", "expected_output", "metadata", "tags")]
        out[r["id"]] = (dec[0], dec[1], dec[2], sorted(dec[3] or []))
    return out


def test_export_csv_with_typed_client(typed, http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=ODD)
    ok_batch(http, pid, did, inserts=[{"id": "later", "input": "v2 only"}], deletes=["bool"])

    text = typed.export_llm_obs_dataset(pid, did, format=LLMObsDatasetExportFormat.CSV)
    assert isinstance(text, str)
    assert _parse_csv(text) == content(records(http, pid, did))
    v1 = typed.export_llm_obs_dataset(pid, did, version=1)
    assert _parse_csv(v1) == content(records(http, pid, did, 1))
    assert "later" not in _parse_csv(v1) and "bool" in _parse_csv(v1)
    # An empty version exports the header only.
    assert typed.export_llm_obs_dataset(pid, did, version=0).strip() == "id,input,expected_output,metadata,tags"

    for params in ({"version": 3}, {"version": -1}):
        with pytest.raises(ApiException) as exc:
            typed.export_llm_obs_dataset(pid, did, **params)
        assert exc.value.status == 400


def test_export_streams_csv_and_jsonl(http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    many = [{"id": f"r{i:05d}", "input": {"i": i, "pad": "x" * 50}, "tags": [f"n:{i % 3}"]} for i in range(12000)]
    for start in range(0, len(many), 1000):
        ok_batch(http, pid, did, inserts=many[start:start + 1000], create_new_version=start == 0)
    expected = content(records(http, pid, did))
    assert len(expected) == 12000

    with http.stream("GET", f"{V1}/{pid}/datasets/{did}/export", params={"format": "csv"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["x-record-count"] == "12000"
        assert "attachment" in r.headers["content-disposition"]
        body = b"".join(r.iter_bytes())
    parsed = _parse_csv(body.decode())
    assert parsed == expected
    assert list(parsed) == sorted(parsed), "creation order (oldest first), across pages"

    with http.stream("GET", f"{V1}/{pid}/datasets/{did}/export", params={"format": "jsonl", "version": 1}) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert len(lines) == 12000
    assert {ln["id"]: (ln["input"], ln["expected_output"], ln["metadata"], sorted(ln["tags"])) for ln in lines} \
        == expected


def test_export_jsonl_keeps_values(http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=ODD)
    r = http.get(f"{V1}/{pid}/datasets/{did}/export", params={"format": "jsonl"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    got = {ln["id"]: (ln["input"], ln["expected_output"], ln["metadata"], sorted(ln["tags"]))
           for ln in map(json.loads, r.text.splitlines())}
    assert got == content(records(http, pid, did))


def test_export_rejects_bad_parameters(http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    url = f"{V1}/{pid}/datasets/{did}/export"
    for params, name in (({"format": "xlsx"}, "format"), ({"version": "1"}, "version"),
                         ({"version": "abc"}, "version"), ({"version": "-2"}, "version")):
        r = http.get(url, params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["errors"][0]["source"]["parameter"] == name
    assert "unknown format" in error_detail(http.get(url, params={"format": "xml"}))
    assert http.get(f"{V1}/{pid}/datasets/missing/export").status_code == 404
    assert http.get(f"/api/unstable/llm-obs/v1/{pid}/datasets/{did}/export").status_code == 200
