"""The first hour (issue 23): start-up errors in two lines, the database named on stderr, foreign databases
left alone, the access log and its JSON form, dev.py stopping its server, /docs and /redoc with no network.

The error cases run the real `kennel` command; the PostgreSQL ones are parametrised on "postgres" and so
run only with KENNEL_TEST_POSTGRES_URL. Logging does not depend on the database: those servers use SQLite.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import (
    PG_ENV,
    ROOT,
    Server,
    _pg_admin,
    create_database,
    free_port,
    kennel_cli,
)

V2 = "/api/v2/llm-obs/v1"


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The error the command printed: the lines after the one naming the database (if it got that far)."""
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("database: ")]


def assert_two_line_error(proc: subprocess.CompletedProcess[str], what: str, todo: str) -> None:
    lines = _error_lines(proc)
    assert proc.returncode == 1, proc
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("kennel: error: ") and what in lines[0], proc.stderr
    assert todo in lines[1], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# SQLite: the file named is not one Kennel can use ---------------------------------------------------

def _other_apps_file(tmp_path: Path) -> str:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    return f"sqlite:///{path}"


def _newer_kennel_file(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    kennel_cli("db", "upgrade", "--database-url", url)
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    return url


def _not_a_database(tmp_path: Path) -> str:
    (tmp_path / "notes.txt").write_text("not a database\n")
    return f"sqlite:///{tmp_path / 'notes.txt'}"


SQLITE_CASES: dict[str, tuple[Any, str, str]] = {
    "plain-path": (lambda tmp: str(tmp / "kennel.db"), "is not a database URL", "sqlite:///"),
    "missing-directory": (lambda tmp: f"sqlite:///{tmp}/missing/kennel.db", "does not exist", "mkdir -p"),
    "not-a-database": (_not_a_database, "is not a SQLite database", "does not exist yet"),
    "other-application": (_other_apps_file, "tables that are not Kennel's (customers)", "database of its own"),
    "newer-kennel": (_newer_kennel_file, "written by a newer Kennel (schema 0999)", "upgrade Kennel"),
    "unsupported-scheme": (lambda tmp: "mysql://root@127.0.0.1/kennel", "does not support 'mysql'", "postgresql://"),
    "port-not-a-number": (lambda tmp: "postgresql://kennel@127.0.0.1:54x/kennel", "is not a database URL",
                          "postgresql://user:pass@host:port/db"),
}


@pytest.mark.parametrize("case", list(SQLITE_CASES))
def test_unusable_sqlite_database_is_two_lines(case: str, tmp_path: Path) -> None:
    make, what, todo = SQLITE_CASES[case]
    url = make(tmp_path)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))}
    proc = kennel_cli("keys", "list", "--database-url", url, check=False)
    assert_two_line_error(proc, what, todo)
    # Nothing written: no new file (lock, journal), not a byte of the files there (Kennel's tables, or even
    # the switch to WAL mode its own connections make).
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))} == files


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = kennel_cli("keys", "list", "--debug", "--database-url", f"sqlite:///{tmp_path}/missing/k.db", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "StartupError" in proc.stderr


# PostgreSQL: wrong database, role or port; another application's database; a newer Kennel's ----------

@pytest.fixture
def pg_admin(backend: str) -> str:
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"needs {PG_ENV}")
    return admin


@pytest.fixture
def pg_database(pg_admin: str) -> Iterator[str]:
    name = f"kennel_fh_{uuid.uuid4().hex[:10]}"
    with _pg_admin(pg_admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_admin.rpartition('/')[0]}/{name}"
    finally:
        with _pg_admin(pg_admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with(url: str, **parts: Any) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(**parts).render_as_string(hide_password=False)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("case", ["database", "role", "port"])
def test_misnamed_postgres_is_two_lines(case: str, pg_admin: str) -> None:
    url, what, todo = {
        "database": (_with(pg_admin, database="no_such_kennel_db"), "has no database 'no_such_kennel_db'",
                     "createdb"),
        "role": (_with(pg_admin, username="no_such_kennel_role"), "has no role 'no_such_kennel_role'",
                 "user name"),
        "port": (_with(pg_admin, port=free_port()), "cannot reach PostgreSQL", "start PostgreSQL"),
    }[case]
    assert_two_line_error(kennel_cli("keys", "list", "--database-url", url, check=False), what, todo)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_of_another_application_or_a_newer_kennel_is_left_alone(pg_database: str) -> None:
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    proc = kennel_cli("keys", "list", "--database-url", pg_database, check=False)
    assert_two_line_error(proc, "tables that are not Kennel's (invoices)", "database of its own")
    with psycopg.connect(pg_database, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert tables == ["invoices"]
        conn.execute("DROP TABLE invoices")
    kennel_cli("db", "upgrade", "--database-url", pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    proc = kennel_cli("keys", "list", "--database-url", pg_database, check=False)
    assert_two_line_error(proc, "written by a newer Kennel (schema 0999)", "upgrade Kennel")


# Every command names its database; scripts still get one JSON line -----------------------------------

@pytest.fixture
def fresh_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from create_database(backend, tmp_path_factory)


def test_keys_create_names_the_new_database_on_stderr(fresh_url: str, backend: str) -> None:
    first = kennel_cli("keys", "create", "--name", "ci", "--json", "--database-url", fresh_url)
    keys = orjson.loads(first.stdout)
    assert first.stdout == orjson.dumps(keys).decode() + "\n" and set(keys) == {"api_key", "app_key"}
    shown = first.stderr.strip()
    assert shown.startswith("database: ") and shown.endswith("(new: creating Kennel's tables)"), first.stderr
    if backend == "sqlite":
        assert shown.startswith(f"database: sqlite:///{fresh_url.removeprefix('sqlite:///')}")
    again = kennel_cli("keys", "create", "--name", "laptop", "--export", "--database-url", fresh_url)
    assert re.fullmatch(r"export DD_API_KEY=[0-9a-f]{32} DD_APP_KEY=[0-9a-f]{40}\n", again.stdout), again.stdout
    assert again.stderr.startswith("database: ") and "new" not in again.stderr


def test_a_sqlite_file_in_another_directory_is_named_in_full(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "kennel.cli", "keys", "list", "--json"], check=False,
                          capture_output=True,
                          text=True, cwd=tmp_path, env={k: v for k, v in os.environ.items()
                                                        if k != "KENNEL_DATABASE_URL"}, timeout=120)
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.strip() == f"database: sqlite:///{tmp_path.resolve()}/kennel.db (new: creating Kennel's tables)"


# kennel serve: a port in use, the access log, JSON lines ----------------------------------------------

def test_port_in_use_says_so_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = kennel_cli("serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path}/k.db", check=False)
    assert_two_line_error(proc, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert "serving on" not in proc.stderr and "startup complete" not in proc.stderr
    assert not (tmp_path / "k.db").exists()


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kennel.cli", "serve", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base, log
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"kennel serve did not start:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=15)


def _requests(base: str, url: str) -> tuple[dict[str, str], str]:
    keys = orjson.loads(kennel_cli("keys", "create", "--name", "log-reader", "--json", "--database-url", url).stdout)
    headers = {"DD-API-KEY": keys["api_key"], "DD-APPLICATION-KEY": keys["app_key"]}
    assert httpx.get(f"{base}{V2}/projects?filter[name]=x&api_key=SECRETVALUE", headers=headers).status_code == 200
    assert httpx.get(f"{base}/setup/SETUPTOKENVALUE").status_code == 404
    long_path = "/api/v2/llm-obs/v1/" + "long-path-segment-" * 8
    assert httpx.get(f"{base}{long_path}", headers=headers).status_code == 404
    return keys, long_path


def test_json_log_is_one_object_per_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    proc, base, log = _serve(tmp_path, "--database-url", url, env={"KENNEL_LOG_FORMAT": "json"})
    try:
        keys, _ = _requests(base, url)
    finally:
        _stop(proc)
    text = log.read_text()
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "kennel.access"]
    listed = next(line for line in access if line["path"].startswith(f"{V2}/projects"))
    assert listed["method"] == "GET" and listed["status"] == 200 and listed["key"] == "log-reader"
    assert listed["path"] == f"{V2}/projects?filter[name]=x&api_key=…" and listed["duration_ms"] >= 0
    assert any(line["message"].startswith("kennel serving on") for line in lines)
    for secret in (keys["api_key"], keys["app_key"], "SECRETVALUE", "SETUPTOKENVALUE"):
        assert secret not in text


def test_bad_log_format_is_refused(tmp_path: Path) -> None:
    proc = kennel_cli("serve", "--log-format", "xml", "--database-url", f"sqlite:///{tmp_path}/k.db", check=False)
    assert proc.returncode == 1 and "--log-format must be one of text, json" in proc.stderr


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    proc = kennel_cli("serve", "--workers", "2", "--database-url", f"sqlite:///{tmp_path}/k.db", check=False)
    assert proc.returncode == 1 and "--workers above 1 needs PostgreSQL" in proc.stderr
    assert not (tmp_path / "k.db").exists()


# dev.py: stopping the wrapper by its pid stops the server; Ctrl-C is quiet ---------------------------

@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_dev_py_passes_stop_signals_to_the_server(stop: signal.Signals, tmp_path: Path) -> None:
    """Also the text log (the default format), as dev.py shows it: an access line per request."""
    port = free_port()
    url = f"sqlite:///{tmp_path}/k.db"
    wrapper = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "serve", "--port", str(port),
                                "--database-url", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a stale .venv stamp makes dev.py install first
    while time.monotonic() < deadline:
        assert wrapper.poll() is None, wrapper.communicate()[0].decode()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    if stop == signal.SIGTERM:
        keys, long_path = _requests(base, url)
    wrapper.send_signal(stop)
    text = wrapper.communicate(timeout=30)[0].decode()
    assert wrapper.returncode == 0, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    with socket.socket() as probe:  # the server is gone with the wrapper: the port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    if stop != signal.SIGTERM:
        return
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(rf"^{stamp} INFO +kennel\.access GET {V2}/projects\?filter\[name\]=x&api_key=… 200 "
                     rf"[\d.]+ms key=log-reader$", text, re.MULTILINE), text
    assert re.search(rf"^{stamp} INFO +kennel\.access GET /setup/… 404 [\d.]+ms key=-$", text, re.MULTILINE), text
    # Not wrapped: the long path is whole on one line, as is the first admin's link.
    assert re.search(rf"^{stamp} INFO +kennel\.access GET {long_path} 404 [\d.]+ms key=-$", text, re.MULTILINE), text
    assert re.search(r"create the first admin: http://127\.0\.0\.1:\d+/setup/\S+$", text, re.MULTILINE), text
    assert re.search(rf"^{stamp} INFO +kennel\.startup database: sqlite:///", text, re.MULTILINE), text
    for secret in (keys["api_key"], keys["app_key"], "SECRETVALUE", "SETUPTOKENVALUE"):
        assert secret not in text


# /docs and /redoc: local assets, key headers as security schemes, "Try it out" ----------------------

class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_from_this_server(server: Server, page: str) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        html = http.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "http:" not in html.text and "https:" not in html.text and "//" not in html.text.replace("<!doctype", "")
        parser = _Refs()
        parser.feed(html.text)
        assert len(parser.refs) >= 3
        for ref in parser.refs:
            assert ref.startswith("/"), ref
            got = http.get(ref)
            assert got.status_code == 200, ref
            assert b"cdn.redoc.ly" not in got.content and b"fonts.googleapis" not in got.content


def test_openapi_declares_both_key_headers(server: Server) -> None:
    doc = httpx.get(f"{server.base_url}/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKeyAuth"] == {**schemes["apiKeyAuth"], "type": "apiKey", "in": "header", "name": "DD-API-KEY"}
    assert schemes["appKeyAuth"]["name"] == "DD-APPLICATION-KEY" and schemes["appKeyAuth"]["in"] == "header"
    assert doc["paths"][f"{V2}/projects"]["get"]["security"] == [{"apiKeyAuth": [], "appKeyAuth": []}]
    assert doc["paths"]["/api/v2/llmobs"]["post"]["security"] == [{"apiKeyAuth": []}]
    assert all("security" in op for path in doc["paths"].values() for op in path.values())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the page does not depend on the database
def test_try_it_out_sends_the_keys(server: Server) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    exe = os.environ.get("KENNEL_CHROMIUM") or "/usr/bin/chromium"
    if not os.access(exe, os.X_OK):
        if os.environ.get("KENNEL_REQUIRE_CHROMIUM") or os.environ.get("CI"):
            pytest.fail(f"no Chromium at {exe}")
        pytest.skip(f"no Chromium at {exe}")
    api_key, app_key = server.new_key("swagger")
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(base_url=server.base_url)
            page.on("request", lambda r: None if r.url.startswith((server.base_url, "blob:", "data:"))
                    else outside.append(r.url))
            page.goto("/docs")
            page.get_by_role("button", name="Authorize").first.click()
            dialog = page.locator(".dialog-ux")
            for index, key in enumerate((api_key, app_key)):
                container = dialog.locator(".auth-container").nth(index)
                container.locator("input").fill(key)
                container.locator("button.modal-btn.authorize").click()
            dialog.locator("button.btn-done").first.click()
            op = page.locator("#operations-projects-list_projects_api_v2_llm_obs_v1_projects_get")
            op.locator(".opblock-summary").click()
            op.get_by_role("button", name="Try it out").click()
            op.get_by_role("button", name="Execute").click()
            status = op.locator(".live-responses-table .response .response-col_status").first
            status.wait_for()
            assert status.inner_text().strip() == "200"
            assert "DD-APPLICATION-KEY" in op.locator(".curl-command").inner_text()
        finally:
            browser.close()
    assert outside == []


def test_root_leads_a_newcomer_to_sign_in_and_the_docs(server: Server) -> None:
    page = httpx.get(f"{server.base_url}/", follow_redirects=True)
    assert page.status_code == 200 and str(page.url).startswith(f"{server.base_url}/login")
    assert 'href="/docs"' in page.text and "one-time set-up" in page.text
