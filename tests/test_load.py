"""Under load: bursts, slow bodies, anonymous bodies and the body budget (issue 17).

These run a server of their own with small limits, so the limits are reached in seconds. They assert
what every client is answered and what is stored, never how fast: speed is bench/bench_load.py's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.loadclient import Answer, request

V2 = "/api/v2/llm-obs/v1"


@pytest.fixture(scope="module")
def tight(database_url: str, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(database_url, backend, tmp_path_factory.mktemp("tight"), env={
        "KENNEL_BODY_TIMEOUT": "4", "KENNEL_QUEUE_TIMEOUT": "1", "KENNEL_MAX_BODIES_IN_FLIGHT_BYTES": "200000"})
    try:
        yield srv
    finally:
        stop_server(srv)
        assert "Traceback" not in srv.log(), srv.log()


def addr(server: Server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def json_headers(server: Server) -> dict[str, str]:
    return {**server.headers, "Content-Type": "application/json"}


def new_datasets(server: Server, n: int) -> tuple[str, list[str]]:
    with server.client() as http:
        project = http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": f"load-{uuid.uuid4().hex[:8]}"}}}).json()["data"]["id"]
        ids = [http.post(f"{V2}/{project}/datasets", json={"data": {"type": "datasets", "attributes": {
            "name": f"d{i}"}}}).json()["data"]["id"] for i in range(n)]
    return project, ids


def record_inputs(server: Server, project: str, dataset: str) -> list[dict]:
    with server.client() as http:
        body = http.get(f"{V2}/{project}/datasets/{dataset}/records", params={"page[limit]": "10000"}).json()
    return [r["input"] for r in body["data"]]


def append_body(tag: str) -> bytes:
    return orjson.dumps({"data": {"type": "records", "attributes": {"records": [{"input": {"q": tag}}]}}})


async def burst(server: Server, project: str, datasets: list[str], n: int) -> list[tuple[int, str, Answer]]:
    start = asyncio.Event()
    plan = []
    for i in range(n):
        kind = i % 3
        if kind < 2:
            path, body = f"{V2}/{project}/datasets/{datasets[kind]}/records", append_body(f"b{i}")
            plan.append((kind, f"b{i}", request(addr(server), "POST", path, headers=json_headers(server), body=body,
                                                timeout=120, start=start)))
        else:
            path = f"{V2}/{project}/datasets/{datasets[0]}/records?page[limit]=50"
            plan.append((kind, "", request(addr(server), "GET", path, headers=server.headers, timeout=120,
                                           start=start)))
    tasks = [asyncio.ensure_future(coro) for _, _, coro in plan]
    await asyncio.sleep(1.0 + n / 250)  # every client connected before any sends
    start.set()
    answers = await asyncio.gather(*tasks)
    return [(kind, tag, a) for (kind, tag, _), a in zip(plan, answers, strict=True)]


def test_burst_of_200_clients_all_answered_and_stored(server: Server) -> None:
    project, datasets = new_datasets(server, 2)
    results = asyncio.run(burst(server, project, datasets, 200))
    statuses = [a.status for _, _, a in results]
    assert statuses.count(200) == 200, {s: statuses.count(s) for s in set(statuses)}
    for d, dataset in enumerate(datasets):
        stored = {r["q"] for r in record_inputs(server, project, dataset)}
        acknowledged = {tag for kind, tag, a in results if kind == d and a.status == 200}
        assert stored == acknowledged


def test_concurrent_key_checks_answer_each_pair_for_itself(server: Server) -> None:
    """Checks of identical key headers running at once share one lookup; pairs that differ in either key
    must each get their own answer, and a pair revoked between two bursts is refused in the second."""
    name = f"burst-{uuid.uuid4().hex[:6]}"
    api_key, app_key = server.new_key(name)
    pairs = {
        "good": {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key},
        "other good": server.headers,
        "wrong app key": {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": server.app_key},
        "wrong api key": {"DD-API-KEY": server.api_key, "DD-APPLICATION-KEY": app_key},
        "no app key": {"DD-API-KEY": api_key},
    }
    expected = {"good": 200, "other good": 200, "wrong app key": 403, "wrong api key": 403, "no app key": 403}

    async def one_burst() -> dict[str, set[int]]:
        start = asyncio.Event()
        names = [name for _ in range(20) for name in pairs]
        tasks = [asyncio.ensure_future(request(addr(server), "GET", f"{V2}/projects?page[limit]=1",
                                               headers=pairs[name], start=start)) for name in names]
        await asyncio.sleep(0.5)
        start.set()
        answers = await asyncio.gather(*tasks)
        seen: dict[str, set[int]] = {}
        for name, answer in zip(names, answers, strict=True):
            seen.setdefault(name, set()).add(answer.status)
        return seen

    assert asyncio.run(one_burst()) == {name: {status} for name, status in expected.items()}
    with server.client() as http:
        listed = http.get("/api/kennel/v1/keys").json()["data"]
        key_id = next(k["id"] for k in listed if k["attributes"]["name"] == name)
        assert http.delete(f"/api/kennel/v1/keys/{key_id}").status_code in (200, 204)
    assert asyncio.run(one_burst())["good"] == {403}


def test_burst_of_1000_answers_every_client_with_success_or_503(tight: Server) -> None:
    project, datasets = new_datasets(tight, 2)
    results = asyncio.run(burst(tight, project, datasets, 1000))
    for _, _, a in results:
        assert a.status in (200, 503), (a.status, a.error, a.body[:300])
        if a.status == 503:
            assert a.headers.get("retry-after", "").isdigit()
            error = a.json()["errors"][0]
            assert error["status"] == "503" and "retry after" in error["detail"]
    for d, dataset in enumerate(datasets):
        stored = {r["q"] for r in record_inputs(tight, project, dataset)}
        acknowledged = {tag for kind, tag, a in results if kind == d and a.status == 200}
        assert acknowledged <= stored and stored <= {tag for kind, tag, _ in results if kind == d}
    # Recovered at once: a plain read right after the burst.
    with tight.client() as http:
        assert http.get(f"{V2}/projects", params={"page[limit]": "1"}).status_code == 200


async def _slow_and_normal(server: Server, path: str) -> tuple[list[Answer], list[Answer]]:
    # Each trickling client sends 2 bytes a second and stops well short of its declared length.
    body = append_body("slow") + b" " * 400
    slow = [asyncio.ensure_future(request(addr(server), "POST", path, headers=json_headers(server),
                                          body=body, trickle=(2, 0.5), timeout=60)) for _ in range(3)]
    await asyncio.sleep(0.5)
    normal = []
    for i in range(6):
        normal.append(await request(addr(server), "POST", path, headers=json_headers(server),
                                    body=append_body(f"n{i}"), timeout=30))
        await asyncio.sleep(0.25)
    return list(await asyncio.gather(*slow)), normal


def test_slow_bodies_hold_nothing_and_time_out_with_408(tight: Server) -> None:
    project, (dataset,) = new_datasets(tight, 1)
    path = f"{V2}/{project}/datasets/{dataset}/records"
    slow, normal = asyncio.run(_slow_and_normal(tight, path))
    assert [a.status for a in normal] == [200] * 6
    for a in slow:
        # The server answers 408 and closes; a client still writing may see the reset instead.
        if a.status:
            assert a.status == 408, a.body
            assert "KENNEL_BODY_TIMEOUT" in a.json()["errors"][0]["detail"]
        else:
            assert "Connection" in a.error or "Broken" in a.error, a.error
    assert sorted(r["q"] for r in record_inputs(tight, project, dataset)) == [f"n{i}" for i in range(6)]


def test_a_stalled_body_gets_408(tight: Server) -> None:
    project, (dataset,) = new_datasets(tight, 1)

    async def stalled() -> Answer:
        reader, writer = await asyncio.open_connection(*addr(tight))
        head = (f"POST {V2}/{project}/datasets/{dataset}/records HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                f"DD-API-KEY: {tight.api_key}\r\nDD-APPLICATION-KEY: {tight.app_key}\r\n\r\n{{\"data\"")
        writer.write(head.encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        rest = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return Answer(int(line.split()[1]), 0, body=rest.split(b"\r\n\r\n", 1)[1])

    answer = asyncio.run(stalled())
    assert answer.status == 408
    assert answer.json()["errors"][0]["title"] == "Request Timeout"


@pytest.mark.parametrize("path", [
    "/api/v2/llm-obs/v1/projects",
    "/api/v2/llm-obs/v2/P/datasets/D/records/upload",
    "/api/unstable/llm-obs/v1/datasets/D/records/upload",
    "/api/v2/llmobs",
])
def test_keys_are_checked_before_any_body_is_read(server: Server, path: str) -> None:
    """A client without keys declares a 50 MB body and sends none of it: the answer is an immediate 403
    (before, the server waited for the whole body, and spooled uploads to disk)."""
    async def anonymous() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(*addr(server))
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     f"Content-Length: 50000000\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 20)
        rest = await asyncio.wait_for(reader.read(), 20)
        writer.close()
        return int(line.split()[1]), rest

    status, rest = asyncio.run(anonymous())
    assert status == 403
    assert b"missing DD-API-KEY header" in rest


def test_bodies_in_flight_are_bounded(tight: Server) -> None:
    """With 200,000 bytes of bodies allowed in flight, a second body that does not fit waits for room and
    then gets 503 with Retry-After; once the first is done, room is back."""
    project, (dataset,) = new_datasets(tight, 1)
    path = f"{V2}/{project}/datasets/{dataset}/records"
    def big(tag: str) -> bytes:
        return orjson.dumps({"data": {"type": "records", "attributes": {"records": [
            {"input": {"q": f"{tag}{i}", "pad": "x" * 1000}} for i in range(120)]}}})

    size = len(big("a"))
    assert 100_000 < size < 200_000

    async def scenario() -> tuple[Answer, Answer, Answer]:
        # The first trickles for ~2.7 s: longer than the 1 s the second may wait for room, shorter than the
        # 4 s a body may take.
        first = asyncio.ensure_future(request(addr(tight), "POST", path, headers=json_headers(tight), body=big("a"),
                                              trickle=(size // 6 + 1, 0.45), timeout=30))
        await asyncio.sleep(0.3)
        second = await request(addr(tight), "POST", path, headers=json_headers(tight), body=big("b"), timeout=30)
        done = await first
        third = await request(addr(tight), "POST", path, headers=json_headers(tight), body=big("c"), timeout=30)
        return done, second, third

    first, second, third = asyncio.run(scenario())
    assert first.status == 200
    assert second.status == 503 and second.headers.get("retry-after")
    assert "KENNEL_MAX_BODIES_IN_FLIGHT_BYTES" in second.json()["errors"][0]["detail"]
    assert third.status == 200
    assert len(third.json()["data"]) == 120


def test_large_bodies_at_once_are_all_stored(server: Server) -> None:
    """Bodies over 8 MiB are worked on one at a time; the ones waiting their turn are answered too."""
    project, (dataset,) = new_datasets(server, 1)
    path = f"{V2}/{project}/datasets/{dataset}/records"

    def large(tag: str) -> bytes:
        return orjson.dumps({"data": {"type": "records", "attributes": {"records": [
            {"input": {"q": f"{tag}{i}", "pad": "x" * 1000}} for i in range(8500)]}}})

    bodies = [large(t) for t in "abc"]
    assert all(len(b) > 8 * 2**20 for b in bodies)

    async def together() -> list[Answer]:
        return list(await asyncio.gather(*[request(addr(server), "POST", path, headers=json_headers(server),
                                                   body=b, timeout=120) for b in bodies]))

    assert [a.status for a in asyncio.run(together())] == [200, 200, 200]
    with server.client() as http:
        body = http.get(f"{V2}/{project}/datasets/{dataset}/records", params={"page[limit]": "10000"}).json()
        assert body["meta"]["after"]
        cursor = body["meta"]["after"]
        rest = http.get(f"{V2}/{project}/datasets/{dataset}/records",
                        params={"page[limit]": "10000", "page[cursor]": cursor}).json()
        rest2 = http.get(f"{V2}/{project}/datasets/{dataset}/records",
                         params={"page[limit]": "10000", "page[cursor]": rest["meta"]["after"]}).json()
    assert len(body["data"]) + len(rest["data"]) + len(rest2["data"]) == 3 * 8500
