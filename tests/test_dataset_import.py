"""Imports in steps any server may answer (stage, preview, write with a mapping), on both databases:
the service, the API, and two real servers on one PostgreSQL database (stage on one, write on the other,
progress read on the first), the records read back with both real clients."""

from __future__ import annotations

import io
import re
import threading
import uuid
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update

from tests.conftest import Server, new_dataset_via_services, run_ddtrace, start_server, stop_server
from tests.test_dataset_lifecycle_helpers import make_dataset, make_project, records
from tests.test_datasets import plain

API = "/api/kennel/v1"
CSV_FILE = ('question,answer,meta,notes\n'
            '"{""country"": ""France""}",Paris,"{""difficulty"": ""easy""}",ignored\n'
            'Capital of Spain?,Madrid,,\n'
            '"What is 2+2?",4,"{""difficulty"": ""hard""}",x\n')
MAPPING = {"question": "input", "answer": "expected_output", "meta": "metadata", "notes": "ignore"}


def stage(http: httpx.Client, did: str, body: str | bytes, name: str = "more.csv") -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return http.post(f"{API}/datasets/{did}/imports", files={"file": (name, data, "application/octet-stream")})


def write(http: httpx.Client, did: str, iid: str, mapping: dict[str, str], **extra: Any) -> httpx.Response:
    return http.post(f"{API}/datasets/{did}/imports/{iid}/write", json={"data": {
        "type": "dataset_imports", "attributes": {"mapping": mapping, **extra}}}, timeout=300)


def detail(r: httpx.Response) -> str:
    return r.json()["errors"][0]["detail"]


# The API on both databases ----------------------------------------------------------------------------

def test_stage_preview_and_write_over_the_api(http: httpx.Client) -> None:
    pid = make_project(http)
    did = make_dataset(http, pid)
    staged = stage(http, did, CSV_FILE)
    assert staged.status_code == 201, staged.text
    imp = staged.json()["data"]
    attrs = imp["attributes"]
    assert attrs["status"] == "staged" and attrs["format"] == "csv" and attrs["size"] == len(CSV_FILE)
    assert [(c["name"], c["guess"]) for c in attrs["preview"]["columns"]] == [
        ("question", "input"), ("answer", "expected_output"), ("meta", "ignore"), ("notes", "ignore")]
    assert attrs["preview"]["rows"][1] == ["Capital of Spain?", "Madrid", "", ""]
    assert http.get(f"{API}/datasets/{did}/imports/{imp['id']}").json()["data"]["attributes"]["status"] == "staged"

    # A mapping that leaves no input is refused, names it, and leaves the import as it was.
    bad = write(http, did, imp["id"], {**MAPPING, "question": "ignore"})
    assert bad.status_code == 400 and "the mapping leaves no input" in detail(bad)
    twice = write(http, did, imp["id"], {**MAPPING, "notes": "input"})
    assert twice.status_code == 400 and "two columns are mapped to input" in detail(twice)
    assert write(http, did, imp["id"], {"nope": "input"}).status_code == 400
    assert records(http, pid, did) == {}

    done = write(http, did, imp["id"], MAPPING)
    assert done.status_code == 200, done.text
    attrs = done.json()["data"]["attributes"]
    assert (attrs["status"], attrs["records_created"], attrs["records_processed"], attrs["version"]) == \
        ("done", 3, 3, 1)
    got = sorted((repr(r["input"]), r["expected_output"], r["metadata"]) for r in records(http, pid, did).values())
    assert got == sorted([(repr({"country": "France"}), "Paris", {"difficulty": "easy"}),
                          (repr("Capital of Spain?"), "Madrid", None), (repr("What is 2+2?"), 4, {"difficulty": "hard"})])
    again = write(http, did, imp["id"], MAPPING)
    assert again.status_code == 409 and "written already, as version 1" in detail(again)


def test_jsonl_with_renamed_keys_and_ids(http: httpx.Client) -> None:
    pid = make_project(http)
    did = make_dataset(http, pid)
    lines = [{"key": f"k{i}", "q": {"n": i}, "a": i * 2, "input": "not this one"} for i in range(7)]
    body = "".join(orjson.dumps(line).decode() + "\n" for line in lines)
    imp = stage(http, did, body, "rows.jsonl").json()["data"]
    assert imp["attributes"]["format"] == "jsonl" and len(imp["attributes"]["preview"]["rows"]) == 5
    # The file's own `input` key is left out; `q` is the input.
    done = write(http, did, imp["id"], {"key": "id", "q": "input", "a": "expected_output", "input": "ignore"})
    assert done.status_code == 200, done.text
    got = records(http, pid, did)
    assert sorted(got) == [f"k{i}" for i in range(7)] and got["k3"]["input"] == {"n": 3}
    assert got["k3"]["expected_output"] == 6


def test_bad_input_is_a_clear_4xx(server: Server, http: httpx.Client) -> None:
    pid = make_project(http)
    did = make_dataset(http, pid)
    missing = http.get(f"{API}/datasets/{did}/imports/{uuid.uuid4()}")
    assert missing.status_code == 404 and "has no import" in detail(missing)
    assert write(http, did, str(uuid.uuid4()), MAPPING).status_code == 404
    assert stage(http, str(uuid.uuid4()), CSV_FILE).status_code == 404
    assert http.post(f"{API}/datasets/{did}/imports", data={"x": "1"}).status_code == 400
    not_json = stage(http, did, '{"q": 1}\n{"q": 2,\n', "rows.jsonl")
    assert not_json.status_code == 400 and "line 2 does not parse as JSON" in detail(not_json)
    assert stage(http, did, b"", "empty.csv").status_code == 400

    # Someone else's import is theirs.
    imp = stage(http, did, CSV_FILE).json()["data"]
    api_key, app_key = server.new_key("other")
    with server.client(headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as other:
        assert other.get(f"{API}/datasets/{did}/imports/{imp['id']}").status_code == 409
        assert write(other, did, imp["id"], MAPPING).status_code == 409

    # A row that does not check out fails the write, naming it; nothing is stored, and it may be written again.
    late = CSV_FILE + "Third?,x,[1],\n"
    imp = stage(http, did, late).json()["data"]
    failed = write(http, did, imp["id"], MAPPING)
    assert failed.status_code == 400 and "row 4 (line 5): metadata must be a JSON object" in detail(failed)
    state = http.get(f"{API}/datasets/{did}/imports/{imp['id']}").json()["data"]["attributes"]
    assert state["status"] == "failed" and "row 4" in state["error"]
    assert records(http, pid, did) == {}
    retried = write(http, did, imp["id"], {**MAPPING, "meta": "ignore"})
    assert retried.status_code == 200 and retried.json()["data"]["attributes"]["records_created"] == 4


def test_imports_are_in_the_openapi_schema_and_need_write(server: Server, http: httpx.Client) -> None:
    paths = httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
    assert "multipart/form-data" in paths[f"{API}/datasets/{{dataset_id}}/imports"]["post"]["requestBody"]["content"]
    assert "get" in paths[f"{API}/datasets/{{dataset_id}}/imports/{{import_id}}"]
    assert "post" in paths[f"{API}/datasets/{{dataset_id}}/imports/{{import_id}}/write"]
    # No keys: refused before the body is read.
    anonymous = httpx.post(f"{server.base_url}{API}/datasets/x/imports", files={"file": ("a.csv", b"input\n1\n")})
    assert anonymous.status_code in (401, 403)


# The service on both databases ------------------------------------------------------------------------


def _actor() -> Any:
    from kennel.keys.service import Actor

    return Actor(id=str(uuid.uuid4()), name="svc-test", role="admin")


def test_a_large_file_is_kept_in_chunks_and_expires(factory: Any) -> None:
    from kennel.datasets import dataset_import as imports
    from kennel.datasets.import_models import StagedImport, StagedImportChunk
    from kennel.datasets.models import Dataset
    from kennel.db.base import utcnow
    from kennel.db.session import unit_of_work
    from kennel.errors import NotFound

    actor = _actor()
    _, did = new_dataset_via_services(factory, actor)
    big = "id,input\n" + "".join(f"r{i},\"{{\"\"n\"\": {i}, \"\"pad\"\": \"\"{'x' * 200}\"\"}}\"\n" for i in range(12000))
    assert len(big) > 2 * imports.CHUNK_BYTES
    with unit_of_work(factory, write=True) as s:
        state = imports.stage(s, dataset_id=did, actor=actor, filename="big.csv", content_type=None,
                              file=io.BytesIO(big.encode()))
        chunks = s.scalar(select(func.count()).select_from(StagedImportChunk)
                          .where(StagedImportChunk.import_pk == state.row.pk))
    assert chunks == -(-len(big) // imports.CHUNK_BYTES) and state.row.size == len(big)
    with unit_of_work(factory, write=False) as s:
        shown = imports.status(s, factory, dataset_id=did, import_id=state.id, actor=actor)
    assert shown.preview.columns == [("id", "id"), ("input", "input")] and shown.preview.rows[0][0] == "r0"
    done = imports.write(factory, dataset_id=did, import_id=state.id, actor=actor,
                         mapping={"id": "id", "input": "input"})
    assert (done.created, done.processed, done.version) == (12000, 12000, 1)
    with unit_of_work(factory, write=False) as s:
        # The file's chunks go with the write; the import's row stays for its status.
        assert s.scalar(select(func.count()).select_from(StagedImportChunk)
                        .where(StagedImportChunk.import_pk == state.row.pk)) == 0

    # An import past its hour is not found, and the next one staged sweeps it away.
    past = utcnow() - imports.KEEP - timedelta(minutes=1)
    with unit_of_work(factory, write=True) as s:
        old = imports.stage(s, dataset_id=did, actor=actor, filename="a.csv", content_type=None,
                            file=io.BytesIO(CSV_FILE.encode()), now=past)
    with unit_of_work(factory, write=False) as s, pytest.raises(NotFound):
        imports.status(s, factory, dataset_id=did, import_id=old.id, actor=actor)
    with unit_of_work(factory, write=True) as s:
        imports.stage(s, dataset_id=did, actor=actor, filename="b.csv", content_type=None,
                      file=io.BytesIO(CSV_FILE.encode()))
        assert s.scalar(select(func.count()).select_from(StagedImport).where(StagedImport.id == old.id)) == 0
    with unit_of_work(factory, write=False) as s:
        # Only the new import's chunk is left (SQLite may hand the swept import's pk to the new one).
        mine = (select(func.count()).select_from(StagedImportChunk)
                .join(StagedImport, StagedImport.pk == StagedImportChunk.import_pk)
                .join(Dataset, Dataset.pk == StagedImport.dataset_pk).where(Dataset.id == did))
        assert s.scalar(mine) == 1


def test_a_write_whose_server_died_is_marked_failed_and_can_be_written_again(factory: Any) -> None:
    from kennel.datasets import dataset_import as imports
    from kennel.datasets.import_models import StagedImport
    from kennel.db.base import utcnow
    from kennel.db.session import unit_of_work
    from kennel.errors import Conflict

    actor = _actor()
    _, did = new_dataset_via_services(factory, actor)
    with unit_of_work(factory, write=True) as s:
        state = imports.stage(s, dataset_id=did, actor=actor, filename="a.csv", content_type=None,
                              file=io.BytesIO(CSV_FILE.encode()))
    # As a server leaves it when it dies mid-write: claimed, its heartbeat going stale.
    with unit_of_work(factory, write=True) as s:
        s.execute(update(StagedImport).where(StagedImport.pk == state.row.pk)
                  .values(status="writing", heartbeat_at=utcnow() - timedelta(seconds=30)))
    with pytest.raises(Conflict, match="being written already"):
        imports.write(factory, dataset_id=did, import_id=state.id, actor=actor, mapping=MAPPING)
    with unit_of_work(factory, write=False) as s:
        assert imports.status(s, factory, dataset_id=did, import_id=state.id, actor=actor).row.status == "writing"
    with unit_of_work(factory, write=True) as s:
        s.execute(update(StagedImport).where(StagedImport.pk == state.row.pk)
                  .values(heartbeat_at=utcnow() - imports.STALE - timedelta(seconds=1)))
    with unit_of_work(factory, write=False) as s:
        shown = imports.status(s, factory, dataset_id=did, import_id=state.id, actor=actor)
    assert (shown.row.status, shown.row.error) == ("failed", imports.CRASHED)
    with unit_of_work(factory, write=False) as s:
        assert s.get(StagedImport, state.row.pk).status == "failed"
    done = imports.write(factory, dataset_id=did, import_id=state.id, actor=actor, mapping=MAPPING)
    assert done.created == 3


# Two servers on one PostgreSQL database ---------------------------------------------------------------

def _typed(server: Server, headers: dict[str, str]) -> Any:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.agent_observability_api import AgentObservabilityApi

    cfg = Configuration(host=server.base_url)
    cfg.api_key["apiKeyAuth"] = headers["DD-API-KEY"]
    cfg.api_key["appKeyAuth"] = headers["DD-APPLICATION-KEY"]
    for op in list(cfg.unstable_operations.values):
        if "llm_obs" in op:
            cfg.unstable_operations[op.split(".", 1)[1]] = True
    return AgentObservabilityApi(ApiClient(cfg))


def test_stage_on_one_server_write_on_another_progress_on_the_first(
        backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if backend != "postgres":
        pytest.skip("several servers on one database is a PostgreSQL deployment")
    a = start_server(database_url, backend, tmp_path_factory.mktemp("a"))
    b = start_server(database_url, backend, tmp_path_factory.mktemp("b"))
    try:
        headers = a.headers
        project, name = f"lb-{uuid.uuid4().hex[:6]}", f"golden-{uuid.uuid4().hex[:6]}"
        n = 15000
        body = "key,question,answer\n" + "".join(f"k{i},\"{{\"\"q\"\": {i}}}\",a{i}\n" for i in range(n))
        with a.client() as on_a, httpx.Client(base_url=b.base_url, headers=headers, timeout=300) as on_b:
            pid = make_project(on_a, project)
            did = make_dataset(on_a, pid, name)
            imp = stage(on_a, did, body).json()["data"]
            seen: list[dict[str, Any]] = []
            answer: dict[str, httpx.Response] = {}
            writer = threading.Thread(target=lambda: answer.setdefault(
                "r", write(on_b, did, imp["id"], {"key": "id", "question": "input", "answer": "expected_output"})))
            writer.start()
            while writer.is_alive() or not seen or seen[-1]["status"] == "staged":
                seen.append(on_a.get(f"{API}/datasets/{did}/imports/{imp['id']}").json()["data"]["attributes"])
                if seen[-1]["status"] in ("done", "failed"):
                    break
            writer.join()
            if seen[-1]["status"] not in ("done", "failed"):
                # The write answered between the last poll and the loop's check: what A shows now is final.
                seen.append(on_a.get(f"{API}/datasets/{did}/imports/{imp['id']}").json()["data"]["attributes"])
            assert answer["r"].status_code == 200, answer["r"].text
            assert seen[-1]["status"] == "done" and seen[-1]["records_created"] == n, seen[-1]
            partial = [s for s in seen if s["status"] == "writing" and 0 < s["records_processed"] < n]
            assert partial and all(s["records_total"] == n for s in partial), \
                "A showed the progress of the write B was doing"
            processed = [s["records_processed"] for s in seen]
            assert processed == sorted(processed)
        typed = _typed(b, headers)
        page = typed.list_llm_obs_dataset_records(pid, did, page_limit=1000)
        assert len(page.data) == 1000
        got = {r.id: r for r in page.data}
        some = next(iter(got))
        assert plain(got[some].input) == {"q": int(some[1:])} and got[some].expected_output == f"a{some[1:]}"
        pulled = run_ddtrace(a, f"""
ds = LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r})
rows = {{r["record_id"]: [r["input_data"], r["expected_output"]] for r in ds}}
print(json.dumps({{"n": len(ds), "k42": rows["k42"], "version": ds.version}}))
""")
        assert pulled == {"n": n, "k42": [{"q": 42}, "a42"], "version": 1}
    finally:
        stop_server(a)
        stop_server(b)
    for s in (a, b):
        assert "Traceback" not in s.log(), s.log()


# The page, over HTTP (the Chromium flow is in test_dataset_workspace_web.py) ---------------------------

def test_the_page_goes_through_the_same_steps(server: Server, http: httpx.Client) -> None:
    from tests.test_trace_view import person

    pid = make_project(http)
    did = make_dataset(http, pid)
    web = person(server)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get(f"/datasets/{did}/import").text)
    assert csrf
    files = {"file": ("more.csv", CSV_FILE.encode(), "text/csv")}
    assert web.post(f"/datasets/{did}/import", files=files, data={"csrf_token": "nope"}).status_code == 403
    anonymous = httpx.post(f"{server.base_url}/datasets/{did}/import", files=files)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    bad = web.post(f"/datasets/{did}/import", files={"file": ("x.jsonl", b"[1]\n", "application/x-ndjson")},
                   data={"csrf_token": csrf.group(1)})
    assert bad.status_code == 400 and "line 1 must be a JSON object" in bad.text

    staged = web.post(f"/datasets/{did}/import", files=files, data={"csrf_token": csrf.group(1)})
    assert staged.status_code == 303, staged.text
    page_url = staged.headers["location"]
    iid = page_url.rsplit("/", 1)[1]
    page = web.get(page_url)
    assert page.status_code == 200 and "Map the columns of more.csv" in page.text and "Capital of Spain?" in page.text
    assert web.get(f"{page_url}/status").json()["status"] == "staged"
    form = {"csrf_token": csrf.group(1), **{f"column-{i}": c for i, c in enumerate(MAPPING)},
            **{f"role-{i}": r for i, r in enumerate(MAPPING.values())}}
    done = web.post(f"{page_url}/write", data=form)
    assert done.status_code == 303 and done.headers["location"].endswith("/versions?imported=3:0")
    assert web.get(f"{page_url}/status").json()["status"] == "done"
    assert web.get(page_url).status_code == 303
    again = web.post(f"{page_url}/write", data=form)
    assert again.status_code == 409 and "written already" in again.text
    assert len(records(http, pid, did)) == 3
    # The import is its sender's: not another person's, nor an annotator's.
    assert person(server).get(page_url).status_code == 409
    assert person(server, "annotator").get(f"/datasets/{did}/import/{iid}").status_code == 403


def test_an_upload_past_the_size_limit_is_refused_as_it_arrives(tmp_path: Any) -> None:
    """The gate's limits hold for a streamed upload too (the gate alone: one database is enough)."""
    small = start_server(f"sqlite:///{tmp_path}/k.db", "sqlite", tmp_path, env={"KENNEL_MAX_BODY_BYTES": "200000"})
    try:
        with small.client() as http:
            did = make_dataset(http, make_project(http))
            big = "input\n" + "x" * 300_000 + "\n"
            declared = stage(http, did, big)
            assert declared.status_code == 413 and "KENNEL_MAX_BODY_BYTES" in detail(declared)

            def chunked() -> Any:
                yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\ninput\n"
                for _ in range(30):
                    yield b"y" * 10_000
                yield b"\n\r\n--b--\r\n"

            streamed = http.post(f"{API}/datasets/{did}/imports", content=chunked(),
                                 headers={"Content-Type": "multipart/form-data; boundary=b"})
            assert streamed.status_code == 413, streamed.text
            assert stage(http, did, CSV_FILE).status_code == 201
    finally:
        stop_server(small)
    assert "Traceback" not in small.log(), small.log()
