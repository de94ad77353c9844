"""Datasets and versioned records with the real typed client, plus the raw-HTTP edge cases."""

from __future__ import annotations

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2 import models as m

from tests.conftest import unique

DATASETS = m.LLMObsDatasetType.DATASETS
RECORDS = m.LLMObsRecordType.RECORDS


@pytest.fixture
def project_id(typed) -> str:
    return typed.create_llm_obs_project(m.LLMObsProjectRequest(data=m.LLMObsProjectDataRequest(
        attributes=m.LLMObsProjectDataAttributesRequest(name=unique("ds-proj")),
        type=m.LLMObsProjectType.PROJECTS))).data.id


def _create_dataset(typed, project_id: str, name: str | None = None, **attrs):
    return typed.create_llm_obs_dataset(project_id, m.LLMObsDatasetRequest(data=m.LLMObsDatasetDataRequest(
        attributes=m.LLMObsDatasetDataAttributesRequest(name=name or unique("ds"), **attrs), type=DATASETS)))


def _append(typed, project_id, dataset_id, records, **kw):
    items = [m.LLMObsDatasetRecordItem(**r) for r in records]
    return typed.create_llm_obs_dataset_records(project_id, dataset_id, m.LLMObsDatasetRecordsRequest(
        data=m.LLMObsDatasetRecordsDataRequest(
            attributes=m.LLMObsDatasetRecordsDataAttributesRequest(records=items, **kw), type=RECORDS)))


def plain(value):
    """Typed-client values (model objects, floats for every number) as comparable plain data."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def key(value) -> str:
    return repr(plain(value))


def _list_all(typed, project_id, dataset_id, **kw):
    out, cursor = [], None
    for _ in range(1000):
        args = dict(kw)
        if cursor:
            args["page_cursor"] = cursor
        page = typed.list_llm_obs_dataset_records(project_id, dataset_id, **args)
        out.extend(page.data)
        cursor = page.meta.after if page.meta else None
        if not cursor:
            return out
    raise AssertionError("pagination did not end")


def test_dataset_crud_with_typed_client(typed, project_id):
    name = unique("ds")
    created = _create_dataset(typed, project_id, name, description="about", metadata={"team": "ml"})
    ds = created.data
    assert ds.attributes.current_version == 0
    assert ds.attributes.metadata == {"team": "ml"}
    assert _create_dataset(typed, project_id, name).data.id == ds.id, "create is get-or-create by live name"

    listed = typed.list_llm_obs_datasets(project_id, filter_name=name)
    assert [d.id for d in listed.data] == [ds.id]
    assert typed.list_llm_obs_datasets(project_id, filter_id=ds.id).data[0].attributes.name == name

    new_name = unique("ds-renamed")
    upd = typed.update_llm_obs_dataset(project_id, ds.id, m.LLMObsDatasetUpdateRequest(
        data=m.LLMObsDatasetUpdateDataRequest(attributes=m.LLMObsDatasetUpdateDataAttributesRequest(
            name=new_name, description=None, metadata={"v": 2}), type=DATASETS)))
    assert upd.data.attributes.name == new_name
    assert upd.data.attributes.metadata == {"v": 2}

    versions = typed.list_llm_obs_dataset_versions(project_id, ds.id)
    assert [v.attributes.version_number for v in versions.data] == [0]

    typed.delete_llm_obs_datasets(project_id, m.LLMObsDeleteDatasetsRequest(data=m.LLMObsDeleteDatasetsDataRequest(
        attributes=m.LLMObsDeleteDatasetsDataAttributesRequest(dataset_ids=[ds.id]), type=DATASETS)))
    assert typed.list_llm_obs_datasets(project_id, filter_id=ds.id).data == []
    with pytest.raises(ApiException) as exc:
        typed.list_llm_obs_dataset_records(project_id, ds.id)
    assert exc.value.status == 404
    assert _create_dataset(typed, project_id, new_name).data.id != ds.id, "a deleted name is free again"


def test_dataset_pagination(typed, project_id):
    ids = [_create_dataset(typed, project_id).data.id for _ in range(5)]
    seen, cursor = [], None
    while True:
        kw = {"page_limit": 2}
        if cursor:
            kw["page_cursor"] = cursor
        page = typed.list_llm_obs_datasets(project_id, **kw)
        seen.extend(d.id for d in page.data)
        cursor = page.meta.after
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_records_lifecycle_and_versions(typed, project_id):
    ds = _create_dataset(typed, project_id).data.id
    appended = _append(typed, project_id, ds, [
        {"input": {"q": "one"}, "expected_output": {"a": 1}, "metadata": {"k": "v"}},
        {"input": "two", "expected_output": "2"},
        {"input": [1, 2, 3]},
    ])
    recs = [item.records[0] for item in appended.data]
    assert [plain(r.input) for r in recs] == [{"q": "one"}, "two", [1, 2, 3]]
    by_input = {key(r.input): r.id for r in recs}

    # Deduplicate (the default) skips content that is already current.
    again = _append(typed, project_id, ds, [{"input": "two", "expected_output": "2"}])
    assert again.data == []
    dup = _append(typed, project_id, ds, [{"input": "two", "expected_output": "2"}], deduplicate=False)
    assert len(dup.data) == 1

    listed = _list_all(typed, project_id, ds)
    assert [key(r.input) for r in listed] == ["'two'", "[1, 2, 3]", "'two'", "{'q': 'one'}"], "newest first"

    rid = by_input["{'q': 'one'}"]
    updated = typed.update_llm_obs_dataset_records(project_id, ds, m.LLMObsDatasetRecordsUpdateRequest(
        data=m.LLMObsDatasetRecordsUpdateDataRequest(attributes=m.LLMObsDatasetRecordsUpdateDataAttributesRequest(
            records=[m.LLMObsDatasetRecordUpdateItem(id=rid, expected_output={"a": 100})]), type=RECORDS)))
    rec = updated.data[0].records[0]
    assert plain(rec.expected_output) == {"a": 100} and plain(rec.input) == {"q": "one"}
    assert plain(rec.metadata) == {"k": "v"}

    typed.delete_llm_obs_dataset_records(project_id, ds, m.LLMObsDeleteDatasetRecordsRequest(
        data=m.LLMObsDeleteDatasetRecordsDataRequest(
            attributes=m.LLMObsDeleteDatasetRecordsDataAttributesRequest(record_ids=[by_input["[1, 2, 3]"]]),
            type=RECORDS)))

    # Versions: 1 (append), 2 (append, dedupe off), 3 (update), 4 (delete).
    versions = typed.list_llm_obs_dataset_versions(project_id, ds).data
    assert [v.attributes.version_number for v in versions] == [4, 3, 2, 1, 0]
    assert typed.list_llm_obs_datasets(project_id, filter_id=ds).data[0].attributes.current_version == 4

    def snapshot(version):
        kw = {} if version is None else {"filter_version": version}
        return sorted((key(r.input), key(r.expected_output)) for r in _list_all(typed, project_id, ds, **kw))

    assert snapshot(0) == []
    assert snapshot(1) == sorted([("{'q': 'one'}", "{'a': 1}"), ("'two'", "'2'"), ("[1, 2, 3]", "None")])
    assert len(snapshot(2)) == 4
    assert ("{'q': 'one'}", "{'a': 100}") in snapshot(3) and ("[1, 2, 3]", "None") in snapshot(3)
    assert ("[1, 2, 3]", "None") not in snapshot(4), "the deleted record is gone from the current version"
    assert snapshot(4) == snapshot(None) and len(snapshot(4)) == 3

    for bad in (5, -1):
        with pytest.raises(ApiException) as exc:
            typed.list_llm_obs_dataset_records(project_id, ds, filter_version=bad)
        assert exc.value.status == 400
        assert "invalid version" in str(exc.value.body)


def test_record_pagination_pins_the_version(typed, project_id, http):
    ds = _create_dataset(typed, project_id).data.id
    _append(typed, project_id, ds, [{"input": {"i": i}} for i in range(25)])
    first = typed.list_llm_obs_dataset_records(project_id, ds, page_limit=10)
    assert [plain(r.input)["i"] for r in first.data] == list(range(24, 14, -1))
    # A change between pages does not leak into the pages still to come.
    _append(typed, project_id, ds, [{"input": {"i": 100}}])
    rest, cursor = [], first.meta.after
    while cursor:
        page = typed.list_llm_obs_dataset_records(project_id, ds, page_limit=10, page_cursor=cursor)
        rest.extend(plain(r.input)["i"] for r in page.data)
        cursor = page.meta.after
    assert rest == list(range(14, -1, -1))


def test_batch_update_with_typed_client(typed, project_id):
    ds = _create_dataset(typed, project_id).data.id

    def batch(**attrs):
        return typed.batch_update_llm_obs_dataset(project_id, ds, m.LLMObsDatasetBatchUpdateRequest(
            data=m.LLMObsDatasetBatchUpdateDataRequest(
                attributes=m.LLMObsDatasetBatchUpdateDataAttributesRequest(**attrs), id=ds, type=DATASETS)))

    res = batch(insert_records=[
        m.LLMObsDatasetBatchUpdateInsertRecord(id="mine-1", input={"x": 1}, tags=["b:2", "a:1"]),
        m.LLMObsDatasetBatchUpdateInsertRecord(input={"x": 2}),
    ], tags=["src:typed"])
    recs = [d.records[0] for d in res.data]
    assert recs[0].id == "mine-1", "caller ids are kept verbatim"
    assert recs[1].id and recs[1].id != "mine-1"
    res = batch(update_records=[m.LLMObsDatasetBatchUpdateUpdateRecord(
        id="mine-1", tag_operations=m.LLMObsDatasetRecordTagOperations(add=["c:3"], remove=["a:1"]))],
        delete_records=[recs[1].id])
    assert {d.records[0].id for d in res.data} == {"mine-1", recs[1].id}
    current = _list_all(typed, project_id, ds)
    assert [r.id for r in current] == ["mine-1"]


def test_unknown_ids_and_bad_versions(http, typed, project_id):
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"
    _append(typed, project_id, ds, [{"input": "keep"}])
    assert http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets/nope/records").status_code == 404
    assert http.get(f"/api/v2/llm-obs/v1/nope/datasets/{ds}/records").status_code == 404
    for body, status in (
        ({"record_ids": ["missing"]}, 404),
        ({"record_ids": []}, 400),
    ):
        resp = http.post(f"{base}/records/delete", json={"data": {"type": "records", "attributes": body}})
        assert resp.status_code == status, resp.text
    rid = http.get(f"{base}/records").json()["data"][0]["id"]
    resp = http.post(f"{base}/records/delete",
                     json={"data": {"type": "records", "attributes": {"record_ids": [rid, rid]}}})
    assert resp.status_code == 400 and resp.json()["errors"][0]["source"]["pointer"] == "/data/attributes/record_ids/1"
    resp = http.post(f"{base}/records/delete",
                     json={"data": {"type": "records", "attributes": {"record_ids": [rid, "missing"]}}})
    assert resp.status_code == 404 and "missing" in resp.json()["errors"][0]["detail"]
    assert [r["id"] for r in http.get(f"{base}/records").json()["data"]] == [rid], "a failed delete deletes nothing"
    assert http.get(f"{base}/records", params={"filter[version]": "abc"}).status_code == 400
    assert http.get(f"{base}/records", params={"page[cursor]": "xyz"}).status_code == 400
    assert http.get(f"{base}/records", params={"page[limit]": "0"}).status_code == 400


def test_batch_update_is_all_or_nothing(http, typed, project_id):
    ds = _create_dataset(typed, project_id).data.id
    url = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}/batch_update"

    def post(attrs):
        return http.post(url, json={"data": {"type": "datasets", "id": ds, "attributes": attrs}})

    assert post({"insert_records": [{"id": "a", "input": 1}, {"id": "b", "input": 2}]}).status_code == 200
    bad_batches = [
        # one invalid record (missing input) among valid ones
        ({"insert_records": [{"id": "c", "input": 3}, {"id": "d"}], "delete_records": ["a"]},
         400, "/data/attributes/insert_records/1/input"),
        # an update of an unknown record
        ({"insert_records": [{"id": "c", "input": 3}], "update_records": [{"id": "zzz", "input": 9}]}, 404, None),
        # a duplicate id in one list
        ({"insert_records": [{"id": "c", "input": 3}, {"id": "c", "input": 4}]},
         400, "/data/attributes/insert_records/1/id"),
        # content PostgreSQL could not store
        ({"insert_records": [{"id": "c", "input": "nul \u0000 here"}]}, 400, "/data/attributes/insert_records/0"),
        ({"insert_records": [{"id": "c", "input": 3}], "delete_records": ["a", "nope"]}, 404, None),
        ({"insert_records": "nope"}, 400, "/data/attributes/insert_records"),
        # ids PostgreSQL could not store or look up
        ({"insert_records": [{"id": "c\u0000d", "input": 3}]}, 400, "/data/attributes/insert_records/0/id"),
        ({"update_records": [{"id": "a\u0000", "input": 3}]}, 400, "/data/attributes/update_records/0/id"),
        ({"delete_records": ["a", "b\u0000"]}, 400, "/data/attributes/delete_records/1"),
        ({"insert_records": [{"id": "c", "input": 3, "tags": ["t\u0000"]}]}, 400,
         "/data/attributes/insert_records/0/tags/0"),
    ]
    for attrs, status, pointer in bad_batches:
        resp = post(attrs)
        assert resp.status_code == status, (attrs, resp.text)
        err = resp.json()["errors"][0]
        assert err["status"] == str(status) and err["detail"]
        if pointer:
            assert err["source"]["pointer"] == pointer, err
    body = http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets", params={"filter[id]": ds}).json()
    assert body["data"][0]["attributes"]["current_version"] == 1, "no failed batch created a version"
    records = http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}/records").json()["data"]
    assert sorted(r["id"] for r in records) == ["a", "b"]

    wrong_id = http.post(url, json={"data": {"type": "datasets", "id": "other", "attributes": {}}})
    assert wrong_id.status_code == 400


def test_batch_update_requires_the_dataset_id_in_the_body(http, typed, project_id):
    """Both typed clients' models require data.id, and ddtrace always sends it: a body without it is
    refused, pointing at it, and changes nothing."""
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"
    insert = {"insert_records": [{"id": "a", "input": 1}]}
    for data in ({"type": "datasets", "attributes": insert}, {"type": "datasets", "id": None, "attributes": insert}):
        resp = http.post(f"{base}/batch_update", json={"data": data})
        assert resp.status_code == 400, resp.text
        err = resp.json()["errors"][0]
        assert err["source"]["pointer"] == "/data/id" and "data.id" in err["detail"], err
    assert http.get(f"{base}/records").json()["data"] == []
    assert [v["attributes"]["version_number"] for v in http.get(f"{base}/versions").json()["data"]] == [0]
    resp = http.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": insert}})
    assert resp.status_code == 200 and resp.json()["data"][0]["attributes"]["version"] == 1


def test_a_record_refused_late_in_a_large_insert_leaves_nothing(http, typed, project_id):
    """New records are checked as they are written (records._insert_new): one refused after
    hundreds went out must still leave no record, no version, and a server that takes the next request."""
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"
    assert http.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": {
        "insert_records": [{"id": "a", "input": 1}]}}}).status_code == 200
    good = [{"id": f"r{i}", "input": {"text": "x" * 1000, "i": i}} for i in range(600)]
    refused = [
        (f"{base}/batch_update", {"data": {"type": "datasets", "id": ds, "attributes": {
            "insert_records": [*good, {"id": "bad", "input": "nul \u0000 here"}]}}},
         "/data/attributes/insert_records/600"),
        (f"{base}/batch_update", {"data": {"type": "datasets", "id": ds, "attributes": {
            "insert_records": [*good, {"id": "bad", "input": 1, "tags": ["x" * 1025]}], "create_new_version": False}}},
         "/data/attributes/insert_records/600/tags"),
        (f"{base}/records", {"data": {"type": "records", "attributes": {"deduplicate": False, "records": [
            *({"input": r["input"]} for r in good), {"input": {"k": "nul \u0000"}}]}}},
         "/data/attributes/records/600"),
        # Deduplicating: every record is prepared and looked up before any is written.
        (f"{base}/records", {"data": {"type": "records", "attributes": {"records": [
            *({"input": r["input"]} for r in good), {"input": 2, "tags": ["x" * 1025]}]}}},
         "/data/attributes/records/600/tags"),
    ]
    for url, body, pointer in refused:
        resp = http.post(url, json=body)
        assert resp.status_code == 400, resp.text
        assert resp.json()["errors"][0]["source"]["pointer"] == pointer
    meta = http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets", params={"filter[id]": ds}).json()["data"][0]
    assert meta["attributes"]["current_version"] == 1
    assert [r["id"] for r in http.get(f"{base}/records").json()["data"]] == ["a"]
    resp = http.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": {
        "insert_records": good}}})
    assert resp.status_code == 200 and [r["attributes"]["version"] for r in resp.json()["data"][:1]] == [2]
    page = http.get(f"{base}/records", params={"page[limit]": "1000"}).json()["data"]
    assert len(page) == 601 and page[0]["id"] == "r599" and page[-1]["id"] == "a"


def test_batch_update_semantics_ddtrace_relies_on(http, typed, project_id):
    """Upsert by id, inserts before updates, null means unchanged, amend with create_new_version=false."""
    ds = _create_dataset(typed, project_id).data.id
    url = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}/batch_update"

    def post(**attrs):
        resp = http.post(url, json={"data": {"type": "datasets", "id": ds, "attributes": attrs}})
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    data = post(insert_records=[{"id": "r1", "input": {"q": 1}, "expected_output": {"a": 1}, "metadata": None,
                                 "tags": ["team:ml", "priority:high"]}], create_new_version=True)
    assert data[0]["attributes"]["version"] == 1
    assert data[0]["attributes"]["tags"] == ["priority:high", "team:ml"]
    canonical = data[0]["attributes"]["canonical_id"]
    created = data[0]["attributes"]["created_at"]

    # Re-sending the same record changes nothing and makes no version.
    data = post(insert_records=[{"id": "r1", "input": {"q": 1}, "expected_output": {"a": 1}, "metadata": None,
                                 "tags": ["priority:high", "team:ml"]}])
    assert data[0]["attributes"]["version"] == 1 and data[0]["attributes"]["created_at"] == created

    # Insert then update of the same new id in one push: the update wins.
    data = post(insert_records=[{"id": "r2", "input": "old"}], update_records=[{"id": "r2", "input": "new"}])
    assert data[0]["attributes"]["version"] == 2
    # Amend version 2 instead of making version 3.
    post(insert_records=[{"id": "r3", "input": "third"}], create_new_version=False)
    # null leaves fields unchanged; "" and {} are stored as given.
    data = post(update_records=[{"id": "r1", "input": None, "expected_output": "", "metadata": {},
                                 "tag_operations": {"set": ["only:this"]}}])
    assert data[0]["attributes"]["canonical_id"] == canonical
    assert data[0]["attributes"]["version"] == 3
    data = post(delete_records=["r3"])
    assert data[0]["attributes"]["deleted_at"] and data[0]["attributes"]["version"] == 4
    assert post() == [], "an empty batch changes nothing"

    def read(version=None):
        q = f"?filter[version]={version}" if version is not None else "?"
        return {r["id"]: r["attributes"] for r in
                http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}/records{q}").json()["data"]}

    v2 = read(2)
    assert v2["r2"]["input"] == "new" and v2["r3"]["input"] == "third"
    v3 = read(3)
    assert v3["r1"]["input"] == {"q": 1} and v3["r1"]["expected_output"] == "" and v3["r1"]["metadata"] == {}
    assert v3["r1"]["tags"] == ["only:this"]
    assert read(1)["r1"]["tags"] == ["priority:high", "team:ml"], "tags are versioned too"
    assert set(read()) == {"r1", "r2"}
    assert set(read(3)) == {"r1", "r2", "r3"}, "deleted records stay visible in older versions"

    tagged = http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}/records"
                      "?&filter[tags]=only:this&filter[tags]=nonexistent:tag").json()
    assert [r["id"] for r in tagged["data"]] == ["r1"] and tagged["meta"]["after"] == ""
    old_tags = http.get(f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}/records"
                        "?filter[version]=1&filter[tags]=team:ml").json()
    assert [r["id"] for r in old_tags["data"]] == ["r1"]


def test_tags_on_an_update_set_the_record_tags(http, typed, project_id):
    """`tags` on an update item (batch_update and the typed PATCH route) replaces the record's tags, as
    `tag_operations.set` does, in a new version; an item with both is a 400 that changes nothing."""
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"

    def batch(**attrs):
        return http.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": attrs}})

    def patch(*items):
        return http.patch(f"{base}/records", json={"data": {"type": "records", "attributes": {"records": items}}})

    def read(version=None):
        params = {"filter[version]": version} if version is not None else {}
        return {r["id"]: r["attributes"]["tags"] for r in http.get(f"{base}/records", params=params).json()["data"]}

    def versions():
        return [v["id"] for v in http.get(f"{base}/versions").json()["data"]]

    assert batch(insert_records=[{"id": "a", "input": 1, "tags": ["env:prod", "team:ml"]},
                                 {"id": "b", "input": 2, "tags": ["env:dev"]}]).status_code == 200
    resp = batch(update_records=[{"id": "a", "tags": ["lang:fr", "env:prod"]}])
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["attributes"]["tags"] == ["env:prod", "lang:fr"]
    assert resp.json()["data"][0]["attributes"]["version"] == 2
    assert read() == {"a": ["env:prod", "lang:fr"], "b": ["env:dev"]}
    assert read(1)["a"] == ["env:prod", "team:ml"], "the version before keeps its tags"

    # The typed route's update item takes them too; an empty list clears them; null leaves them.
    resp = patch({"id": "b", "tags": []}, {"id": "a", "tags": None, "input": 10})
    assert resp.status_code == 200, resp.text
    assert read() == {"a": ["env:prod", "lang:fr"], "b": []}
    assert read(3)["b"] == [] and read(2)["b"] == ["env:dev"]

    before, known = read(), versions()
    both = {"id": "a", "tags": ["x:1"], "tag_operations": {"add": ["y:2"]}}
    for resp, pointer in ((batch(insert_records=[{"id": "c", "input": 3}], update_records=[both]),
                           "/data/attributes/update_records/0/tags"),
                          (patch({"id": "b", "input": 20}, both), "/data/attributes/records/1/tags")):
        assert resp.status_code == 400, resp.text
        error = resp.json()["errors"][0]
        assert error["source"]["pointer"] == pointer
        assert "tags" in error["detail"] and "tag_operations" in error["detail"] and "not both" in error["detail"]
    assert read() == before and versions() == known, "a refused update changes nothing"
    current = {r["id"]: r["attributes"]["input"] for r in http.get(f"{base}/records").json()["data"]}
    assert current == {"a": 10, "b": 2}

    resp = batch(update_records=[{"id": "a", "tags": ["ok", ""]}])
    assert resp.status_code == 400 and resp.json()["errors"][0]["source"]["pointer"] == \
        "/data/attributes/update_records/0/tags"


def test_tags_for_all_records_of_a_write(http, typed, project_id):
    """`tags` beside `records`: on append they go to every record (as batch_update's do to its inserts);
    on the typed PATCH, where they could mean add or replace, they are a 400 that changes nothing."""
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"
    resp = http.post(f"{base}/records", json={"data": {"type": "records", "attributes": {
        "records": [{"id": "a", "input": 1, "tags": ["own:1"]}, {"id": "b", "input": 2}], "tags": ["src:api"]}}})
    assert resp.status_code == 200, resp.text
    tags = {r["id"]: r["attributes"]["tags"] for r in http.get(f"{base}/records").json()["data"]}
    assert tags == {"a": ["own:1", "src:api"], "b": ["src:api"]}

    resp = http.patch(f"{base}/records", json={"data": {"type": "records", "attributes": {
        "records": [{"id": "a", "input": 10}], "tags": ["x:1"]}}})
    assert resp.status_code == 400, resp.text
    error = resp.json()["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/tags" and "each item of records" in error["detail"]
    after = {r["id"]: (r["attributes"]["input"], r["attributes"]["tags"])
             for r in http.get(f"{base}/records").json()["data"]}
    assert after == {"a": (1, ["own:1", "src:api"]), "b": (2, ["src:api"])}
    assert len(http.get(f"{base}/versions").json()["data"]) == 2, "versions 0 and 1 only"


def test_unstable_delete_returns_deleted_datasets(http, typed, project_id):
    ds = _create_dataset(typed, project_id).data.id
    resp = http.post("/api/unstable/llm-obs/v1/datasets/delete",
                     json={"data": {"type": "datasets", "attributes": {"type": "soft", "dataset_ids": [ds]}}})
    assert resp.status_code == 200
    assert resp.json()["data"][0]["id"] == ds and resp.json()["data"][0]["attributes"]["deleted_at"]
    again = http.post("/api/unstable/llm-obs/v1/datasets/delete",
                      json={"data": {"type": "datasets", "attributes": {"type": "soft", "dataset_ids": [ds]}}})
    assert again.status_code == 404


def test_deduplicate_sees_every_open_record(http, typed, project_id):
    """`deduplicate` compares against every open record, however it was written: records inserted with
    ids (no content index kept yet), records changed or deleted since (stale index rows), restored ones."""
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"

    def batch(**attrs):
        resp = http.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": attrs}})
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def append(*inputs):
        resp = http.post(f"{base}/records", json={"data": {"type": "records", "attributes": {
            "records": [{"input": i, "expected_output": "out"} for i in inputs]}}})
        assert resp.status_code == 200, resp.text
        return [r["attributes"]["input"] for r in resp.json()["data"]]

    def current_inputs():
        return sorted(repr(r["attributes"]["input"]) for r in http.get(f"{base}/records").json()["data"])

    batch(insert_records=[{"id": f"r{i}", "input": f"q{i}", "expected_output": "out"} for i in range(3)])
    # The first deduplicating append finds the records inserted with ids.
    assert append("q0", "q1", "new", "new") == ["new"]
    # Records the server named are in the index too: once a dataset is indexed, PostgreSQL writes a later
    # request's index rows on a side connection (storage.start_index_hashes).
    assert append("new", "newer") == ["newer"]
    assert append("newer") == []
    # A record whose content changed no longer matches its old content; its new content matches.
    batch(update_records=[{"id": "r0", "input": "q0-changed"}])
    assert append("q0", "q0-changed") == ["q0"]
    # Deleted records match nothing; inserts with ids keep the index up to date.
    batch(delete_records=["r1"], insert_records=[{"id": "r9", "input": "q9", "expected_output": "out"}])
    assert append("q1", "q9") == ["q1"]
    # Restoring version 1 (r0..r2 as first inserted) brings their content back into what dedupe sees.
    r = http.post(f"{base}/restore", json={"data": {"type": "datasets", "id": ds,
                                                   "attributes": {"dataset_version": 1}}})
    assert r.status_code == 200, r.text
    assert current_inputs() == sorted(repr(f"q{i}") for i in range(3))
    assert append("q0", "q1", "q2", "q9") == ["q9"]
    # A clone starts with its own index, built when it first deduplicates.
    r = http.post(f"{base}/clone", json={"data": {"type": "datasets", "attributes": {"name": unique("c")}}})
    assert r.status_code == 200, r.text
    clone = r.json()["data"]["id"]
    resp = http.post(f"/api/v2/llm-obs/v1/{project_id}/datasets/{clone}/records", json={"data": {
        "type": "records", "attributes": {"records": [{"input": "q9", "expected_output": "out"},
                                                      {"input": "fresh", "expected_output": "out"}]}}})
    assert [r["attributes"]["input"] for r in resp.json()["data"]] == ["fresh"]


def test_record_content_reads_back_as_it_was_written(http, typed, project_id):
    """Objects keep their key order on both databases, through every write path and in every version
    (PostgreSQL's jsonb would sort keys by length: `b` before `zeta`). Dedupe still ignores key order."""
    ds = _create_dataset(typed, project_id).data.id
    base = f"/api/v2/llm-obs/v1/{project_id}/datasets/{ds}"
    content = {"input": {"zeta": 1, "b": {"yy": [1, {"q": None, "a": 2.5}], "c": "é\"\\"}},
               "expected_output": {"second": True, "first": False}, "metadata": {"zz": 1, "a": 2}}
    written = b'"input":{"zeta":1,"b":{"yy":[1,{"q":null,"a":2.5}],"c":"\xc3\xa9\\"\\\\"}}'
    written_out = b'"expected_output":{"second":true,"first":false}'
    written_meta = b'"metadata":{"zz":1,"a":2}'
    resp = http.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": {
        "insert_records": [{"id": "with-id", **content, "tags": ["t:2", "t:1"]}]}}})
    assert resp.status_code == 200, resp.text
    # The answers to writes carry the same JSON (reused from what went to the database): twice each.
    parts = (written, written_out, written_meta)
    assert [resp.content.count(part) for part in parts] == [2] * 3, resp.content[:600]
    assert resp.json()["data"][0]["attributes"]["tags"] == ["t:1", "t:2"]
    resp = http.post(f"{base}/records", json={"data": {"type": "records", "attributes": {
        "deduplicate": False, "records": [content]}}})
    assert resp.status_code == 200, resp.text
    assert [resp.content.count(part) for part in parts] == [2] * 3, resp.content[:600]
    # Same content with its keys in another order counts as a duplicate.
    shuffled = {"metadata": {"a": 2, "zz": 1}, "expected_output": {"first": False, "second": True},
                "input": {"b": {"c": "é\"\\", "yy": [1, {"a": 2.5, "q": None}]}, "zeta": 1}}
    resp = http.post(f"{base}/records", json={"data": {"type": "records", "attributes": {"records": [shuffled]}}})
    assert resp.status_code == 200 and resp.json()["data"] == [], resp.text
    for params in ({}, {"filter[version]": "1"}):
        body = http.get(f"{base}/records", params=params).content
        rows = 2 if not params else 1
        # Each record's content appears twice: in `attributes` (ddtrace) and flat (the typed client).
        assert [body.count(part) for part in (written, written_out, written_meta)] == [2 * rows] * 3, body[:600]
    records = _list_all(typed, project_id, ds)
    assert [list(plain(r.input)) for r in records] == [["zeta", "b"]] * 2


def test_a_long_change_answer_arrives_whole(http, typed, project_id):
    """Answers of STREAM_AT records or more are sent in slices after the commit: both clients must still read
    one JSON document holding every record, in the order they were sent."""
    from kennel.datasets.router import STREAM_AT

    dataset_id = _create_dataset(typed, project_id).data.id
    n = STREAM_AT + 501  # past the threshold, and not a whole number of slices
    sent = [{"input": {"i": i, "text": "é" * 50}, "expected_output": i} for i in range(n)]
    answer = _append(typed, project_id, dataset_id, sent)
    assert [plain(item.records[0].input)["i"] for item in answer.data] == list(range(n))
    listed = _list_all(typed, project_id, dataset_id)
    assert {item.id for item in answer.data} == {r.id for r in listed}

    # The ddtrace side of the same answer: `attributes` on every item, from a batch_update.
    body = {"data": {"type": "datasets", "id": dataset_id, "attributes": {
        "insert_records": [{"input": {"j": j}} for j in range(n)], "update_records": [], "delete_records": []}}}
    r = http.post(f"/api/unstable/llm-obs/v1/{project_id}/datasets/{dataset_id}/batch_update", json=body)
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert [item["attributes"]["input"]["j"] for item in items] == list(range(n))
    assert {item["attributes"]["version"] for item in items} == {2}
