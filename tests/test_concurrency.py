"""Several server processes on one database: migrations race safely and writers serialise per dataset."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx

from tests.conftest import Server, start_server, stop_server, unique


@contextmanager
def two_servers(server: Server, tmp_path, name: str) -> Iterator[tuple[httpx.Client, httpx.Client, str, str]]:
    """Clients of `server` and of a second process on its database, and a new project and dataset there.

    The second process migrates on start (a no-op under the migration lock) and must log no traceback.
    """
    other = start_server(server.database_url, server.backend, tmp_path)
    try:
        with server.client() as a, other.client() as b:
            pid = a.post("/api/v2/llm-obs/v1/projects",
                         json={"data": {"type": "projects", "attributes": {"name": unique(name)}}}).json()
            pid = pid["data"]["id"]
            ds = b.post(f"/api/v2/llm-obs/v1/{pid}/datasets",
                        json={"data": {"type": "datasets", "attributes": {"name": name}}}).json()["data"]["id"]
            yield a, b, pid, ds
    finally:
        stop_server(other)
        assert "Traceback" not in other.log(), other.log()


def test_two_servers_share_one_database(server, tmp_path):
    # A second process on the same database serves the same data; writers serialise per dataset.
    with two_servers(server, tmp_path, "shared") as (a, b, pid, ds):
        url = f"/api/v2/llm-obs/v1/{pid}/datasets/{ds}/batch_update"

        def push(n: int) -> int:
            client = a if n % 2 else b
            body = {"data": {"type": "datasets", "id": ds, "attributes": {
                "insert_records": [{"id": f"r{n}-{i}", "input": {"n": n, "i": i}} for i in range(50)]}}}
            resp = client.post(url, json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()["data"][0]["attributes"]["version"]

        with ThreadPoolExecutor(8) as pool:
            versions = list(pool.map(push, range(16)))
        assert sorted(versions) == list(range(1, 17)), "each push made exactly one version"
        records, cursor = [], None
        while True:
            params = {"page[limit]": "300", **({"page[cursor]": cursor} if cursor else {})}
            body = a.get(f"/api/v2/llm-obs/v1/{pid}/datasets/{ds}/records", params=params).json()
            records.extend(body["data"])
            cursor = body["meta"]["after"]
            if not cursor:
                break
        assert len(records) == 800 and len({r["id"] for r in records}) == 800
        for version in (1, 8, 16):
            n = 0
            cursor = None
            while True:
                params = {"filter[version]": str(version), "page[limit]": "1000",
                          **({"page[cursor]": cursor} if cursor else {})}
                body = b.get(f"/api/v2/llm-obs/v1/{pid}/datasets/{ds}/records", params=params).json()
                n += len(body["data"])
                cursor = body["meta"]["after"]
                if not cursor:
                    break
            assert n == 50 * version


def test_deletes_and_inserts_from_two_servers_interleave_cleanly(server, tmp_path):
    # Deletes answer before their closings are written in place (models.DatasetPendingClosure); writers on
    # either server settle them first, and every version must still read exactly as it was made.
    with two_servers(server, tmp_path, "mixed") as (a, b, pid, ds):
        base = f"/api/v2/llm-obs/v1/{pid}/datasets/{ds}"
        resp = a.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": {
            "insert_records": [{"id": f"r{i:03d}", "input": {"i": i}} for i in range(400)]}}})
        assert resp.status_code == 200, resp.text

        def change(n: int) -> int | None:
            client = a if n % 2 else b
            if n % 2:  # a delete of 20 ids no other request names
                ids = [f"r{i:03d}" for i in range(n * 20, n * 20 + 20)]
                resp = client.post(f"{base}/records/delete",
                                   json={"data": {"type": "records", "attributes": {"record_ids": ids}}})
                assert resp.status_code == 204, resp.text
                return None
            resp = client.post(f"{base}/batch_update", json={"data": {"type": "datasets", "id": ds, "attributes": {
                "insert_records": [{"id": f"n{n}-{i}", "input": {"n": n, "i": i}} for i in range(10)]}}})
            assert resp.status_code == 200, resp.text
            return resp.json()["data"][0]["attributes"]["version"]

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(change, range(16)))
        insert_versions = {v for v in outcomes if v is not None}
        assert len(insert_versions) == 8 and insert_versions <= set(range(2, 18))

        def count(client, version: int | None) -> int:
            n, cursor = 0, None
            while True:
                params = {"page[limit]": "1000", **({"filter[version]": str(version)} if version else {}),
                          **({"page[cursor]": cursor} if cursor else {})}
                body = client.get(f"{base}/records", params=params).json()
                n += len(body["data"])
                cursor = body["meta"]["after"]
                if not cursor:
                    return n

        expected = 400
        for version in range(1, 18):
            if version > 1:
                expected += 10 if version in insert_versions else -20
            assert count(a if version % 2 else b, version) == expected, f"version {version}"
        assert count(b, None) == 400 - 8 * 20 + 8 * 10
