"""File uploads: the typed SSE route (typed client and httpx streaming), ddtrace's CSV route, bad files."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import run_ddtrace, unique
from tests.test_dataset_lifecycle_helpers import (
    V1,
    content,
    dataset_attrs,
    error_detail,
    make_dataset,
    make_project,
    ok_batch,
    records,
)

V2UP = "/api/v2/llm-obs/v2"


def csv_bytes(rows: list[list[Any]], header: list[str] | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header or ["id", "input", "expected_output", "metadata", "tags"])
    w.writerows(rows)
    return buf.getvalue().encode()


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """Read a Server-Sent Events stream as (event, data) pairs."""
    events, name, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and name is not None:
            events.append((name, json.loads("\n".join(data))))
            name, data = None, []
    return events


def upload(http: httpx.Client, pid: str, did: str, body: bytes, filename: str = "records.csv",
           ctype: str = "text/csv", **params: Any) -> tuple[int, Any]:
    files = {"file": (filename, body, ctype)}
    with http.stream("POST", f"{V2UP}/{pid}/datasets/{did}/records/upload", files=files, params=params) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, r.json()
        assert r.headers["content-type"].startswith("text/event-stream")
        return 200, sse_events(r)


def test_sse_upload_read_with_httpx_streaming(http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    rows = [[f"id-{i}", json.dumps({"q": i}), f"answer {i}", json.dumps({"i": i}), json.dumps(["src:csv"])]
            for i in range(12000)]
    status, events = upload(http, pid, did, csv_bytes(rows), tags=["env:test", "team:ai"])
    assert status == 200
    names = [e for e, _ in events]
    assert names[-1] == "completed" and set(names[:-1]) == {"progress"} and len(names) >= 4
    processed = [d["records_processed"] for e, d in events if e == "progress"]
    assert processed == sorted(processed) and processed[-1] == 12000
    done = events[-1][1]
    assert done["records_created"] == 12000 and done["records_total"] == 12000 and done["version"] == 1
    got = records(http, pid, did)
    assert len(got) == 12000
    assert got["id-7"]["input"] == {"q": 7} and got["id-7"]["expected_output"] == "answer 7"
    assert got["id-7"]["metadata"] == {"i": 7}
    assert sorted(got["id-7"]["tags"]) == ["env:test", "src:csv", "team:ai"]
    assert dataset_attrs(http, pid, did)["current_version"] == 1, "one upload is one version"

    # Upsert by id (overwrite defaults to true); overwrite=false keeps what is there.
    status, events = upload(http, pid, did, csv_bytes([["id-1", "changed", "", "", ""], ["new", "n", "", "", ""]]))
    assert events[-1] == ("completed", {**events[-1][1], "records_created": 1, "records_updated": 1})
    assert records(http, pid, did)["id-1"]["input"] == "changed"
    status, events = upload(http, pid, did, csv_bytes([["id-2", "not applied", "", "", ""]]), overwrite="false")
    assert events[-1][1]["records_skipped"] == 1
    assert records(http, pid, did)["id-2"]["input"] == {"q": 2}


def test_typed_client_upload_and_jsonl(typed, http, tmp_path: Path):
    pid = make_project(http)
    did = make_dataset(http, pid)
    path = tmp_path / "data.csv"
    path.write_bytes(csv_bytes([["", "no id, plain text", "", "", "a:1, b:2"], ["", "no id, plain text", "", "", ""],
                                ["k", "[1, 2]", "true", "", ""]], header=["id", "input", "expected_output",
                                                                          "metadata", "tags"]))
    with open(path, "rb") as fh:
        assert typed.upload_llm_obs_dataset_records_file(pid, did, file=fh, deduplicate=True, tags=["t:x"]) is None
    got = records(http, pid, did)
    assert len(got) == 2, "deduplicate skipped the repeated id-less row"
    assert got["k"]["input"] == [1, 2] and got["k"]["expected_output"] is True
    plain = next(r for rid, r in got.items() if rid != "k")
    assert plain["input"] == "no id, plain text" and sorted(plain["tags"]) == ["a:1", "b:2", "t:x"]

    jsonl = b"\n".join(json.dumps(x).encode() for x in (
        {"id": "j1", "input": {"a": 1}, "expected_output": [1], "metadata": {"m": 1}, "tags": ["j:1"]},
        {"input": "only input"},
    )) + b"\n\n"
    path = tmp_path / "data.jsonl"
    path.write_bytes(jsonl)
    with open(path, "rb") as fh:
        typed.upload_llm_obs_dataset_records_file(pid, did, file=fh)
    got = records(http, pid, did)
    assert got["j1"] == {**got["j1"], "input": {"a": 1}, "expected_output": [1], "metadata": {"m": 1},
                         "tags": ["j:1"]}
    assert any(r["input"] == "only input" for r in got.values())


def test_export_then_import_round_trips(http):
    pid = make_project(http)
    src = make_dataset(http, pid)
    ok_batch(http, pid, src, inserts=[
        {"id": "plain", "input": "just text", "expected_output": "123", "tags": ["b:2", "a:1"]},
        {"id": "obj", "input": {"q": "a, \"quoted\"\nline", "u": "üñí"}, "expected_output": {"x": True},
         "metadata": {"k": [1, None]}},
        {"id": "null-in", "input": None, "expected_output": ""},
        {"id": "num", "input": 5.5, "expected_output": False},
    ])
    for fmt in ("csv", "jsonl"):
        exported = http.get(f"{V1}/{pid}/datasets/{src}/export", params={"format": fmt}).content
        dst = make_dataset(http, pid)
        status, events = upload(http, pid, dst, exported, filename=f"x.{fmt}")
        assert status == 200 and events[-1][0] == "completed", events
        assert content(records(http, pid, dst)) == content(records(http, pid, src)), fmt


def _bad(http, pid, did, body: bytes, fragment: str, **kw: Any) -> None:
    status, payload = upload(http, pid, did, body, **kw)
    assert status == 400, (status, payload)
    detail = payload["errors"][0]["detail"]
    assert fragment in detail, detail


def test_bad_files_are_refused_whole(http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "keep", "input": 1}])
    good = [["a", "1", "", "", ""]] * 1
    _bad(http, pid, did, csv_bytes(good, header=["question", "answer"]), "no `input` column")
    _bad(http, pid, did, b"", "empty")
    _bad(http, pid, did, csv_bytes([["x", "1", "", "", ""], ["y", "2", ""]]), "row 2")
    _bad(http, pid, did, csv_bytes([["x", "1", "", "", ""]]) + b'"unterminated,1,,,\r\n', "row 2")
    _bad(http, pid, did, b"id,input\r\nok,1\r\nbad,\xff\xfe\r\n", "line 3: the file is not valid UTF-8")
    _bad(http, pid, did, csv_bytes([["big", "x" * (10 * 1024 * 1024 + 1), "", "", ""]]), "larger than 10 MB")
    _bad(http, pid, did, csv_bytes([["m", "1", "", "[1]", ""]]), "metadata must be a JSON object")
    _bad(http, pid, did, csv_bytes([["d", "1", "", "", ""], ["d", "2", "", "", ""]]), "already appears in row 1")
    _bad(http, pid, did, csv_bytes([["e", "", "", "", ""]]), "input is empty")
    _bad(http, pid, did, b"x", "unknown file format 'xlsx'", filename="data.xlsx")
    _bad(http, pid, did, csv_bytes(good), "unknown format", format="parquet")
    _bad(http, pid, did, b'{"input": 1}\n{"input": \n', "line 2: does not parse as JSON", filename="d.jsonl")
    _bad(http, pid, did, b'{"input": 1}\n[1]\n', "line 2: must be a JSON object", filename="d.jsonl")
    _bad(http, pid, did, b'{"id": "x"}\n', "has no `input`", filename="d.jsonl")
    _bad(http, pid, did, b'{"input": "a\\u0000b"}\n', "NUL", filename="d.jsonl")
    _bad(http, pid, did, csv_bytes(good), "deduplicate", deduplicate="maybe")
    # No file part at all, or not multipart.
    r = http.post(f"{V2UP}/{pid}/datasets/{did}/records/upload", data={"other": "x"})
    assert r.status_code == 400 and "file" in error_detail(r)
    assert http.post(f"{V2UP}/{pid}/datasets/{did}/records/upload", json={"a": 1}).status_code == 400
    assert upload(http, pid, "missing", csv_bytes(good))[0] == 404
    assert content(records(http, pid, did)) == {"keep": (1, None, None, [])}
    assert dataset_attrs(http, pid, did)["current_version"] == 1


def test_bad_row_at_the_end_of_a_large_file_stores_nothing(http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "keep", "input": 1}])
    rows = [[f"r{i}", json.dumps({"i": i, "pad": "p" * 200}), "", "", ""] for i in range(30000)]
    body = csv_bytes(rows) + b"last,\"broken\n"
    # The typed route has started its stream by then (the file is read once, as it is written):
    # the stream ends with an `error` event naming the row, after progress for the rows before it.
    status, events = upload(http, pid, did, body)
    assert status == 200 and events[-1][0] == "error", events[-3:]
    assert "row 30001" in events[-1][1]["message"] and "nothing was stored" in events[-1][1]["message"]
    assert any(e == "progress" and d["records_processed"] > 0 for e, d in events)
    assert set(records(http, pid, did)) == {"keep"}
    assert dataset_attrs(http, pid, did)["current_version"] == 1
    # ddtrace's route answers once the file is written: a plain 400.
    r = http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload",
                  files={"file": ("data.csv", body, "text/csv")})
    assert r.status_code == 400 and "row 30001" in r.json()["errors"][0]["detail"], r.text
    assert set(records(http, pid, did)) == {"keep"}
    assert dataset_attrs(http, pid, did)["current_version"] == 1


def test_interrupted_upload_is_all_or_nothing(http, server):
    """A client that hangs up mid-stream leaves the dataset either untouched or fully written."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    rows = [[f"r{i}", json.dumps({"i": i, "pad": "p" * 500}), "", "", ""] for i in range(40000)]
    with server.client() as c:
        with c.stream("POST", f"{V2UP}/{pid}/datasets/{did}/records/upload",
                      files={"file": ("big.csv", csv_bytes(rows), "text/csv")}) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the first event arrived: the stream has started; now hang up
    # Wait until the server has finished with the upload (a write takes the dataset lock after it).
    assert ok_batch(http, pid, did, inserts=[{"id": "probe", "input": 0}]) >= 1
    got = records(http, pid, did)
    uploaded = len(got) - 1
    assert uploaded in (0, 40000), f"partial upload left behind: {uploaded} records"


def test_lock_taken_during_an_upload(http, server):
    """Another key locks the dataset while an upload streams: either the upload wrote everything
    before the lock (`completed`), or it found the lock and stored nothing (`error` naming the holder)."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    other_api, other_app = server.new_key("carol")
    rows = [[f"r{i}", json.dumps({"i": i}), "", "", ""] for i in range(20000)]
    with server.client(headers={"DD-API-KEY": other_api, "DD-APPLICATION-KEY": other_app}) as carol:
        with http.stream("POST", f"{V2UP}/{pid}/datasets/{did}/records/upload",
                         files={"file": ("a.csv", csv_bytes(rows), "text/csv")}) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("event: progress")
            while next(lines) != "":  # the rest of the first event
                pass
            assert carol.patch(f"{V1}/{pid}/datasets/{did}/draft_state/lock").status_code == 200
            events = sse_events_from(lines)
        last, data = events[-1]
        if last == "error":
            assert "carol" in data["message"] and data["status"] == 409
            assert records(http, pid, did) == {}
        else:
            assert last == "completed" and data["records_created"] == 20000
            assert len(records(http, pid, did)) == 20000
        # Now the lock is carol's: a new upload by someone else is refused before it starts.
        status, payload = upload(http, pid, did, csv_bytes([["x", "1", "", "", ""]]))
        assert status == 409 and "carol" in payload["errors"][0]["detail"]
        assert carol.patch(f"{V1}/{pid}/datasets/{did}/draft_state/unlock").status_code == 200


def sse_events_from(lines) -> list[tuple[str, dict[str, Any]]]:
    class _Lines:
        def iter_lines(self):
            return lines
    return sse_events(_Lines())  # type: ignore[arg-type]


def test_ddtrace_multipart_body_as_recorded(http):
    """The exact body ddtrace sends (fixed boundary, JSON-encoded cells), replayed: 200 + dataset_version."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "user-id-0", "input": "old"}, {"id": "other", "input": "x"}])
    body = (b'------------boundary------\r\nContent-Disposition: form-data; name="file"; filename="tmp.csv"\r\n'
            b'Content-Type: text/csv\r\n\r\ninput,expected_output,metadata,id\r\n'
            b'"{""in0"": ""r0v1"", ""in1"": ""r0v2""}","{""out0"": ""r0v3""}",{},user-id-0\r\n'
            b'"{""in0"": ""r1v1""}","""""","""""",user-id-1\r\n\r\n------------boundary--------\r\n')
    r = http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload?deduplicate=True", content=body,
                  headers={"Content-Type": "multipart/form-data; boundary=----------boundary------"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["type"] == "dataset_version"
    assert data["attributes"]["dataset_id"] == did and data["attributes"]["version_number"] == 2
    got = records(http, pid, did)
    assert got["user-id-0"]["input"] == {"in0": "r0v1", "in1": "r0v2"}
    assert got["user-id-0"]["metadata"] == {}
    assert got["user-id-1"]["expected_output"] == "" and got["user-id-1"]["metadata"] is None
    assert got["other"]["input"] == "x", "upsert by id leaves other records alone"
    r = http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload", content=b"--x--",
                  headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400


def test_multipart_body_cut_short_or_malformed_stores_nothing(http):
    """A body cut short before the file part's closing boundary, or not a form at all: 400 on both routes."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    part = (b'--b0\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            b'Content-Type: text/csv\r\n\r\ninput\r\n1\r\n2\r\n')
    headers = {"Content-Type": "multipart/form-data; boundary=b0"}
    bodies = [
        part,  # cut short: rows 1 and 2 arrived, the end did not
        b"not multipart at all",
        b'--b0\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b0--\r\n',  # no `file` part
    ]
    for url in (f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload",
                f"{V2UP}/{pid}/datasets/{did}/records/upload"):
        for body in bodies:
            r = http.post(url, content=body, headers=headers)
            assert r.status_code == 400, (url, body, r.text)
            assert error_detail(r)
    assert records(http, pid, did) == {}
    assert dataset_attrs(http, pid, did)["current_version"] == 0
    # The same part, closed properly, is stored.
    r = http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload", content=part + b"--b0--\r\n",
                  headers=headers)
    assert r.status_code == 200, r.text
    assert sorted(rec["input"] for rec in records(http, pid, did).values()) == [1, 2]


def test_ddtrace_csv_bulk_upload_and_big_push(server, tmp_path: Path):
    project = unique("proj")
    path = tmp_path / "qa.csv"
    path.write_text("question,answer,difficulty,rid\n" + "".join(
        f'"What is {i}+{i}?",{2 * i},easy,csv-{i}\n' for i in range(50)))
    names = {k: unique(k) for k in ("csv", "bulk", "push")}
    out = run_ddtrace(server, f"""
names = {names!r}
project = {project!r}
res = {{}}
LLMObs.create_dataset_from_csv(csv_path={str(path)!r}, dataset_name=names["csv"], project_name=project,
    input_data_columns=["question"], expected_output_columns=["answer"], metadata_columns=["difficulty"],
    id_column="rid")
ds = LLMObs.pull_dataset(dataset_name=names["csv"], project_name=project)
res["csv"] = sorted([r["record_id"], r["input_data"], r["expected_output"], r["metadata"]] for r in ds)

recs = [{{"input_data": {{"n": i}}, "expected_output": "e" + str(i), "metadata": {{"m": i}}}} for i in range(300)]
LLMObs.create_dataset(dataset_name=names["bulk"], project_name=project, records=recs, bulk_upload=True)
ds = LLMObs.pull_dataset(dataset_name=names["bulk"], project_name=project)
res["bulk"] = sorted([r["input_data"]["n"], r["expected_output"], r["metadata"]] for r in ds)

ds = LLMObs.create_dataset(dataset_name=names["push"], project_name=project,
    records=[{{"input_data": {{"seed": 1}}, "expected_output": "s"}}])
for i in range(600):
    ds.append({{"input_data": {{"i": i, "blob": "x" * 10000}}, "expected_output": {{"i": i}}}})
ds.push()  # > 5 MiB of new records: ddtrace switches to the CSV upload by itself
pulled = LLMObs.pull_dataset(dataset_name=names["push"], project_name=project)
res["push"] = {{"count": len(pulled), "ids_match": sorted(r["record_id"] for r in pulled) ==
               sorted(r["record_id"] for r in ds),
               "blob_ok": all(len(r["input_data"].get("blob", "")) == 10000 for r in pulled if "i" in r["input_data"]),
               "version": pulled.latest_version}}
ds.push()  # ddtrace re-sends the bulk records as inserts: they upsert by id, nothing duplicates
res["after_second_push"] = len(LLMObs.pull_dataset(dataset_name=names["push"], project_name=project))
print(json.dumps(res))
""")
    assert out["csv"] == sorted([f"csv-{i}", {"question": f"What is {i}+{i}?"}, {"answer": str(2 * i)},
                                 {"difficulty": "easy"}] for i in range(50))
    assert out["bulk"] == [[i, f"e{i}", {"m": i}] for i in range(300)]
    assert out["push"] == {"count": 601, "ids_match": True, "blob_ok": True, "version": 2}
    assert out["after_second_push"] == 601


def test_ddtrace_upload_whose_client_hangs_up_stores_nothing(http, server):
    """A client that sends the whole file and hangs up before the answer never learns whether it was
    stored (ddtrace gives up after 60 s); the route rolls the write back, as the typed route does."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "keep", "input": 1}])
    rows = [[f"r{i}", json.dumps({"i": i, "pad": "p" * 200}), "", "", ""] for i in range(20000)]
    file = csv_bytes(rows)
    boundary = "----------boundary------"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="tmp.csv"\r\n'
            f'Content-Type: text/csv\r\n\r\n').encode() + file + f"\r\n--{boundary}--\r\n".encode()
    host, port = server.base_url.removeprefix("http://").split(":")
    head = (f"POST /api/unstable/llm-obs/v1/datasets/{did}/records/upload?deduplicate=True HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nDD-API-KEY: {server.api_key}\r\nDD-APPLICATION-KEY: {server.app_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n")
    logged = server.log().count("hung up before its upload")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + body)
    # The server logs the rollback; a server that stored the file shows it in the dataset instead.
    deadline = time.monotonic() + 60
    while server.log().count("hung up before its upload") == logged and time.monotonic() < deadline:
        assert set(records(http, pid, did)) == {"keep"}, "the upload of a client that hung up was stored"
        time.sleep(0.2)
    assert server.log().count("hung up before its upload") == logged + 1, server.log()[-2000:]
    assert set(records(http, pid, did)) == {"keep"}
    assert dataset_attrs(http, pid, did)["current_version"] == 1
    # Nothing was left locked or half-done: the same file from a client that waits is stored whole.
    r = http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload?deduplicate=True", content=body,
                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200 and r.json()["data"]["attributes"]["version_number"] == 2, r.text[:300]
    assert len(records(http, pid, did)) == 20001


def test_ddtrace_route_checks_while_writing_and_stores_nothing_on_a_bad_row(http):
    """ddtrace's route writes as it parses (one pass); a problem late in the file still rolls everything back."""
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "keep", "input": 1}])
    url = f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload"
    big = [[f"r{i}", json.dumps({"i": i, "pad": "p" * 200}), "", "", ""] for i in range(12000)]
    for body, words in (
        (csv_bytes(big) + b"last,\"broken\n", "row 12001"),
        (csv_bytes(big + [["r5", "1", "", "", ""]]), "already appears in row 6"),
        (csv_bytes(big + [["nul", json.dumps("a\u0000b"), "", "", ""]]), "NUL"),
        (csv_bytes(big + [["m", "1", "", "[1]", ""]]), "metadata must be a JSON object"),
    ):
        r = http.post(url, files={"file": ("data.csv", body, "text/csv")})
        assert r.status_code == 400, r.text[:300]
        assert words in error_detail(r)
        assert set(records(http, pid, did)) == {"keep"}, "a refused upload stores nothing"
        assert dataset_attrs(http, pid, did)["current_version"] == 1
    r = http.post(url, files={"file": ("data.csv", csv_bytes(big), "text/csv")})
    assert r.status_code == 200 and r.json()["data"]["attributes"]["version_number"] == 2
    assert len(records(http, pid, did)) == 12001
