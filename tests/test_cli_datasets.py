"""`kennel datasets list/export/import`, run as a subprocess against the live server (both backends)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import kennel_cli, unique
from tests.test_dataset_lifecycle_helpers import content, make_dataset, make_project, ok_batch, records
from tests.test_upload import csv_bytes


def _env(server) -> dict[str, str]:
    return {"KENNEL_URL": server.base_url, "DD_API_KEY": server.api_key, "DD_APP_KEY": server.app_key}


def test_cli_export_import_list(server, http, tmp_path: Path):
    pname, dname = unique("cli-p"), unique("cli-d")
    pid = make_project(http, pname)
    did = make_dataset(http, pid, dname)
    ok_batch(http, pid, did, inserts=[{"id": f"r{i}", "input": {"i": i, "text": "a,b\nc"}, "expected_output": i,
                                       "tags": ["k:v"]} for i in range(2500)])
    ok_batch(http, pid, did, deletes=["r0"])
    env = _env(server)

    # Export by names (current version) and by ids (version 1), in both formats.
    out_csv = tmp_path / "out.csv"
    res = kennel_cli("datasets", "export", pname, dname, "-o", str(out_csv), env=env)
    assert "exported 2499 records" in res.stderr
    out_jsonl = tmp_path / "v1.jsonl"
    kennel_cli("datasets", "export", pid, did, "--version", "1", "--format", "jsonl", "-o", str(out_jsonl), env=env)
    assert len(out_jsonl.read_text().splitlines()) == 2500
    assert not list(tmp_path.glob(".*.part"))

    # Import into a new dataset (created on the way) and compare.
    res = kennel_cli("datasets", "import", str(out_csv), "--project", pname, "--dataset", "copy", "--create",
                     "--tag", "via:cli", env=env)
    assert "2499 created" in res.stderr, res.stderr
    listed = [json.loads(ln) for ln in kennel_cli("datasets", "list", "--project", pname, "--json",
                                                  env=env).stdout.splitlines()]
    assert {d["dataset"] for d in listed} == {dname, "copy"}
    copy_id = next(d["id"] for d in listed if d["dataset"] == "copy")
    copied = records(http, pid, copy_id)
    assert {k: v[:3] for k, v in content(copied).items()} == \
        {k: v[:3] for k, v in content(records(http, pid, did)).items()}
    assert all(sorted(r["tags"]) == ["k:v", "via:cli"] for r in copied.values())

    kennel_cli("datasets", "import", str(out_jsonl), "-p", pid, "-d", copy_id, "--no-overwrite", env=env)
    assert len(records(http, pid, copy_id)) == 2500, "only r0 was missing; the others were kept"

    table = kennel_cli("datasets", "list", env=env).stdout
    assert dname in table and "copy" in table
    assert kennel_cli("datasets", "list", "--name", dname, "--json", env=env).stdout.count("\n") >= 1


def _fails(*args: str, env: dict[str, str], fragment: str) -> None:
    res = kennel_cli(*args, env=env, check=False)
    assert res.returncode != 0, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:") and fragment in lines[-1], res.stderr
    assert "Traceback" not in res.stderr


def test_cli_errors_are_one_line(server, http, tmp_path: Path):
    pname = unique("cli-e")
    pid = make_project(http, pname)
    did = make_dataset(http, pid, "ds")
    ok_batch(http, pid, did, inserts=[{"id": "keep", "input": 1}])
    env = _env(server)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([["a", "1", "", "", ""]], header=["question", "answer", "x", "y", "z"]))
    _fails("datasets", "import", str(bad), "-p", pname, "-d", "ds", env=env, fragment="no `input` column")
    _fails("datasets", "import", str(bad), "-p", pname, "-d", "nope", env=env, fragment="use --create")
    _fails("datasets", "export", "no-such-project", "ds", "-o", str(tmp_path / "x.csv"), env=env,
           fragment="no project")
    _fails("datasets", "export", pname, "ds", "--version", "9", "-o", str(tmp_path / "x.csv"), env=env,
           fragment="400 invalid version")
    assert not (tmp_path / "x.csv").exists()
    _fails("datasets", "list", env={**env, "DD_API_KEY": "wrong"}, fragment="403")
    _fails("datasets", "list", env={**env, "KENNEL_URL": "http://127.0.0.1:9"}, fragment="cannot reach")
    _fails("datasets", "list", env={"KENNEL_URL": server.base_url, "DD_API_KEY": "", "DD_APP_KEY": ""},
           fragment="both keys")
    assert records(http, pid, did).keys() == {"keep"}
