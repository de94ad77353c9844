"""Restore, clone and the draft lock, with the typed client and over plain HTTP (both backends)."""

from __future__ import annotations

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_dataset_clone_data_attributes_request import (
    LLMObsDatasetCloneDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_dataset_clone_data_request import LLMObsDatasetCloneDataRequest
from datadog_api_client.v2.model.llm_obs_dataset_clone_request import LLMObsDatasetCloneRequest
from datadog_api_client.v2.model.llm_obs_dataset_restore_version_data_attributes_request import (
    LLMObsDatasetRestoreVersionDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_dataset_restore_version_data_request import (
    LLMObsDatasetRestoreVersionDataRequest,
)
from datadog_api_client.v2.model.llm_obs_dataset_restore_version_request import LLMObsDatasetRestoreVersionRequest
from datadog_api_client.v2.model.llm_obs_dataset_type import LLMObsDatasetType

from tests.conftest import run_ddtrace, unique
from tests.test_dataset_lifecycle_helpers import (
    V1,
    batch,
    content,
    dataset_attrs,
    error_detail,
    make_dataset,
    make_project,
    ok_batch,
    records,
)


def _restore_body(did: str, version: int) -> LLMObsDatasetRestoreVersionRequest:
    return LLMObsDatasetRestoreVersionRequest(data=LLMObsDatasetRestoreVersionDataRequest(
        id=did, type=LLMObsDatasetType.DATASETS,
        attributes=LLMObsDatasetRestoreVersionDataAttributesRequest(dataset_version=version)))


def _clone_body(did: str, name: str, description: str | None = None) -> LLMObsDatasetCloneRequest:
    attrs = LLMObsDatasetCloneDataAttributesRequest(name=name)
    if description is not None:
        attrs.description = description
    return LLMObsDatasetCloneRequest(data=LLMObsDatasetCloneDataRequest(
        id=did, type=LLMObsDatasetType.DATASETS, attributes=attrs))


def _history(http, pid, did):
    """v1: a, b, c; v2: a changed, b deleted, d added; v3: c's tags changed."""
    v1 = ok_batch(http, pid, did, inserts=[
        {"id": "a", "input": {"q": "a"}, "expected_output": "A", "metadata": {"m": 1}, "tags": ["t:1"]},
        {"id": "b", "input": "b"},
        {"id": "c", "input": [1, 2], "expected_output": {"x": None}},
    ])
    v2 = ok_batch(http, pid, did, inserts=[{"id": "d", "input": "d"}],
                  updates=[{"id": "a", "input": {"q": "a2"}}], deletes=["b"])
    v3 = ok_batch(http, pid, did, updates=[{"id": "c", "tag_operations": {"add": ["new:tag"]}}])
    assert (v1, v2, v3) == (1, 2, 3)


def test_restore_with_typed_client(typed, http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    _history(http, pid, did)
    at = {v: records(http, pid, did, v) for v in (1, 2, 3)}

    assert typed.restore_llm_obs_dataset_version(pid, did, _restore_body(did, 1)) is None
    assert dataset_attrs(http, pid, did)["current_version"] == 4
    now = records(http, pid, did)
    assert content(now) == content(at[1])
    assert {k: v["canonical_id"] for k, v in now.items()} == {k: v["canonical_id"] for k, v in at[1].items()}
    # History stays: every older version still reads as it did.
    for v in (1, 2, 3):
        assert content(records(http, pid, did, v)) == content(at[v])

    # Restoring a later version forward again, then version 0 (empty).
    typed.restore_llm_obs_dataset_version(pid, did, _restore_body(did, 3))
    assert content(records(http, pid, did)) == content(at[3])
    typed.restore_llm_obs_dataset_version(pid, did, _restore_body(did, 0))
    assert records(http, pid, did) == {}
    assert dataset_attrs(http, pid, did)["current_version"] == 6
    # A write after a restore works on the restored state.
    ok_batch(http, pid, did, inserts=[{"id": "a", "input": "again"}])
    assert content(records(http, pid, did)) == {"a": ("again", None, None, [])}


def test_restore_rejects_bad_versions(typed, http):
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "x", "input": 1}])
    for bad in (2, -1):
        with pytest.raises(ApiException) as exc:
            typed.restore_llm_obs_dataset_version(pid, did, _restore_body(did, bad))
        assert exc.value.status == 400
    url = f"{V1}/{pid}/datasets/{did}/restore"
    r = http.post(url, json={"data": {"type": "datasets", "id": did, "attributes": {"dataset_version": 7}}})
    assert r.status_code == 400 and "greater than the current version" in error_detail(r)
    assert r.json()["errors"][0]["source"]["pointer"] == "/data/attributes/dataset_version"
    for body in ({}, {"data": {"type": "datasets", "attributes": {}}},
                 {"data": {"type": "datasets", "attributes": {"dataset_version": "one"}}},
                 {"data": {"type": "datasets", "id": "other", "attributes": {"dataset_version": 0}}}):
        r = http.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
    assert http.post(url, content=b"{not json").status_code == 400
    r = http.post(f"{V1}/{pid}/datasets/nope/restore",
                  json={"data": {"type": "datasets", "attributes": {"dataset_version": 0}}})
    assert r.status_code == 404
    assert dataset_attrs(http, pid, did)["current_version"] == 1, "failed restores change nothing"


def test_clone_with_typed_client(typed, http):
    pid = make_project(http)
    src_name = unique("src")
    did = make_dataset(http, pid, src_name)
    _history(http, pid, did)
    src_before = records(http, pid, did)

    name = unique("clone")
    resp = typed.clone_llm_obs_dataset(pid, did, _clone_body(did, name, "a copy"))
    cid = resp.data.id
    assert cid != did
    assert resp.data.attributes.name == name
    assert resp.data.attributes.description == "a copy"
    assert resp.data.attributes.current_version == 1
    cloned = records(http, pid, cid)
    assert content(cloned) == content(src_before), "same record ids and content"
    assert not {r["canonical_id"] for r in cloned.values()} & {r["canonical_id"] for r in src_before.values()}
    assert len({r["canonical_id"] for r in cloned.values()}) == len(cloned)
    assert records(http, pid, cid, 0) == {}

    # Independent afterwards, in both directions.
    ok_batch(http, pid, cid, updates=[{"id": "a", "input": "clone-only"}], deletes=["c"])
    ok_batch(http, pid, did, inserts=[{"id": "src-only", "input": 1}])
    assert content(records(http, pid, did))["a"] == content(src_before)["a"]
    assert "src-only" not in records(http, pid, cid)
    assert set(records(http, pid, cid)) == {"a", "d"}

    # The name is taken now (by the clone, and by the source): 409.
    for taken in (name, src_name):
        with pytest.raises(ApiException) as exc:
            typed.clone_llm_obs_dataset(pid, did, _clone_body(did, taken))
        assert exc.value.status == 409

    # Without a description, the clone keeps the source's; an empty source clones to an empty dataset.
    empty = make_dataset(http, pid)
    r = http.post(f"{V1}/{pid}/datasets/{empty}/clone",
                  json={"data": {"type": "datasets", "attributes": {"name": unique("e")}}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["attributes"]["current_version"] == 0
    for body in ({"data": {"type": "datasets", "attributes": {"name": ""}}},
                 {"data": {"type": "datasets", "attributes": {}}},
                 {"data": {"type": "records", "attributes": {"name": "x"}}}):
        assert http.post(f"{V1}/{pid}/datasets/{did}/clone", json=body).status_code == 400
    assert http.post(f"{V1}/{pid}/datasets/missing/clone",
                     json={"data": {"type": "datasets", "attributes": {"name": unique("m")}}}).status_code == 404


def test_draft_lock(typed, http, server):
    pid = make_project(http)
    did = make_dataset(http, pid)
    ok_batch(http, pid, did, inserts=[{"id": "r1", "input": 1}])

    state = typed.get_llm_obs_dataset_draft_state(pid, did)
    assert state.data.id == did and state.data.attributes.user.id == ""
    assert http.get(f"{V1}/{pid}/datasets/{did}/draft_state").json()["data"]["attributes"]["locked"] is False

    locked = typed.lock_llm_obs_dataset_draft_state(pid, did)
    assert locked.data.attributes.user.name == "test-suite"
    since = locked.data.attributes.drafting_since
    # Locking again as the holder keeps the lock and its start time.
    assert typed.lock_llm_obs_dataset_draft_state(pid, did).data.attributes.drafting_since == since
    got = typed.get_llm_obs_dataset_draft_state(pid, did).data.attributes
    assert got.user.id == locked.data.attributes.user.id and got.drafting_since == since

    other_api, other_app = server.new_key("bob")
    with server.client(headers={"DD-API-KEY": other_api, "DD-APPLICATION-KEY": other_app}) as bob:
        for r in (
            bob.patch(f"{V1}/{pid}/datasets/{did}/draft_state/lock"),
            bob.patch(f"{V1}/{pid}/datasets/{did}/draft_state/unlock"),
            batch(bob, pid, did, inserts=[{"id": "r2", "input": 2}]),
            bob.post(f"{V1}/{pid}/datasets/{did}/restore",
                     json={"data": {"type": "datasets", "attributes": {"dataset_version": 0}}}),
            bob.patch(f"{V1}/{pid}/datasets/{did}", json={"data": {"type": "datasets",
                                                                   "attributes": {"description": "x"}}}),
        ):
            assert r.status_code == 409, r.text
            assert "test-suite" in error_detail(r)
        # Reading and cloning a locked dataset are fine.
        assert bob.get(f"{V1}/{pid}/datasets/{did}/records").status_code == 200
        assert bob.post(f"{V1}/{pid}/datasets/{did}/clone",
                        json={"data": {"type": "datasets", "attributes": {"name": unique("c")}}}).status_code == 200

        # The holder writes freely, then releases the lock.
        assert ok_batch(http, pid, did, inserts=[{"id": "r3", "input": 3}]) == 2
        assert typed.unlock_llm_obs_dataset_draft_state(pid, did) is None
        assert typed.get_llm_obs_dataset_draft_state(pid, did).data.attributes.user.id == ""
        assert batch(bob, pid, did, inserts=[{"id": "r2", "input": 2}]).status_code == 200
        r = bob.patch(f"{V1}/{pid}/datasets/{did}/draft_state/lock")
        assert r.status_code == 200 and r.json()["data"]["attributes"]["user"]["name"] == "bob"
        with pytest.raises(ApiException) as exc:
            typed.lock_llm_obs_dataset_draft_state(pid, did)
        assert exc.value.status == 409
        assert bob.patch(f"{V1}/{pid}/datasets/{did}/draft_state/unlock").status_code == 200
    # Unlocking an unlocked dataset is a no-op.
    assert http.patch(f"{V1}/{pid}/datasets/{did}/draft_state/unlock").status_code == 200
    assert http.get(f"{V1}/{pid}/datasets/missing/draft_state").status_code == 404


def test_a_locked_datasets_project_cannot_be_deleted_or_renamed_by_another_key(http, server):
    """Deleting the project would take the holder's dataset with it, and renaming it would move the
    dataset away from the project name ddtrace finds it by: both are the holder's alone."""
    name = unique("locked-proj")
    pid = make_project(http, name)
    did = make_dataset(http, pid)
    free = make_project(http)
    ok_batch(http, pid, did, inserts=[{"id": "r1", "input": 1}])
    assert http.patch(f"{V1}/{pid}/datasets/{did}/draft_state/lock").status_code == 200

    def project(pid):
        found = http.get(f"{V1}/projects", params={"filter[id]": pid}).json()["data"]
        return found[0]["attributes"] if found else None

    bob_api, bob_app = server.new_key(unique("bob"))
    with server.client(headers={"DD-API-KEY": bob_api, "DD-APPLICATION-KEY": bob_app}) as bob:
        for ids, index in (([pid], 0), ([free, pid], 1)):
            r = bob.post(f"{V1}/projects/delete", json={"data": {"type": "projects", "attributes": {
                "project_ids": ids}}})
            assert r.status_code == 409, r.text
            err = r.json()["errors"][0]
            assert "test-suite" in err["detail"] and did in err["detail"] and "deleted" in err["detail"], err
            assert err["source"]["pointer"] == f"/data/attributes/project_ids/{index}"
        r = bob.patch(f"{V1}/projects/{pid}", json={"data": {"type": "projects", "attributes": {
            "name": unique("renamed"), "description": "bob's"}}})
        assert r.status_code == 409, r.text
        assert "test-suite" in error_detail(r) and "renamed" in error_detail(r)
        # Nothing changed: both projects, the name, the description, the dataset and its lock.
        assert project(free) is not None
        assert project(pid)["name"] == name and project(pid)["description"] in (None, "")
        assert records(http, pid, did).keys() == {"r1"}
        state = http.get(f"{V1}/{pid}/datasets/{did}/draft_state").json()["data"]["attributes"]
        assert state["locked"] is True and state["user"]["name"] == "test-suite"
        # A description harms no one; the same name is no rename.
        r = bob.patch(f"{V1}/projects/{pid}", json={"data": {"type": "projects", "attributes": {
            "name": name, "description": "bob's notes"}}})
        assert r.status_code == 200, r.text
        assert project(pid)["description"] == "bob's notes"

    # The holder may do both.
    new_name = unique("renamed")
    r = http.patch(f"{V1}/projects/{pid}", json={"data": {"type": "projects", "attributes": {"name": new_name}}})
    assert r.status_code == 200 and project(pid)["name"] == new_name, r.text
    r = http.post(f"{V1}/projects/delete", json={"data": {"type": "projects", "attributes": {"project_ids": [pid]}}})
    assert r.status_code == 204, r.text
    assert project(pid) is None


def test_ddtrace_pulls_restored_and_cloned(server, http):
    """ddtrace never calls restore or clone itself; it must read their results like any dataset."""
    pid_name = unique("proj")
    pid = make_project(http, pid_name)
    name = unique("dd")
    did = make_dataset(http, pid, name)
    _history(http, pid, did)
    http.post(f"{V1}/{pid}/datasets/{did}/restore",
              json={"data": {"type": "datasets", "attributes": {"dataset_version": 1}}}).raise_for_status()
    clone_name = unique("ddclone")
    http.post(f"{V1}/{pid}/datasets/{did}/clone",
              json={"data": {"type": "datasets", "attributes": {"name": clone_name}}}).raise_for_status()
    out = run_ddtrace(server, f"""
res = {{}}
for n in ({name!r}, {clone_name!r}):
    ds = LLMObs.pull_dataset(dataset_name=n, project_name={pid_name!r})
    res[n] = {{"version": ds.latest_version,
              "records": sorted([r["record_id"], r["input_data"]] for r in ds)}}
print(json.dumps(res))
""")
    expected = sorted([["a", {"q": "a"}], ["b", "b"], ["c", [1, 2]]])
    assert out[name] == {"version": 4, "records": expected}
    assert out[clone_name] == {"version": 1, "records": expected}
