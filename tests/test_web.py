"""The web app in a real headless Chromium and over plain HTTP, against a real server per backend.

Each backend gets a fresh database and server for this module, so `kennel serve` prints the first
admin's set-up link, which the first test follows in the browser. The HTTP-level tests (CSRF, sessions,
sign-in failures, redirects, headers, escaping in the HTML) need no browser; the browser tests drive the
pages as a person would, and each saves a screenshot to $KENNEL_SHOTS (default /tmp/kennel-shots).

Browser tests use the system Chromium (/usr/bin/chromium, or $KENNEL_CHROMIUM); never `playwright
install`. Without it they skip locally and fail in CI (CI=true or KENNEL_REQUIRE_CHROMIUM=1, which
.ci/run sets after installing Debian's chromium).

Sign-in failures are counted per account and per client address, so every client here comes from an
address of its own (X-Forwarded-For, which uvicorn honours from 127.0.0.1, as from a proxy on the host):
one test's failures never slow another's sign-ins.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import markupsafe
import pytest

from tests.conftest import BACKENDS, ROOT, Server, create_database, start_server, stop_server

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says what is missing
    expect = None  # type: ignore[assignment]

V2 = "/api/v2/llm-obs/v1"
UNSTABLE = "/api/unstable/llm-obs/v1"
PASSWORD = "correct horse battery"
ADMIN = "root"
# The one message every kind of failed sign-in shows (the service's, as a sentence).
SIGN_IN_FAILED = "Wrong user name or password, or the account cannot sign in."
HTMX = ROOT / "src/kennel/web/static/vendor/htmx-4.0.1.min.js"
HTMX_SHA256 = "a0abb04f2f45a1f89d1d4844023245537e5e6014c87b144553e0607b4cc32130"
SHOTS = Path(os.environ.get("KENNEL_SHOTS", "/tmp/kennel-shots"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# Names that would run script if a page put them in its HTML unescaped.
HOSTILE = {
    "project": "<script>window.__pwned=1</script>",
    "project_description": '<img src=x onerror="window.__pwned=1">',
    "dataset": '<img src=x onerror="window.__pwned=1">',
    "dataset_description": '"><svg onload="window.__pwned=1">',
    "experiment": "<iframe srcdoc=\"<script>parent.__pwned=1</script>\"></iframe>",
    "queue": "javascript:window.__pwned=1//",
    "queue_description": "<a href=\"javascript:window.__pwned=1\">click</a>",
}


# The site: a fresh database and server per backend ------------------------------------------------

@dataclass
class Site:
    server: Server
    setup_path: str
    admin_ready: bool = False
    users: dict[str, str] = field(default_factory=dict)  # role -> user name, made by the `people` fixture

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def backend(self) -> str:
        return self.server.backend


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    databases = create_database(request.param, tmp_path_factory)
    database_url = next(databases)
    try:
        # start_server's own key pair belongs to no one, so nobody can sign in yet and the link is printed.
        server = start_server(database_url, request.param, tmp_path_factory.mktemp("web-logs"))
        try:
            found = re.search(r"http://127\.0\.0\.1:\d+(/setup/[A-Za-z0-9_-]+)\s", server.log())
            assert found, f"kennel serve printed no set-up link:\n{server.log()}"
            yield Site(server, found.group(1))
        finally:
            stop_server(server)
            assert "Traceback" not in server.log(), server.log()
    finally:
        databases.close()


def new_address() -> str:
    b = uuid.uuid4().bytes
    return f"10.{b[0]}.{b[1]}.{b[2]}"


def client(site: Site, address: str | None = None) -> httpx.Client:
    """A cookie-keeping HTTP client coming from an address of its own; redirects are not followed."""
    return httpx.Client(base_url=site.url, headers={"X-Forwarded-For": address or new_address()}, timeout=60)


def form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(c: httpx.Client, login: str, password: str, next_url: str | None = None) -> httpx.Response:
    token = form_token(c.get("/login").text)
    return c.post("/login", data={"csrf_token": token, "login": login, "password": password,
                                  **({"next": next_url} if next_url is not None else {})})


def signed_in(site: Site, login: str, password: str = PASSWORD) -> httpx.Client:
    """A client signed in as this person (not yet opened, so that it can be used in `with`)."""
    address = new_address()
    with client(site, address) as c:
        r = sign_in(c, login, password)
        assert r.status_code == 303, r.text
        session = c.cookies["kennel_session"]
    signed = client(site, address)
    signed.cookies.set("kennel_session", session)
    return signed


def csrf_of(c: httpx.Client) -> str:
    page = c.get("/settings")
    assert page.status_code == 200, page.status_code
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found
    return found.group(1)


def alert_of(page: str) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    assert found, page
    return html.unescape(found.group(1))


def set_cookies(r: httpx.Response) -> list[str]:
    return r.headers.get_list("set-cookie")


def sets_session(r: httpx.Response) -> bool:
    return any(c.startswith("kennel_session=") and "Max-Age=0" not in c and 'kennel_session="";' not in c
               for c in set_cookies(r))


def api(site: Site) -> httpx.Client:
    return site.server.client()


def setup_by_http(site: Site) -> None:
    c = client(site)
    token = form_token(c.get(site.setup_path).text)
    r = c.post(site.setup_path, data={"csrf_token": token, "username": ADMIN, "email": "root@example.com",
                                      "password": PASSWORD})
    assert r.status_code == 303, r.text
    site.admin_ready = True


@pytest.fixture(scope="module")
def admin(site: Site) -> str:
    """The first admin's user name; made in the browser by the first test, or here if it did not run."""
    if not site.admin_ready:
        setup_by_http(site)
    return ADMIN


def add_person(site: Site, role: str, *, disabled: bool = False) -> str:
    """A new person of this role, added by the admin on the People page."""
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    with signed_in(site, ADMIN) as c:
        r = c.post("/admin/people", data={"csrf_token": csrf_of(c), "username": name,
                                          "email": f"{name}@example.com", "role": role, "password": PASSWORD})
        assert r.status_code == 303, r.text
        if disabled:
            page = c.get("/admin/people").text
            user_id = re.search(rf"<tr><td>{name}</td>.*?/admin/people/([0-9a-f-]+)/disable", page, re.S)
            assert user_id, page
            r = c.post(f"/admin/people/{user_id.group(1)}/disable", data={"csrf_token": csrf_of(c)})
            assert r.status_code == 303, r.text
    return name


@pytest.fixture(scope="module")
def people(site: Site, admin: str) -> dict[str, str]:
    if not site.users:
        site.users.update(member=add_person(site, "member"), annotator=add_person(site, "annotator"),
                          disabled=add_person(site, "member", disabled=True))
    return site.users


def _post(c: httpx.Client, path: str, attributes: dict[str, Any], type_: str) -> dict[str, Any]:
    r = c.post(path, json={"data": {"type": type_, "attributes": attributes}})
    assert r.status_code in (200, 201), r.text
    return r.json()["data"]


def make_project(site: Site, names: dict[str, str]) -> str:
    """A project with a dataset, an experiment and an annotation queue, named as given, made over the API."""
    with api(site) as c:
        pid = _post(c, f"{V2}/projects", {"name": names["project"], "description": names["project_description"]},
                    "projects")["id"]
        ds = _post(c, f"{V2}/{pid}/datasets", {"name": names["dataset"],
                                               "description": names["dataset_description"]}, "datasets")["id"]
        _post(c, f"{UNSTABLE}/experiments", {"name": names["experiment"], "project_id": pid, "dataset_id": ds},
              "experiments")
        _post(c, f"{V2}/annotation-queues", {
            "project_id": pid, "name": names["queue"], "description": names["queue_description"],
            "annotation_schema": {"label_schemas": [{"name": "helpful", "type": "boolean"}]}}, "queues")
    return pid


@pytest.fixture(scope="module")
def sample(site: Site, admin: str) -> str:
    """An ordinary project, for the pages' screenshots."""
    return make_project(site, {
        "project": f"support-bot-{uuid.uuid4().hex[:4]}", "project_description": "Answers customers' questions",
        "dataset": "golden-answers", "dataset_description": "Reviewed answers",
        "experiment": "gpt-prompt-v2", "queue": "tone-review", "queue_description": "Is the answer polite?"})


@pytest.fixture(scope="module")
def hostile(site: Site, admin: str) -> str:
    return make_project(site, HOSTILE)


# The browser --------------------------------------------------------------------------------------

def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1") or os.environ.get("KENNEL_REQUIRE_CHROMIUM"):
        pytest.fail(f"{reason}; browser tests must run in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    exe = os.environ.get("KENNEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(exe, os.X_OK):
        _missing(f"no Chromium at {exe} (apt-get install chromium, or set KENNEL_CHROMIUM)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def browsing(browser: Any, site: Site) -> Iterator[Any]:
    """A page in a fresh browser profile. Afterwards: no script errors or CSP violations were reported,
    and every request the pages made went to this server."""
    context = browser.new_context(base_url=site.url, extra_http_headers={"X-Forwarded-For": new_address()})
    page = context.new_page()
    problems: list[str] = []

    def console(message: Any) -> None:
        # A page answered 403 or 404 is reported as a failed resource; that is expected, not a problem.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    def request(req: Any) -> None:
        if not (req.url.startswith(site.url + "/") or req.url.startswith("data:")):
            problems.append(f"request to {req.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", request)
    try:
        yield page
    finally:
        context.close()
    assert problems == []


def shot(page: Any, site: Site, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{site.backend}-{name}.png"), full_page=True)


def browser_sign_in(page: Any, login: str, password: str = PASSWORD) -> None:
    page.get_by_label("User name or email").fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def cookie(page: Any, name: str) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == name), None)


# First admin, sign-in and sign-out -----------------------------------------------------------------

def test_first_admin_is_made_from_the_printed_link_once(browser: Any, site: Site) -> None:
    if site.admin_ready:
        pytest.skip("the first admin was made by an earlier test; run this module in its order")
    with browsing(browser, site) as page:
        page.goto(site.setup_path)
        expect(page.get_by_role("heading", name="Create the first admin")).to_be_visible()
        shot(page, site, "setup")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Email (optional)").fill("root@example.com")
        page.get_by_label("Password (at least 8 characters)").fill(PASSWORD)
        page.get_by_role("button", name="Create admin and sign in").click()
        expect(page).to_have_url(site.url + "/")
        site.admin_ready = True
        expect(page.get_by_role("heading", name="Projects")).to_be_visible()
        expect(page.locator(".user-menu summary")).to_have_text(re.compile(rf"{ADMIN}\s+admin"))
        session = cookie(page, "kennel_session")
        assert session and session["httpOnly"] and session["sameSite"] == "Lax"
        shot(page, site, "projects-empty")

        page.goto(site.setup_path)
        expect(page.get_by_role("heading", name="This set-up link no longer works")).to_be_visible()
        shot(page, site, "setup-used")

    # Posted to again, with a valid form token, it makes nobody.
    with client(site) as c:
        assert c.get(site.setup_path).status_code == 404
        r = c.post(site.setup_path, data={"csrf_token": form_token(c.get("/login").text), "username": "intruder",
                                          "password": PASSWORD})
        assert r.status_code == 400 and "has been used" in alert_of(r.text)
        assert not sets_session(r)
        assert sign_in(c, "intruder", PASSWORD).status_code == 401
    with signed_in(site, ADMIN) as c:
        assert "intruder" not in c.get("/admin/people").text


def test_sign_in_and_sign_out_in_the_browser(browser: Any, site: Site, people: dict[str, str]) -> None:
    with browsing(browser, site) as page:
        page.goto("/settings")
        expect(page).to_have_url(site.url + "/login?next=%2Fsettings")
        shot(page, site, "login")
        browser_sign_in(page, people["member"], "not the password")
        expect(page.get_by_role("alert")).to_have_text(SIGN_IN_FAILED)
        expect(page.get_by_label("User name or email")).to_have_value(people["member"])
        assert cookie(page, "kennel_session") is None
        shot(page, site, "login-failed")

        browser_sign_in(page, people["member"])
        expect(page).to_have_url(site.url + "/settings")
        expect(page.get_by_role("heading", name="Settings")).to_be_visible()
        page.locator(".user-menu summary").click()
        shot(page, site, "user-menu")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(site.url + "/login")
        assert cookie(page, "kennel_session") is None
        page.goto("/")
        expect(page).to_have_url(site.url + "/login?next=%2F")


def test_failed_sign_ins_look_alike_and_start_no_session(site: Site, people: dict[str, str]) -> None:
    attempts = {"wrong password": (people["member"], "not the password"),
                "unknown user": (f"nobody-{uuid.uuid4().hex[:6]}", PASSWORD),
                "disabled user": (people["disabled"], PASSWORD)}
    messages = {}
    for what, (login, password) in attempts.items():
        with client(site) as c:
            r = sign_in(c, login, password)
            assert r.status_code == 401, what
            assert not sets_session(r), what
            messages[what] = alert_of(r.text)
            assert c.get("/").headers["location"] == "/login?next=%2F", what
    assert set(messages.values()) == {SIGN_IN_FAILED}, messages
    # The right password of an enabled account does sign in (so the failures above are the accounts').
    with client(site) as c:
        r = sign_in(c, people["member"], PASSWORD)
        assert r.status_code == 303 and sets_session(r)


def test_session_cookie_replayed_after_sign_out_is_refused(site: Site, people: dict[str, str]) -> None:
    with signed_in(site, people["member"]) as c:
        token, session = csrf_of(c), c.cookies["kennel_session"]
        keys_before = c.get("/settings").text.count("aria-label=\"Revoke")
        r = c.post("/logout", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
    with client(site) as replay:
        replay.cookies.set("kennel_session", session)
        for path in ("/", "/settings"):
            r = replay.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        r = replay.post("/settings/keys", data={"csrf_token": token, "name": "replayed"})
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with signed_in(site, people["member"]) as c:
        assert c.get("/settings").text.count("aria-label=\"Revoke") == keys_before


def test_state_changing_requests_without_the_csrf_token_are_refused(site: Site, admin: str) -> None:
    c = signed_in(site, admin)
    token = csrf_of(c)
    page = c.get("/settings").text
    before = page.count("aria-label=\"Revoke")
    people_before = c.get("/admin/people").text.count("<tr><td>")
    refused = [
        ("/settings/keys", {"name": "no-token"}, {}),
        ("/settings/keys", {"name": "wrong-token", "csrf_token": "x" * 43}, {}),
        ("/settings/keys", {"name": "wrong-header"}, {"X-CSRF-Token": "x" * 43}),
        ("/admin/people", {"username": f"csrf-{uuid.uuid4().hex[:6]}", "role": "admin", "password": PASSWORD}, {}),
        ("/logout", {}, {}),
    ]
    for path, data, headers in refused:
        r = c.post(path, data=data, headers=headers)
        assert r.status_code == 403, (path, data, r.status_code)
        assert "CSRF token is missing or wrong" in r.text
    # Nothing changed, and the session still works.
    assert c.get("/settings").text.count("aria-label=\"Revoke") == before
    assert c.get("/admin/people").text.count("<tr><td>") == people_before
    # The same request with the token goes through (so the refusals above were the token's).
    r = c.post("/settings/keys", data={"name": "with-token"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 303
    assert c.get("/settings").text.count("aria-label=\"Revoke") == before + 1
    # The sign-in form needs its own token too.
    with client(site) as anon:
        r = anon.post("/login", data={"login": admin, "password": PASSWORD})
        assert r.status_code == 403 and not sets_session(r)


# Roles ---------------------------------------------------------------------------------------------

def test_roles_shape_the_pages(site: Site, people: dict[str, str], sample: str) -> None:
    with signed_in(site, people["annotator"]) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/queues"
        page = c.get("/queues")
        assert page.status_code == 200 and "tone-review" in page.text
        assert 'href="/admin/people"' not in page.text and ">Projects</a>" not in page.text
        for path, doing in (("/admin/people", "managing people"), (f"/projects/{sample}", "reading projects")):
            r = c.get(path)
            assert r.status_code == 403 and f"does not allow {doing}" in html.unescape(r.text), path
    with signed_in(site, people["member"]) as c:
        page = c.get("/")
        assert page.status_code == 200 and ">Projects</a>" in page.text and 'href="/admin/people"' not in page.text
        assert c.get("/admin/people").status_code == 403
    with signed_in(site, ADMIN) as c:
        assert 'href="/admin/people"' in c.get("/").text and c.get("/admin/people").status_code == 200


def test_annotator_and_member_in_the_browser(browser: Any, site: Site, people: dict[str, str],
                                            sample: str) -> None:
    with browsing(browser, site) as page:
        page.goto("/login")
        browser_sign_in(page, people["annotator"])
        expect(page).to_have_url(site.url + "/queues")
        nav = page.get_by_role("navigation", name="main")
        expect(nav.get_by_role("link")).to_have_text(["My queues"])
        expect(page.get_by_role("cell", name="tone-review")).to_be_visible()
        shot(page, site, "queues-annotator")
        page.goto("/admin/people")
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(page.locator("main")).to_contain_text("whose role (annotator) does not allow managing people")
        shot(page, site, "people-refused-annotator")
    with browsing(browser, site) as page:
        page.goto("/login")
        browser_sign_in(page, people["member"])
        expect(page).to_have_url(site.url + "/")
        nav = page.get_by_role("navigation", name="main")
        expect(nav.get_by_role("link")).to_have_text(["Projects", "My queues"])
        page.get_by_role("link", name=re.compile("^support-bot")).click()
        expect(page.get_by_role("cell", name="golden-answers")).to_be_visible()
        shot(page, site, "project-datasets")
        page.get_by_role("link", name="Experiments").click()
        expect(page.get_by_role("cell", name=re.compile("^gpt-prompt-v2"))).to_be_visible()
        expect(page.locator("tbody")).not_to_contain_text("None")  # an experiment that reported no status
        shot(page, site, "project-experiments")
        page.get_by_role("link", name="Annotation queues").click()
        expect(page.get_by_role("cell", name="tone-review")).to_be_visible()
        shot(page, site, "project-queues")
        page.goto(f"/projects/{sample}?tab=datasets&q=nothing-like-this")
        expect(page.get_by_text("No datasets whose name contains “nothing-like-this”.")).to_be_visible()
        page.goto("/admin/people")
        expect(page.locator("main")).to_contain_text("whose role (member) does not allow managing people")


def test_admin_adds_and_disables_a_person_in_the_browser(browser: Any, site: Site, admin: str) -> None:
    name = f"newbie-{uuid.uuid4().hex[:6]}"
    with browsing(browser, site) as page:
        page.goto("/login")
        browser_sign_in(page, admin)
        page.get_by_role("link", name="People").click()
        expect(page).to_have_url(site.url + "/admin/people")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Email").fill(f"{name}@example.com")
        page.get_by_label("Role", exact=True).select_option("annotator")
        page.get_by_label("First password").fill(PASSWORD)
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
        expect(page.get_by_label(f"Role of {name}")).to_have_value("annotator")
        shot(page, site, "people")
        with client(site) as c:
            assert sign_in(c, name, PASSWORD).status_code == 303
            page.get_by_role("button", name=f"Disable {name}").click()
            expect(page.get_by_role("button", name=f"Enable {name}")).to_be_visible()
            # Disabling ends the person's sessions at once.
            assert c.get("/queues").status_code == 303
        # The last admin cannot demote themself.
        page.get_by_label(f"Role of {admin}").select_option("member")
        page.locator("tr", has=page.get_by_role("cell", name=admin, exact=True)).get_by_role(
            "button", name="Change").click()
        expect(page.get_by_role("alert")).to_contain_text("last active admin")
        shot(page, site, "people-last-admin")
        # An admin gives the new person a key pair, from their row of the People page.
        page.get_by_role("link", name=f"0 key pairs of {name}").click()
        expect(page.get_by_role("heading", name=f"Key pairs of {name}")).to_be_visible()
        page.get_by_label("New key pair named").fill("their-ci")
        page.get_by_role("button", name="Create key pair").click()
        # Disabled above: a pair of theirs would authorise nothing, so none is made.
        expect(page.get_by_role("status")).to_contain_text(f"{name} is disabled")
        page.get_by_role("link", name="People", exact=True).click()
        page.get_by_role("button", name=f"Enable {name}").click()
        page.get_by_role("link", name=f"0 key pairs of {name}").click()
        page.get_by_label("New key pair named").fill("their-ci")
        page.get_by_role("button", name="Create key pair").click()
        expect(page.get_by_text("Copy these now: they are not shown again.")).to_be_visible()
        expect(page.get_by_role("button", name="Revoke their-ci")).to_be_visible()
        shot(page, site, "person-keys")


# Key pairs -----------------------------------------------------------------------------------------

def typed_client(site: Site, api_key: str, app_key: str) -> Any:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.agent_observability_api import AgentObservabilityApi

    cfg = Configuration(host=site.url)
    cfg.api_key["apiKeyAuth"] = api_key
    cfg.api_key["appKeyAuth"] = app_key
    for op in list(cfg.unstable_operations.values):
        if "llm_obs" in op:
            cfg.unstable_operations[op.split(".", 1)[1]] = True
    return AgentObservabilityApi(ApiClient(cfg))  # closed with its pool when collected


def test_key_pair_made_in_settings_is_shown_once_and_works_until_revoked(browser: Any, site: Site,
                                                                          admin: str) -> None:
    from datadog_api_client.exceptions import ForbiddenException
    from datadog_api_client.v2.model.llm_obs_project_data_attributes_request import (
        LLMObsProjectDataAttributesRequest,
    )
    from datadog_api_client.v2.model.llm_obs_project_data_request import LLMObsProjectDataRequest
    from datadog_api_client.v2.model.llm_obs_project_request import LLMObsProjectRequest
    from datadog_api_client.v2.model.llm_obs_project_type import LLMObsProjectType

    member = add_person(site, "member")
    with browsing(browser, site) as page:
        page.goto("/login?next=/settings")
        browser_sign_in(page, member)
        expect(page.get_by_text("You have no key pairs.")).to_be_visible()
        page.get_by_label("New key pair named").fill("laptop")
        page.get_by_role("button", name="Create key pair").click()
        expect(page).to_have_url(site.url + "/settings")
        expect(page.get_by_text("Copy these now: they are not shown again.")).to_be_visible()
        api_key, app_key = page.locator(".new-key code").all_inner_texts()
        assert re.fullmatch(r"[0-9a-f]{32}", api_key) and re.fullmatch(r"[0-9a-f]{40}", app_key)
        expect(page.locator("tbody tr", has_text="laptop")).to_contain_text(f"…{api_key[-4:]}")
        shot(page, site, "settings-new-key")

        page.reload()
        expect(page.get_by_role("heading", name="Your key pairs")).to_be_visible()
        expect(page.locator(".new-key")).to_have_count(0)
        assert api_key not in page.content() and app_key not in page.content()
        expect(page.get_by_role("button", name="Revoke laptop")).to_have_count(1)  # reloading made no second
        assert cookie(page, "kennel_new_key") is None
        shot(page, site, "settings-after-reload")

        typed = typed_client(site, api_key, app_key)  # the member's pair: the member's rights
        name = f"from-laptop-{uuid.uuid4().hex[:6]}"
        made = typed.create_llm_obs_project(LLMObsProjectRequest(data=LLMObsProjectDataRequest(
            attributes=LLMObsProjectDataAttributesRequest(name=name), type=LLMObsProjectType.PROJECTS)))
        assert [p.id for p in typed.list_llm_obs_projects(filter_name=name).data] == [made.data.id]

        page.get_by_role("button", name="Revoke laptop").click()
        expect(page.get_by_text("You have no key pairs.")).to_be_visible()
        shot(page, site, "settings-revoked")
        with pytest.raises(ForbiddenException) as refused:
            typed.list_llm_obs_projects()
        assert refused.value.status == 403
    with httpx.Client(base_url=site.url, headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as c:
        assert c.get(f"{V2}/projects").status_code == 403


def test_new_keys_reach_the_settings_page_once_over_http(site: Site, people: dict[str, str]) -> None:
    c = signed_in(site, people["member"])
    r = c.post("/settings/keys", data={"csrf_token": csrf_of(c), "name": "ci"})
    assert r.status_code == 303 and r.headers["location"] == "/settings"
    shown = c.get("/settings")
    assert shown.headers["cache-control"] == "no-store"
    api_key, app_key = re.findall(r"<dd><code>([0-9a-f]+)</code></dd>", shown.text)
    with httpx.Client(base_url=site.url, headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}) as k:
        assert k.get(f"{V2}/projects").status_code == 200
    again = c.get("/settings").text
    assert api_key not in again and app_key not in again
    # The one-time cookie shows nothing to another person, nor a pair that is not theirs.
    other = signed_in(site, people["annotator"])
    other.cookies.set("kennel_new_key", f"{api_key}.{app_key}", path="/settings")
    assert api_key not in other.get("/settings").text
    other.cookies.set("kennel_new_key", f"{site.server.api_key}.{site.server.app_key}", path="/settings")
    assert site.server.api_key not in other.get("/settings").text


def test_admin_gives_and_revokes_another_persons_key_pair_over_http(site: Site, people: dict[str, str]) -> None:
    admin = signed_in(site, ADMIN)
    page = admin.get("/admin/people").text
    found = re.search(rf'href="/admin/people/([0-9a-f-]+)/keys">\d+ key pairs?<span class="visually-hidden"> of '
                      rf'{people["annotator"]}<', page)
    assert found, page
    url = f"/admin/people/{found.group(1)}/keys"
    r = admin.post(url, data={"csrf_token": csrf_of(admin), "name": "given"})
    assert r.status_code == 303 and r.headers["location"] == url
    shown = admin.get(url)
    assert f"Key pairs of {people['annotator']}" in shown.text and shown.headers["cache-control"] == "no-store"
    api_key, app_key = re.findall(r"<dd><code>([0-9a-f]+)</code></dd>", shown.text)
    assert api_key not in admin.get(url).text
    theirs = {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}
    with httpx.Client(base_url=site.url, headers=theirs) as k:
        # The pair acts as the annotator: their own keys, not the projects.
        assert k.get("/api/kennel/v1/users/me/keys").status_code == 200
        assert k.get(f"{V2}/projects").status_code == 403
        key_id = next(row["id"] for row in k.get("/api/kennel/v1/users/me/keys").json()["data"]
                      if row["attributes"]["name"] == "given")
    # A member may not open someone else's keys page, nor post to it.
    member = signed_in(site, people["member"])
    assert member.get(url).status_code == 403
    assert member.post(f"{url}/{key_id}/revoke", data={"csrf_token": csrf_of(member)}).status_code == 403
    r = admin.post(f"{url}/{key_id}/revoke", data={"csrf_token": csrf_of(admin)})
    assert r.status_code == 303
    with httpx.Client(base_url=site.url, headers=theirs) as k:
        assert k.get("/api/kennel/v1/users/me/keys").status_code == 403
    # The server's own pair (made before anyone signed in) belongs to no one and is listed for admins.
    assert "Key pairs that belong to no one" in admin.get("/admin/people").text


# Redirects, escaping, headers ----------------------------------------------------------------------

OFF_SITE = ["//evil.example", "https://evil.example", "http://evil.example/", "/\\evil.example",
            "\\\\evil.example", "/\t/evil.example", "/\n/evil.example", " //evil.example", "https:evil.example",
            "javascript:alert(1)", "//evil.example/%2F..", "/\r\nSet-Cookie: pwned=1"]


def on_site(target: str) -> bool:
    """Whether a browser would stay on this server going to `target` (it drops tabs and newlines, and
    reads a backslash as a slash)."""
    seen = re.sub(r"[\t\n\r]", "", target).replace("\\", "/").strip()
    return seen.startswith("/") and not seen.startswith("//")


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_next_never_leaves_the_site(site: Site, admin: str, target: str) -> None:
    with client(site) as c:
        form = c.get("/login", params={"next": target})
        hidden = re.search(r'name="next" value="([^"]*)"', form.text)
        assert hidden and on_site(html.unescape(hidden.group(1)))
        r = sign_in(c, admin, PASSWORD, next_url=target)
        assert r.status_code == 303 and on_site(r.headers["location"]), r.headers["location"]
        assert "pwned" not in r.headers.get("set-cookie", "")
        r = c.get("/login", params={"next": target})  # signed in already: straight on
        assert r.status_code == 303 and on_site(r.headers["location"]), r.headers["location"]
        assert c.get("/login", params={"next": "/settings"}).headers["location"] == "/settings"


def test_login_next_in_the_browser(browser: Any, site: Site, admin: str) -> None:
    for target in ("//evil.example", "https://evil.example"):
        with browsing(browser, site) as page:  # would report a request to evil.example
            page.goto("/login?" + str(httpx.QueryParams({"next": target})))
            browser_sign_in(page, admin)
            expect(page).to_have_url(site.url + "/")


def test_injected_names_are_escaped_in_the_html(site: Site, admin: str, hostile: str) -> None:
    with signed_in(site, admin) as c:
        pages = [c.get("/").text, c.get("/queues").text] + [
            c.get(f"/projects/{hostile}", params={"tab": tab}).text for tab in ("datasets", "experiments", "queues")]
        joined = "\n".join(pages)
        for what, text in HOSTILE.items():
            if what != "dataset_description":  # no page shows it
                assert str(markupsafe.escape(text)) in joined, text
        for raw in ("<script>window", "<img src=x", "<svg", "<iframe", 'href="javascript:'):
            assert raw not in joined
        reflected = c.get("/", params={"q": '"><img src=x onerror="window.__pwned=1">'}).text
        assert "<img src=x" not in reflected and 'value="&#34;&gt;&lt;img' in reflected


def test_injected_names_stay_inert_in_the_browser(browser: Any, site: Site, admin: str, hostile: str) -> None:
    with browsing(browser, site) as page:
        page.goto("/login")
        browser_sign_in(page, admin)
        expect(page).to_have_url(site.url + "/")
        visits = [("/", "projects", [HOSTILE["project"], HOSTILE["project_description"]]),
                  (f"/projects/{hostile}?tab=datasets", "project-hostile-datasets",
                   [HOSTILE["project"], HOSTILE["dataset"]]),
                  (f"/projects/{hostile}?tab=experiments", "project-hostile-experiments", [HOSTILE["experiment"]]),
                  (f"/projects/{hostile}?tab=queues", "project-hostile-queues",
                   [HOSTILE["queue"], HOSTILE["queue_description"]]),
                  ("/queues", "queues-admin", [HOSTILE["queue"], HOSTILE["queue_description"]]),
                  ("/?" + str(httpx.QueryParams({"q": HOSTILE["project"]})), "projects-search-hostile",
                   [HOSTILE["project"]])]
        for path, name, texts in visits:
            page.goto(path)
            main = page.locator("main")
            for text in texts:
                expect(main).to_contain_text(text)
            assert page.evaluate("typeof window.__pwned") == "undefined", path
            assert page.locator("main script, main img, main svg, main iframe").count() == 0, path
            assert page.locator("main a[href^='javascript:']").count() == 0, path
            scripts = page.locator("script").evaluate_all("found => found.map(s => s.getAttribute('src'))")
            assert len(scripts) == 1 and scripts[0].startswith("/static/vendor/htmx-4.0.1.min.js"), (path, scripts)
            shot(page, site, name)
        # A search for the name shows it in the search box, as typed.
        expect(page.get_by_label("Name contains")).to_have_value(HOSTILE["project"])
    # The user name typed into the sign-in form comes back in it, inert.
    with browsing(browser, site) as page:
        page.goto("/login")
        browser_sign_in(page, HOSTILE["dataset_description"], "whatever password")
        expect(page.get_by_role("alert")).to_be_visible()
        expect(page.get_by_label("User name or email")).to_have_value(HOSTILE["dataset_description"])
        assert page.evaluate("typeof window.__pwned") == "undefined"


class Refs(HTMLParser):
    """What a page loads (scripts, styles, images, icons) and any script it carries inline."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio") and a.get("src"):
            self.loads.append(a["src"] or "")
        elif tag == "script":
            self.inline.append("<script> without src")
        if tag == "link" and a.get("href"):
            self.loads.append(a["href"] or "")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"{tag} {name}={value}")
            if name in ("href", "action", "formaction") and (value or "").strip().lower().startswith("javascript:"):
                self.inline.append(f"{tag} {name}={value}")


def html_pages(site: Site, people: dict[str, str], project: str) -> dict[str, httpx.Response]:
    pages: dict[str, httpx.Response] = {}
    with client(site) as anon:
        pages["login"] = anon.get("/login")
        pages["setup used"] = anon.get(site.setup_path)
        pages["failed sign-in"] = sign_in(anon, f"nobody-{uuid.uuid4().hex[:6]}", "whatever password")
        pages["expired sign-in form"] = anon.post("/login", data={"login": "x", "password": "y"})
    with signed_in(site, ADMIN) as c:
        for path in ("/", "/?q=support", f"/projects/{project}", f"/projects/{project}?tab=experiments",
                     f"/projects/{project}?tab=queues", "/queues", "/settings", "/admin/people",
                     "/projects/no-such-project"):
            pages[path] = c.get(path)
        pages["new key"] = c.post("/settings/keys", data={"csrf_token": csrf_of(c), "name": "csp"},
                                  follow_redirects=True)
        pages["csrf refused"] = c.post("/settings/keys", data={"name": "x"})
    with signed_in(site, people["annotator"]) as c:
        pages["role refused"] = c.get("/admin/people")
    return pages


def test_every_page_has_a_csp_without_inline_script(site: Site, people: dict[str, str], sample: str) -> None:
    statuses = set()
    for name, r in html_pages(site, people, sample).items():
        statuses.add(r.status_code)
        assert r.headers["content-type"].startswith("text/html"), name
        csp = r.headers.get("content-security-policy")
        assert csp, name
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        script_src = directives.get("script-src", directives.get("default-src"))
        assert script_src and "'unsafe-inline'" not in script_src and "*" not in script_src, (name, csp)
        assert directives.get("object-src") == ["'none'"] and directives.get("frame-ancestors") == ["'none'"]
        refs = Refs()
        refs.feed(r.text)
        assert refs.inline == [], name
        assert r.headers["x-content-type-options"] == "nosniff"
    assert {200, 401, 403, 404} <= statuses  # error pages were among them


def test_htmx_is_the_pinned_file_and_pages_load_nothing_from_elsewhere(site: Site, people: dict[str, str],
                                                                       sample: str) -> None:
    assert hashlib.sha256(HTMX.read_bytes()).hexdigest() == HTMX_SHA256
    assert HTMX.with_name("htmx-4.0.1.LICENSE").is_file()
    loaded: set[str] = set()
    for name, r in html_pages(site, people, sample).items():
        refs = Refs()
        refs.feed(r.text)
        for ref in refs.loads:
            assert not re.match(r"^\s*([a-z][a-z0-9+.-]*:|//|\\\\)", ref, re.I) or ref.startswith("data:"), (name, ref)
            loaded.add(ref)
        assert not re.search(r"https?://", " ".join(refs.loads)), name
    with httpx.Client(base_url=site.url) as c:
        scripts = [ref for ref in loaded if "htmx" in ref]
        assert scripts and all(hashlib.sha256(c.get(ref).content).hexdigest() == HTMX_SHA256 for ref in scripts)
        for ref in loaded - set(scripts):
            if ref.startswith("data:"):
                continue
            body = c.get(ref)
            assert body.status_code == 200, ref
            assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", body.text) and "@import" not in body.text, ref


# Sessions across servers, sign-in slow-down -------------------------------------------------------

def test_sessions_hold_across_two_servers_on_one_database(site: Site, people: dict[str, str],
                                                          tmp_path: Path) -> None:
    other = start_server(site.server.database_url, site.backend, tmp_path)
    try:
        with signed_in(site, people["member"]) as a:
            session = a.cookies["kennel_session"]
            with client(Site(other, site.setup_path)) as b:
                b.cookies.set("kennel_session", session)
                page = b.get("/settings")
                assert page.status_code == 200 and people["member"] in page.text
                # A form from one server is accepted by the other: the CSRF token is the session's.
                r = b.post("/settings/keys", data={"csrf_token": csrf_of(a), "name": "on-b"})
                assert r.status_code == 303
                assert 'aria-label="Revoke on-b"' in a.get("/settings").text
                r = b.post("/logout", data={"csrf_token": csrf_of(b)})
                assert r.status_code == 303
            r = a.get("/settings")
            assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fsettings"
    finally:
        stop_server(other)
        assert "Traceback" not in other.log_path.read_text(), other.log_path.read_text()


def test_sign_in_slows_down_after_five_failures_for_one_account(site: Site, admin: str) -> None:
    name = add_person(site, "member")
    # Each failure from an address of its own: only the account's count can be what slows the sixth.
    for _ in range(5):
        with client(site) as c:
            r = sign_in(c, name, "not the password")
            assert r.status_code == 401 and alert_of(r.text) == SIGN_IN_FAILED
    with client(site) as c:
        r = sign_in(c, name, PASSWORD)  # the right password, within the second that the fifth failure costs
        assert r.status_code == 429, r.status_code
        assert int(r.headers["retry-after"]) >= 1
        assert alert_of(r.text).startswith(SIGN_IN_FAILED)
        assert not sets_session(r)
        assert c.get("/").headers["location"] == "/login?next=%2F"
        wait = int(r.headers["retry-after"])
    # Once the wait is over, the right password signs in.
    time.sleep(wait + 0.2)
    with client(site) as c:
        assert sign_in(c, name, PASSWORD).status_code == 303


def test_sign_in_slows_down_after_five_failures_from_one_address(site: Site, admin: str) -> None:
    name = add_person(site, "member")
    address = new_address()
    for _ in range(5):  # five unknown accounts, one address
        with client(site, address) as c:
            assert sign_in(c, f"guess-{uuid.uuid4().hex[:6]}", "not the password").status_code == 401
    with client(site, address) as c:
        r = sign_in(c, name, PASSWORD)
        assert r.status_code == 429 and "retry-after" in r.headers and not sets_session(r)
    with client(site) as c:  # the same account from elsewhere is not slowed
        assert sign_in(c, name, PASSWORD).status_code == 303
