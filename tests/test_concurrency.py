"""Several server processes on one database: migrations race safely and writers serialise per dataset."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import start_server, stop_server, unique


def test_two_servers_share_one_database(server, tmp_path):
    # A second process on the same database: it migrates (a no-op under the lock) and serves the same data.
    other = start_server(server.database_url, server.backend, tmp_path)
    try:
        with server.client() as a, other.client() as b:
            pid = a.post("/api/v2/llm-obs/v1/projects",
                         json={"data": {"type": "projects", "attributes": {"name": unique("shared")}}}).json()
            pid = pid["data"]["id"]
            ds = b.post(f"/api/v2/llm-obs/v1/{pid}/datasets",
                        json={"data": {"type": "datasets", "attributes": {"name": "shared"}}}).json()["data"]["id"]
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
    finally:
        stop_server(other)
        assert "Traceback" not in other.log(), other.log()
