"""Test harness: every server-level test runs against a real server process, once on a SQLite file
and once on PostgreSQL (a fresh database per test session, dropped afterwards).

PostgreSQL runs when KENNEL_TEST_POSTGRES_URL is set (CI always sets it); when it is set and the
server is unreachable the tests fail rather than skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "KENNEL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgres"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kennel_cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kennel.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=check, input=input, timeout=120)


@dataclass
class PgDatabase:
    admin_url: str
    name: str

    @property
    def url(self) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{self.name}"


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def create_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield a fresh, empty database URL of this backend; clean it up afterwards."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "kennel.db"
        yield f"sqlite:///{path}"
        return
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    db = PgDatabase(admin, f"kennel_t_{uuid.uuid4().hex[:12]}")
    with _pg_admin(admin) as conn:
        conn.execute(f'CREATE DATABASE "{db.name}"')
    try:
        yield db.url
    finally:
        with _pg_admin(admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')


@dataclass
class Server:
    base_url: str
    database_url: str
    backend: str
    api_key: str
    app_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"DD-API-KEY": self.api_key, "DD-APPLICATION-KEY": self.app_key}

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kwargs)

    def new_key(self, name: str) -> tuple[str, str]:
        out = kennel_cli("keys", "create", "--name", name, "--json", "--database-url", self.database_url)
        keys = orjson.loads(out.stdout)
        return keys["api_key"], keys["app_key"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(database_url: str, backend: str, log_dir: Path, env: dict[str, str] | None = None,
                 log_level: str = "warning") -> Server:
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    # The same code as the server makes the keys (a benchmark may run an older version from PYTHONPATH).
    keys = orjson.loads(kennel_cli("keys", "create", "--name", "test-suite", "--json",
                                   "--database-url", database_url, env=env).stdout)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kennel.cli", "serve", "--port", str(port), "--database-url", database_url,
             "--log-level", log_level],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kennel serve exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"kennel serve did not start:\n{log_path.read_text()}")
    return Server(base, database_url, backend, keys["api_key"], keys["app_key"], proc, log_path)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from create_database(backend, tmp_path_factory)


def serving(database_url: str, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on this database for as long as the generator is held (the body of a fixture)."""
    srv = start_server(database_url, backend, tmp_path_factory.mktemp("logs"))
    try:
        yield srv
    finally:
        stop_server(srv)
        # Any traceback in the server log is a bug: the API must answer errors as JSON:API, not crash.
        assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="session")
def server(database_url: str, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serving(database_url, backend, tmp_path_factory)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture
def typed(server: Server):
    """The real typed client (datadog-api-client), every LLM Obs operation enabled."""
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.agent_observability_api import AgentObservabilityApi

    cfg = Configuration(host=server.base_url)
    cfg.api_key["apiKeyAuth"] = server.api_key
    cfg.api_key["appKeyAuth"] = server.app_key
    for op in list(cfg.unstable_operations.values):
        if "llm_obs" in op:
            cfg.unstable_operations[op.split(".", 1)[1]] = True
    with ApiClient(cfg) as api_client:
        yield AgentObservabilityApi(api_client)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def factory(database_url: str):
    """A session factory on the test database, migrated, for tests that drive the services directly."""
    from kennel.db.engine import make_engine
    from kennel.db.migrate import upgrade
    from kennel.db.session import make_sessionmaker

    engine = make_engine(database_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def new_dataset_via_services(factory, actor) -> tuple[str, str]:
    """(project id, dataset id) of a new project holding one empty dataset, made through the services
    (for tests that drive the services directly, without a server)."""
    from kennel.datasets.service import create_or_get_dataset
    from kennel.db.session import unit_of_work
    from kennel.projects.service import create_or_get_project

    with unit_of_work(factory, write=True) as s:
        project = create_or_get_project(s, name=unique("svc"), description=None, author_id=actor.id)[0]
        ds = create_or_get_dataset(s, project_id=project.id, name="d", description=None, metadata=None,
                                   actor=actor)[0]
        return project.id, ds.id


DDTRACE_ENV = {
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_APM_TRACING_ENABLED": "false",
    "DD_LLMOBS_AGENTLESS_ENABLED": "1",
    "DD_TRACE_ENABLED": "false",
    "DD_SITE": "datadoghq.com",
}


def run_ddtrace(server: Server, script: str, *, ml_app: str = "kennel-tests", timeout: float = 240) -> Any:
    """Run `script` with ddtrace's LLMObs enabled against `server` in a fresh interpreter.

    The script sees `LLMObs` already enabled and must print its result as JSON on its last line.
    ddtrace keeps global state, so each scenario gets a process of its own.
    """
    agent_port = free_port()  # nothing listens: ddtrace's agent traffic must not leave the machine
    env = {
        **os.environ,
        **DDTRACE_ENV,
        "DD_LLMOBS_OVERRIDE_ORIGIN": server.base_url,
        "DD_API_KEY": server.api_key,
        "DD_APP_KEY": server.app_key,
        "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{agent_port}",
        "DD_LLMOBS_ML_APP": ml_app,
    }
    prelude = (
        "import json, os\n"
        "from ddtrace.llmobs import LLMObs\n"
        f"LLMObs.enable(ml_app={ml_app!r}, agentless_enabled=True, api_key=os.environ['DD_API_KEY'], "
        "app_key=os.environ['DD_APP_KEY'], site='datadoghq.com')\n"
    )
    proc = subprocess.run([sys.executable, "-c", prelude + script], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"ddtrace script failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout}\n"
                             f"STDERR:\n{proc.stderr[-8000:]}")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    assert lines, f"ddtrace script printed nothing; stderr:\n{proc.stderr[-4000:]}"
    return orjson.loads(lines[-1])


def _on_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgres" in callspec.params.values()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without KENNEL_TEST_POSTGRES_URL the PostgreSQL half is left out, and said so in one line at the end
    (rather than one SKIPPED line per test, which makes a healthy run look broken)."""
    if os.environ.get(PG_ENV):
        return
    left_out = [item for item in items if _on_postgres(item)]
    if left_out:
        items[:] = [item for item in items if not _on_postgres(item)]
        config.hook.pytest_deselected(items=left_out)
        config.stash[_LEFT_OUT] = len(left_out)


_LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    left_out = config.stash.get(_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"PostgreSQL half not run ({left_out} tests): set {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test "
            f"to include it", yellow=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With KENNEL_TEST_POSTGRES_URL set (as in CI), a skipped PostgreSQL test fails the run."""
    if not os.environ.get(PG_ENV):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [r for r in (reporter.stats.get("skipped", []) if reporter else [])
               if "postgres" in r.nodeid and PG_ENV in str(r.longrepr)]
    if skipped:
        reporter.write_line(f"{len(skipped)} PostgreSQL test(s) skipped although {PG_ENV} is set", red=True)
        session.exitstatus = 1
