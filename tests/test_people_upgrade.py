"""A database from before people existed, with its key pairs, serves both real clients after the upgrade."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from tests.conftest import ROOT, create_database, kennel_cli, run_ddtrace, start_server, stop_server, unique

# The last commit before migration 0010 (people); its code makes the "old" database.
BEFORE_PEOPLE = "82f1c81"


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from create_database(request.param, tmp_path_factory)


def _old_source(into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_PEOPLE, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def test_key_pairs_made_before_people_keep_working(old_database: str, tmp_path: Path) -> None:
    backend = "sqlite" if old_database.startswith("sqlite") else "postgres"
    old_env = {"PYTHONPATH": str(_old_source(tmp_path))}
    keys = orjson.loads(kennel_cli("keys", "create", "--name", "old-ci", "--json", "--database-url", old_database,
                                   env=old_env).stdout)
    from kennel.db.engine import make_engine

    engine = make_engine(old_database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0009"
    engine.dispose()

    server = start_server(old_database, backend, tmp_path)  # the new code migrates on start
    try:
        old = dataclasses.replace(server, api_key=keys["api_key"], app_key=keys["app_key"])
        with old.client() as http:
            project = http.post("/api/v2/llm-obs/v1/projects", json={"data": {"type": "projects", "attributes": {
                "name": unique("upgraded")}}})
            assert project.status_code == 200, project.text
        listed = [orjson.loads(line) for line in kennel_cli("keys", "list", "--json", "--database-url",
                                                            old_database).stdout.splitlines()]
        assert {"old-ci": None}.items() <= {r["name"]: r["user"] for r in listed}.items()
        name = unique("dd-upgraded")
        result = run_ddtrace(old, f"""
ds = LLMObs.create_dataset(dataset_name={name!r}, project_name={name!r}, records=[
    {{"input_data": {{"q": "still here?"}}, "expected_output": "yes"}}])
print(json.dumps([r["input_data"] for r in LLMObs.pull_dataset(dataset_name={name!r}, project_name={name!r})]))
""")
        assert result == [{"q": "still here?"}]
    finally:
        stop_server(server)
    assert "Traceback" not in server.log()
