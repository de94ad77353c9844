"""People and roles through the API and the command line (issue 18), on both databases."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests.conftest import Server, kennel_cli

V2 = "/api/v2/llm-obs/v1"


def make_user(server: Server, role: str, *, email: str | None = None) -> tuple[str, dict[str, str]]:
    """A new user of this role with a key pair; (user name, headers of that pair)."""
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    args = ["users", "create", name, "--role", role, "--password-stdin", "--database-url", server.database_url]
    if email:
        args += ["--email", email]
    kennel_cli(*args, input="correct horse battery\n")
    keys = orjson.loads(kennel_cli("keys", "create", "--name", "laptop", "--user", name, "--json",
                                   "--database-url", server.database_url).stdout)
    return name, {"DD-API-KEY": keys["api_key"], "DD-APPLICATION-KEY": keys["app_key"]}


def project_and_queue(server: Server, **queue_attrs) -> tuple[str, str]:
    with server.client() as http:
        project = http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": f"people-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
        queue = http.post("/api/v2/llm-obs/v1/annotation-queues", json={"data": {"type": "queues", "attributes": {
            "project_id": project, "name": "q", "annotation_schema": {"label_schemas": [
                {"name": "ok", "type": "boolean"}]}, **queue_attrs}}})
        assert queue.status_code == 201, queue.text
        qid = queue.json()["data"]["id"]
        added = http.post(f"/api/v2/llm-obs/v1/annotation-queues/{qid}/interactions", json={"data": {
            "type": "interactions", "attributes": {"interactions": [
                {"type": "display_block", "display_block": [{"type": "text", "content": "hello"}]}]}}})
        assert added.status_code == 201, added.text
    return project, qid


def annotate(server: Server, headers: dict[str, str], qid: str) -> tuple[int, dict]:
    with server.client(headers=headers) as http:
        interactions = http.get(f"/api/v2/llm-obs/v1/annotation-queues/{qid}/annotated-interactions")
        if interactions.status_code != 200:
            return interactions.status_code, interactions.json()
        iid = interactions.json()["data"]["attributes"]["annotated_interactions"][0]["id"]
        schema = http.get(f"/api/v2/llm-obs/v1/annotation-queues/{qid}/label-schema").json()
        label = schema["data"]["attributes"]["annotation_schema"]["label_schemas"][0]["id"]
        r = http.post(f"/api/v2/llm-obs/v1/annotation-queues/{qid}/annotations", json={"data": {
            "type": "annotations", "attributes": {"annotations": [
                {"interaction_id": iid, "label_values": [{"label_schema_id": label, "value": True}]}]}}})
        return r.status_code, r.json()


def test_annotator_key_may_review_but_not_read_or_write_datasets(server: Server) -> None:
    _, annotator = make_user(server, "annotator")
    project, qid = project_and_queue(server)
    with server.client(headers=annotator) as http:
        r = http.get(f"{V2}/projects")
        assert r.status_code == 403
        assert "`read` permission" in r.json()["errors"][0]["detail"]
        r = http.post(f"{V2}/{project}/datasets", json={"data": {"type": "datasets", "attributes": {"name": "x"}}})
        assert r.status_code == 403 and "`write` permission" in r.json()["errors"][0]["detail"]
        assert http.get("/api/v2/llm-obs/v1/annotation-queues").status_code == 200
    with server.client() as http:
        names = [d["attributes"]["name"] for d in http.get(f"{V2}/{project}/datasets").json()["data"]]
    assert names == []  # the refused create changed nothing
    status, body = annotate(server, annotator, qid)
    assert status == 200 and body["data"]["attributes"]["errors"] == []


def test_member_key_writes_and_the_person_is_the_author(server: Server) -> None:
    name, member = make_user(server, "member")
    with server.client(headers=member) as http:
        r = http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": f"m-{uuid.uuid4().hex[:8]}"}}})
        assert r.status_code == 200
        author = r.json()["data"]["attributes"]["author"]["id"]
    users = {u["username"]: u for u in map(orjson.loads, kennel_cli(
        "users", "list", "--json", "--database-url", server.database_url).stdout.splitlines())}
    assert author == users[name]["id"]


def test_two_key_pairs_of_one_person_are_one_annotator(server: Server) -> None:
    name, first = make_user(server, "annotator")
    keys = orjson.loads(kennel_cli("keys", "create", "--name", "second", "--user", name, "--json",
                                   "--database-url", server.database_url).stdout)
    second = {"DD-API-KEY": keys["api_key"], "DD-APPLICATION-KEY": keys["app_key"]}
    _, qid = project_and_queue(server)
    assert annotate(server, first, qid)[0] == 200
    assert annotate(server, second, qid)[0] == 200
    with server.client() as http:
        item = http.get(f"/api/v2/llm-obs/v1/annotation-queues/{qid}/annotated-interactions").json()
    annotations = item["data"]["attributes"]["annotated_interactions"][0]["annotations"]
    assert [a["created_by"] for a in annotations] == [name]


def test_restricted_queue_takes_annotations_from_listed_reviewers_only(server: Server) -> None:
    email = f"rev-{uuid.uuid4().hex[:6]}@example.com"
    _, reviewer = make_user(server, "annotator", email=email)
    _, outsider = make_user(server, "annotator", email=f"out-{uuid.uuid4().hex[:6]}@example.com")
    _, member = make_user(server, "member")
    _, qid = project_and_queue(server, reviewer_emails=[email], restrict_to_reviewers=True)
    assert annotate(server, reviewer, qid)[0] == 200
    # An annotator who may not review it does not see it at all.
    assert annotate(server, outsider, qid)[0] == 404
    with server.client(headers=outsider) as http:
        assert qid not in [q["id"] for q in http.get("/api/v2/llm-obs/v1/annotation-queues").json()["data"]]
    # A member sees it, but may not annotate in it.
    status, body = annotate(server, member, qid)
    assert status == 403 and "reviewer" in body["errors"][0]["detail"]


def test_a_disabled_persons_keys_stop_working(server: Server) -> None:
    name, member = make_user(server, "member")
    with server.client(headers=member) as http:
        assert http.get(f"{V2}/projects").status_code == 200
        kennel_cli("users", "disable", name, "--database-url", server.database_url)
        assert http.get(f"{V2}/projects").status_code == 403
        kennel_cli("users", "enable", name, "--database-url", server.database_url)
        assert http.get(f"{V2}/projects").status_code == 200


def test_role_change_applies_to_the_next_request(server: Server) -> None:
    name, headers = make_user(server, "annotator")
    with server.client(headers=headers) as http:
        assert http.get(f"{V2}/projects").status_code == 403
        kennel_cli("users", "set-role", name, "member", "--database-url", server.database_url)
        assert http.get(f"{V2}/projects").status_code == 200


@pytest.mark.parametrize("args, message", [
    (["users", "create", "x y", "--password-stdin"], "user name"),
    (["users", "create", "ok-name", "--role", "boss", "--password-stdin"], "unknown role"),
    (["users", "create", "ok-name2", "--email", "not-an-email", "--password-stdin"], "not an email"),
    (["users", "set-role", "nobody-at-all", "member"], "no user"),
    (["keys", "create", "--name", "k", "--user", "nobody-at-all"], "no user"),
])
def test_cli_refuses_bad_people_input(server: Server, args: list[str], message: str) -> None:
    out = kennel_cli(*args, "--database-url", server.database_url, input="long enough pw\n", check=False)
    assert out.returncode == 1
    assert message in out.stderr


def test_short_password_and_taken_name_are_refused(server: Server) -> None:
    db = ["--database-url", server.database_url]
    short = kennel_cli("users", "create", f"s-{uuid.uuid4().hex[:6]}", "--password-stdin", *db, input="short\n",
                       check=False)
    assert short.returncode == 1 and "at least 8" in short.stderr
    name, _ = make_user(server, "member")
    again = kennel_cli("users", "create", name.upper(), "--password-stdin", *db, input="long enough pw\n",
                       check=False)
    assert again.returncode == 1 and "taken" in again.stderr


def test_last_admin_cannot_be_demoted_or_disabled(server: Server) -> None:
    db = ["--database-url", server.database_url]
    admins = [u for u in map(orjson.loads, kennel_cli("users", "list", "--json", *db).stdout.splitlines())
              if u["role"] == "admin" and not u["disabled_at"]]
    if not admins:
        name, _ = make_user(server, "admin")
    else:
        name = admins[0]["username"]
        for other in admins[1:]:
            kennel_cli("users", "set-role", other["username"], "member", *db)
    out = kennel_cli("users", "set-role", name, "member", *db, check=False)
    assert out.returncode == 1 and "last active admin" in out.stderr
    out = kennel_cli("users", "disable", name, *db, check=False)
    assert out.returncode == 1 and "last active admin" in out.stderr


def test_keys_list_names_each_pairs_person(server: Server) -> None:
    name, _ = make_user(server, "member")
    rows = [orjson.loads(line) for line in kennel_cli("keys", "list", "--json", "--database-url",
                                                      server.database_url).stdout.splitlines()]
    assert any(r["user"] == name for r in rows)
    assert any(r["name"] == "test-suite" and r["user"] is None for r in rows)


# Kennel's people API: users (admins) and key pairs (one's own, or anyone's as an admin) -------------------

USERS = "/api/kennel/v1/users"


def test_admin_manages_people_through_the_api_and_others_are_refused(server: Server) -> None:
    _, annotator = make_user(server, "annotator")
    name = f"api-{uuid.uuid4().hex[:8]}"
    with server.client() as admin:
        made = admin.post(USERS, json={"data": {"type": "users", "attributes": {
            "username": name, "email": f"{name}@example.com", "role": "member", "password": "long enough pw"}}})
        assert made.status_code == 201, made.text
        user = made.json()["data"]
        assert user["attributes"]["role"] == "member" and "password" not in str(user)
        assert name in [u["attributes"]["username"] for u in admin.get(USERS).json()["data"]]
        changed = admin.patch(f"{USERS}/{user['id']}", json={"data": {"type": "users", "attributes": {
            "role": "annotator", "disabled": True}}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["data"]["attributes"]["role"] == "annotator"
        assert changed.json()["data"]["attributes"]["disabled_at"]
        bad = admin.patch(f"{USERS}/{user['id']}", json={"data": {"type": "users", "attributes": {"role": "boss"}}})
        assert bad.status_code == 400 and "role" in bad.text
        assert admin.patch(f"{USERS}/nobody-{name}", json={"data": {"type": "users", "attributes": {
            "role": "member"}}}).status_code == 404
    with server.client(headers=annotator) as http:
        refused = http.post(USERS, json={"data": {"type": "users", "attributes": {
            "username": f"x{name}", "role": "admin", "password": "long enough pw"}}})
        assert refused.status_code == 403 and "`people`" in refused.json()["errors"][0]["detail"]
        assert http.get(USERS).status_code == 403
    with server.client() as admin:
        assert f"x{name}" not in admin.get(USERS).text


def test_a_person_manages_their_own_key_pairs_and_only_theirs(server: Server) -> None:
    member_name, member = make_user(server, "member")
    other_name, _ = make_user(server, "annotator")
    with server.client(headers=member) as http:
        made = http.post(f"{USERS}/me/keys", json={"data": {"type": "key_pairs", "attributes": {"name": "ci"}}})
        assert made.status_code == 201, made.text
        new = made.json()["data"]["attributes"]
        assert new["owner"]["username"] == member_name and len(new["api_key"]) == 32
        listed = http.get(f"{USERS}/me/keys").json()["data"]
        assert {k["attributes"]["name"] for k in listed} == {"laptop", "ci"}
        assert new["api_key"] not in str(listed)  # the secret is shown once, in the answer that made it
        assert http.get(f"{USERS}/{other_name}/keys").status_code == 403
        assert http.post(f"{USERS}/{other_name}/keys", json={"data": {"type": "key_pairs", "attributes": {
            "name": "sneaky"}}}).status_code == 403
        empty = http.post(f"{USERS}/me/keys", json={"data": {"type": "key_pairs", "attributes": {"name": ""}}})
        assert empty.status_code == 400
        assert http.get("/api/kennel/v1/keys").status_code == 403
    ci = {"DD-API-KEY": new["api_key"], "DD-APPLICATION-KEY": new["app_key"]}
    with server.client(headers=ci) as http:
        assert http.get(f"{V2}/projects").status_code == 200
        assert http.delete(f"{USERS}/me/keys/{made.json()['data']['id']}").status_code == 200
        assert http.get(f"{V2}/projects").status_code == 403
    with server.client(headers=member) as http:
        assert http.delete(f"{USERS}/me/keys/{made.json()['data']['id']}").status_code == 404


def test_admin_makes_and_revokes_key_pairs_for_others(server: Server) -> None:
    name, _ = make_user(server, "annotator")
    with server.client() as admin:
        made = admin.post(f"{USERS}/{name}/keys", json={"data": {"type": "key_pairs", "attributes": {
            "name": "for-them"}}})
        assert made.status_code == 201, made.text
        pair = made.json()["data"]
        # The legacy pair the test server runs with belongs to no one, and is listed as such.
        assert any(k["attributes"]["owner"] is None for k in admin.get("/api/kennel/v1/keys").json()["data"])
        assert admin.get(f"{USERS}/me/keys").status_code == 404
    theirs = {"DD-API-KEY": pair["attributes"]["api_key"], "DD-APPLICATION-KEY": pair["attributes"]["app_key"]}
    with server.client(headers=theirs) as http:
        assert http.get(f"{V2}/projects").status_code == 403  # an annotator's pair: annotator rights only
        assert http.get(f"{USERS}/me/keys").status_code == 200
    with server.client() as admin:
        assert admin.delete(f"{USERS}/{name}/keys/{pair['id']}").status_code == 200
    with server.client(headers=theirs) as http:
        assert http.get(f"{USERS}/me/keys").status_code == 403
