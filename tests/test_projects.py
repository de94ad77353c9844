"""Projects, keys and the error contract, driven over HTTP and with the typed client."""

from __future__ import annotations

import orjson
import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_delete_projects_data_attributes_request import (
    LLMObsDeleteProjectsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_projects_data_request import LLMObsDeleteProjectsDataRequest
from datadog_api_client.v2.model.llm_obs_delete_projects_request import LLMObsDeleteProjectsRequest
from datadog_api_client.v2.model.llm_obs_project_data_attributes_request import (
    LLMObsProjectDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_project_data_request import LLMObsProjectDataRequest
from datadog_api_client.v2.model.llm_obs_project_request import LLMObsProjectRequest
from datadog_api_client.v2.model.llm_obs_project_type import LLMObsProjectType
from datadog_api_client.v2.model.llm_obs_project_update_data_attributes_request import (
    LLMObsProjectUpdateDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_project_update_data_request import LLMObsProjectUpdateDataRequest
from datadog_api_client.v2.model.llm_obs_project_update_request import LLMObsProjectUpdateRequest

from tests.conftest import kennel_cli, unique


def _create(typed, name: str, description: str | None = None):
    attrs = LLMObsProjectDataAttributesRequest(name=name)
    if description is not None:
        attrs.description = description
    return typed.create_llm_obs_project(
        LLMObsProjectRequest(data=LLMObsProjectDataRequest(attributes=attrs, type=LLMObsProjectType.PROJECTS)))


def test_typed_project_lifecycle(typed):
    name = unique("proj")
    created = _create(typed, name, "first")
    pid = created.data.id
    assert created.data.attributes.name == name
    assert created.data.attributes.description == "first"

    again = _create(typed, name)
    assert again.data.id == pid, "create is get-or-create by name"

    listed = typed.list_llm_obs_projects(filter_name=name)
    assert [p.id for p in listed.data] == [pid]
    assert typed.list_llm_obs_projects(filter_id=pid).data[0].attributes.name == name

    new_name = unique("renamed")
    updated = typed.update_llm_obs_project(pid, LLMObsProjectUpdateRequest(data=LLMObsProjectUpdateDataRequest(
        attributes=LLMObsProjectUpdateDataAttributesRequest(name=new_name, description="second"),
        type=LLMObsProjectType.PROJECTS)))
    assert updated.data.attributes.name == new_name
    assert updated.data.attributes.description == "second"

    typed.delete_llm_obs_projects(LLMObsDeleteProjectsRequest(data=LLMObsDeleteProjectsDataRequest(
        attributes=LLMObsDeleteProjectsDataAttributesRequest(project_ids=[pid]), type=LLMObsProjectType.PROJECTS)))
    assert typed.list_llm_obs_projects(filter_id=pid).data == []
    recreated = _create(typed, new_name)
    assert recreated.data.id != pid, "a deleted project's name can be used again"


def test_project_pagination_is_newest_first_and_terminates(typed, http):
    prefix = unique("page")
    ids = [_create(typed, f"{prefix}-{i}").data.id for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(10_000):
        params = {"page[limit]": "2"}
        if cursor:
            params["page[cursor]"] = cursor
        body = http.get("/api/v2/llm-obs/v1/projects", params=params).json()
        seen.extend(p["id"] for p in body["data"] if p["attributes"]["name"].startswith(prefix))
        cursor = body["meta"]["after"]
        if not cursor:
            break
    assert cursor == "", "the last page says so with an empty cursor"
    assert seen == list(reversed(ids))


def test_unstable_route_is_create_or_get(http):
    name = unique("ddtrace-proj")
    body = {"data": {"type": "projects", "attributes": {"name": name, "description": ""}}}
    first = http.post("/api/unstable/llm-obs/v1/projects", json=body)
    second = http.post("/api/unstable/llm-obs/v1/projects", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json()["data"]["id"] == second.json()["data"]["id"]
    assert first.headers["content-type"] == "application/vnd.api+json"


@pytest.mark.parametrize(
    "body, pointer",
    [
        (b'{"data": {"type": "projects", "attributes": {"name": 5}}}', "/data/attributes/name"),
        (b'{"data": {"type": "datasets", "attributes": {"name": "x"}}}', "/data/type"),
        (b'{"data": {"type": "projects", "attributes": {}}}', "/data/attributes/name"),
        (b'{"data": {"type": "projects"', ""),
        (b"", ""),
    ],
)
def test_bad_bodies_get_jsonapi_400(http, body, pointer):
    resp = http.post("/api/v2/llm-obs/v1/projects", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    err = resp.json()["errors"][0]
    assert err["status"] == "400"
    assert err["title"] and err["detail"]
    assert err["source"]["pointer"] == pointer


def test_typed_client_sees_errors(typed):
    with pytest.raises(ApiException) as exc:
        typed.update_llm_obs_project("00000000-0000-0000-0000-000000000000", LLMObsProjectUpdateRequest(
            data=LLMObsProjectUpdateDataRequest(attributes=LLMObsProjectUpdateDataAttributesRequest(name="x"),
                                                type=LLMObsProjectType.PROJECTS)))
    assert exc.value.status == 404


def test_delete_unknown_or_duplicate_ids_changes_nothing(http, typed):
    pid = _create(typed, unique("keep")).data.id
    for ids, status in (([pid, "nope"], 404), ([pid, pid], 400), ([], 400)):
        resp = http.post("/api/v2/llm-obs/v1/projects/delete",
                         json={"data": {"type": "projects", "attributes": {"project_ids": ids}}})
        assert resp.status_code == status, resp.text
        assert typed.list_llm_obs_projects(filter_id=pid).data, "nothing was deleted"


def test_rename_to_taken_name_is_conflict(http, typed):
    a = _create(typed, unique("a"))
    b = _create(typed, unique("b"))
    resp = http.patch(f"/api/v2/llm-obs/v1/projects/{b.data.id}",
                      json={"data": {"type": "projects", "attributes": {"name": a.data.attributes.name}}})
    assert resp.status_code == 409
    assert a.data.attributes.name in resp.json()["errors"][0]["detail"]


def test_bad_query_parameters(http):
    for params in ({"page[limit]": "zero"}, {"page[limit]": "0"}, {"page[cursor]": "!!garbage"}):
        resp = http.get("/api/v2/llm-obs/v1/projects", params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["errors"][0]["source"]["parameter"] in params


def test_keys_are_required_and_revocable(server):
    name = unique("revoke-me")
    api_key, app_key = server.new_key(name)
    path = "/api/v2/llm-obs/v1/projects"
    with server.client(headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as c:
        assert c.get(path).status_code == 200
    with server.client(headers={"DD-API-KEY": "", "DD-APPLICATION-KEY": ""}) as c:
        resp = c.get(path)
        assert resp.status_code == 403 and resp.json()["errors"][0]["status"] == "403"
        project_name = unique("forbidden")
        assert c.post(path, json={"data": {"type": "projects", "attributes": {"name": project_name}}}
                      ).status_code == 403
    with server.client(headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": "wrong"}) as c:
        assert c.get(path).status_code == 403
    with server.client() as c:
        assert c.get(path, params={"filter[name]": project_name}).json()["data"] == [], "a 403 writes nothing"

    listed = kennel_cli("keys", "list", "--json", "--database-url", server.database_url).stdout
    assert name in listed and api_key not in listed and app_key not in listed, "keys are stored hashed"
    kennel_cli("keys", "revoke", name, "--database-url", server.database_url)
    with server.client(headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as c:
        assert c.get(path).status_code == 403
    assert kennel_cli("keys", "revoke", name, "--database-url", server.database_url, check=False).returncode == 1


def test_revoking_a_name_several_pairs_share(server):
    """A shared name revokes nothing unless --all says to: the user sees every pair it names and can
    revoke one by id or API key."""
    url = server.database_url
    name = unique("shared")
    pairs = [server.new_key(name) for _ in range(4)]
    listed = [orjson.loads(line) for line in kennel_cli("keys", "list", "--json", "--database-url", url).stdout.split()]
    mine = [k for k in listed if k["name"] == name]
    assert [k["api_key_last4"] for k in mine] == [api[-4:] for api, _ in pairs]

    def status(pair) -> int:
        with server.client(headers={"DD-API-KEY": pair[0], "DD-APPLICATION-KEY": pair[1]}) as c:
            return c.get("/api/v2/llm-obs/v1/projects").status_code

    def refused(*args: str) -> str:
        out = kennel_cli("keys", "revoke", *args, "--database-url", url, check=False)
        assert out.returncode == 1, out
        return out.stderr

    err = refused(name)
    assert "4 active key pairs are named" in err and "nothing was revoked" in err and "--all" in err, err
    for k in mine:
        line = next(line for line in err.splitlines() if k["id"] in line)
        assert k["api_key_last4"] in line and k["created_at"][:10] in line and k["created_at"][11:19] in line, err
    assert [status(p) for p in pairs] == [200] * 4
    # --all takes a name; an id or API key names one pair.
    assert "--all" in refused(mine[0]["id"], "--all")
    assert [status(p) for p in pairs] == [200] * 4

    out = kennel_cli("keys", "revoke", mine[0]["id"], "--database-url", url)
    assert mine[0]["id"] in out.stdout
    kennel_cli("keys", "revoke", pairs[1][0], "--database-url", url)
    assert [status(p) for p in pairs] == [403, 403, 200, 200]
    err = refused(name)
    assert "2 active key pairs" in err and mine[2]["id"] in err and mine[3]["id"] in err and mine[0]["id"] not in err
    out = kennel_cli("keys", "revoke", name, "--all", "--database-url", url)
    assert "Revoked 2 key pairs" in out.stdout and mine[2]["id"] in out.stdout and mine[3]["id"] in out.stdout, out
    assert [status(p) for p in pairs] == [403] * 4
    assert "no active key" in refused(name, "--all")


def test_body_over_limit_is_413(server, tmp_path):
    from tests.conftest import start_server, stop_server

    small = start_server(server.database_url, server.backend, tmp_path, env={"KENNEL_MAX_BODY_BYTES": "1000"})
    try:
        with small.client() as c:
            big = {"data": {"type": "projects", "attributes": {"name": "x" * 2000}}}
            resp = c.post("/api/v2/llm-obs/v1/projects", json=big)
            assert resp.status_code == 413
            assert "1000" in resp.json()["errors"][0]["detail"]
            # Chunked bodies have no declared length; they are cut off while streaming.
            chunks = iter([b'{"data": {"type": "projects", "attributes": {"name": "', b"y" * 3000, b'"}}}'])
            resp = c.post("/api/v2/llm-obs/v1/projects", content=chunks)
            assert resp.status_code == 413
    finally:
        stop_server(small)
