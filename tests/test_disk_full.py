"""A full disk: 507 naming the database, nothing half-written, and a server that keeps answering.

The database lives on a real, small file system (an 8 or 4 MiB tmpfs; mounting one needs root, as CI has):
SQLite's file itself, or for PostgreSQL a tablespace holding Kennel's tables (its WAL stays on the
server's own disk: a full WAL disk stops PostgreSQL itself, which no application can answer for).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from kennel.errors import out_of_space
from tests.conftest import PG_ENV, _pg_admin, start_server, stop_server
from tests.test_dataset_lifecycle_helpers import V1, make_dataset, make_project

FILLER = 1 << 20  # taken up on the mount before the server starts, freed to give the disk room again


@contextlib.contextmanager
def small_tmpfs(size: str, *, owner: str | None = None) -> Iterator[Path]:
    # Under /tmp rather than pytest's tmp_path, whose parents only root may enter: PostgreSQL must
    # reach its tablespace.
    path = Path(tempfile.mkdtemp(prefix="kennel-full-", dir="/tmp"))
    options = f"size={size}"
    if owner is not None:
        user = pwd.getpwnam(owner)
        options += f",uid={user.pw_uid},gid={user.pw_gid},mode=0700"
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a {size} tmpfs to fill (needs root): {mounted.stderr.strip()}")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], check=True)
    finally:
        path.rmdir()


@contextlib.contextmanager
def database_on_small_disk(backend: str) -> Iterator[tuple[str, Path]]:
    """(URL of a migrated database, the mount it fills), on a small file system (8 MiB for SQLite, whose
    migrated schema and WAL need more than half of 4 MiB before the first record; 4 MiB for PostgreSQL)."""
    if backend == "sqlite":
        with small_tmpfs("8m") as mount:
            yield f"sqlite:///{mount}/kennel.db", mount
        return
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no local `postgres` user to own a tablespace directory (the mapping is tested below)")
    import psycopg

    from kennel.db.engine import make_engine
    from kennel.db.migrate import upgrade

    name = space = f"kennel_full_{uuid.uuid4().hex[:12]}"
    url = f"{admin.rpartition('/')[0]}/{name}"
    with small_tmpfs("4m", owner="postgres") as mount:
        with _pg_admin(admin) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            try:
                with _pg_admin(admin) as conn:
                    conn.execute(f"CREATE TABLESPACE \"{space}\" LOCATION '{mount}'")
            except psycopg.Error as exc:  # a server on another machine cannot see the mount
                pytest.skip(f"the PostgreSQL server cannot put a tablespace on this machine's tmpfs: {exc}")
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE "{space}"')
                conn.execute(f'ALTER INDEX ALL IN TABLESPACE pg_default SET TABLESPACE "{space}"')
            yield url, mount
        finally:
            with _pg_admin(admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'DROP TABLESPACE IF EXISTS "{space}"')


def _batch(http, pid: str, did: str, n: int, size: int, pad: int = 1000):
    records = [{"id": f"b{n}-{i}", "input": {"n": n, "i": i, "pad": "x" * pad}} for i in range(size)]
    return http.post(f"{V1}/{pid}/datasets/{did}/batch_update", json={"data": {
        "type": "datasets", "id": did, "attributes": {"insert_records": records, "deduplicate": False}}})


def _count(http, pid: str, did: str) -> tuple[int, int]:
    """(records in the current version, versions) as the server reports them."""
    ds = http.get(f"{V1}/{pid}/datasets", params={"filter[id]": did}).json()["data"][0]["attributes"]
    versions = http.get(f"{V1}/{pid}/datasets/{did}/versions").json()["data"]
    exported = http.get(f"{V1}/{pid}/datasets/{did}/export", params={"format": "jsonl"})
    assert exported.status_code == 200, exported.text[:300]
    lines = [ln for ln in exported.text.splitlines() if ln.strip()]
    assert int(exported.headers["X-Record-Count"]) == len(lines)
    assert ds["current_version"] == len(versions) - 1
    return len(lines), len(versions)


def _assert_507(resp, database: str) -> None:
    assert resp.status_code == 507, resp.text[:500]
    err = resp.json()["errors"][0]
    assert err["status"] == "507" and err["title"] == "Insufficient Storage"
    detail = err["detail"]
    for words in (f"the {database} database is out of disk space", "changed nothing", "still running",
                  "Free space"):
        assert words in detail, detail


def test_a_full_disk_is_507_and_the_server_stays_up(backend, tmp_path):
    database = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
    with database_on_small_disk(backend) as (url, mount):
        filler = mount / "filler"
        filler.write_bytes(b"\0" * FILLER)
        server = start_server(url, backend, tmp_path)
        try:
            with server.client() as http:
                pid = make_project(http)
                did = make_dataset(http, pid)

                def huge() -> None:
                    # Larger than SQLite's 16 MiB page cache, which spills into the WAL while the
                    # statements run: the disk fills before the commit. On PostgreSQL, during the COPY.
                    _assert_507(_batch(http, pid, did, -1, 20_000), database)

                if backend == "sqlite":
                    huge()
                    assert _count(http, pid, did) == (0, 1)
                # Small writes until the disk is full: on SQLite the one that fails, fails at its commit,
                # appending to the WAL.
                written = 0
                for n in range(200):
                    resp = _batch(http, pid, did, n, 100)
                    if resp.status_code != 200:
                        break
                    written += 1
                _assert_507(resp, database)
                assert written > 0, "the disk was full before the first small write"
                # Nothing half-written: every successful batch whole, the failed one not at all.
                assert _count(http, pid, did) == (100 * written, 1 + written)
                if backend == "postgres":
                    # Last here: PostgreSQL keeps the pages a failed insert added until a vacuum, so
                    # going first it would leave no room for the small writes.
                    huge()
                    assert _count(http, pid, did) == (100 * written, 1 + written)
                assert http.get(f"{V1}/{pid}/datasets/{did}/records").status_code == 200
                assert http.get("/healthz").status_code == 200
                # A streamed upload reports it in its error event; ddtrace's upload as a 507.
                csv = "id,input\n" + "".join(f'u{i},"{{""pad"": ""{"y" * 900}""}}"\n' for i in range(3000))
                files = {"file": ("full.csv", csv.encode(), "text/csv")}
                with http.stream("POST", f"/api/v2/llm-obs/v2/{pid}/datasets/{did}/records/upload",
                                 files=files) as r:
                    events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
                assert events[-1].get("status") == 507 and "out of disk space" in events[-1]["message"], events
                _assert_507(http.post(f"/api/unstable/llm-obs/v1/datasets/{did}/records/upload", files=files),
                            database)
                assert _count(http, pid, did) == (100 * written, 1 + written)

                filler.unlink()
                deadline = time.monotonic() + 30
                while (resp := _batch(http, pid, did, 1000, 100)).status_code == 507 and time.monotonic() < deadline:
                    time.sleep(0.5)  # a checkpoint may take the freed room first, then give the WAL's back
                assert resp.status_code == 200, resp.text[:300]
                assert _count(http, pid, did) == (100 * (written + 1), 2 + written)
        finally:
            stop_server(server)
        log = server.log()
        assert "out of disk space" in log and "Traceback" not in log, log[-3000:]


def _sqlite_full(tmp_path: Path) -> sqlite3.OperationalError:
    """A real SQLITE_FULL, from a database capped at a few pages."""
    conn = sqlite3.connect(tmp_path / "capped.db")
    try:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA max_page_count=3")
        with pytest.raises(sqlite3.OperationalError) as caught:
            conn.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
        return caught.value
    finally:
        conn.close()


def test_out_of_space_is_recognised_however_the_driver_error_arrives(tmp_path):
    """Both databases' disk-full errors, wrapped by SQLAlchemy or straight from the driver (PostgreSQL's
    COPY goes through psycopg itself), and only those."""
    import psycopg

    full = _sqlite_full(tmp_path)
    assert full.sqlite_errorcode == sqlite3.SQLITE_FULL
    pg_full = psycopg.errors.DiskFull('could not extend file "base/16384/16390": No space left on device\n'
                                      "HINT:  Check free disk space.")
    for exc, database in ((full, "SQLite"), (OperationalError("INSERT ...", {}, full), "SQLite"),
                          (OperationalError(None, None, full), "SQLite"), (pg_full, "PostgreSQL"),
                          (OperationalError("COPY ...", {}, pg_full), "PostgreSQL")):
        mapped = out_of_space(exc)
        assert mapped is not None and mapped.status == 507, exc
        assert f"the {database} database is out of disk space" in mapped.detail
    assert "could not extend file" in out_of_space(pg_full).detail and "HINT" not in out_of_space(pg_full).detail
    try:
        raise RuntimeError("while writing") from OperationalError(None, None, pg_full)
    except RuntimeError as chained:
        assert out_of_space(chained) is not None
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    for other in (busy, psycopg.errors.OutOfMemory("out of memory"), OperationalError("SELECT 1", {}, busy),
                  ValueError("x"), None):
        assert out_of_space(other) is None, other
