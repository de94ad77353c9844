"""A small raw-socket HTTP/1.1 client for bursts and slow clients, used by the load tests and bench/bench_load.py.

httpx holds a connection pool and spends a few ms of CPU per request; on a 2-core machine a thousand
of them at once measure the client more than the server. This client opens one connection per request,
writes the request (optionally at a trickle), and reads one answer, with every step under a deadline.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Answer:
    status: int              # 0: no answer (connection refused, reset or closed without a status line)
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    def json(self) -> Any:
        return orjson.loads(self.body)


def _head(method: str, path: str, host: str, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed without an answer")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body


async def request(base: tuple[str, int], method: str, path: str, *, headers: dict[str, str] | None = None,
                  body: bytes | None = None, timeout: float = 60.0, trickle: tuple[int, float] | None = None,
                  start: asyncio.Event | None = None) -> Answer:
    """One request on its own connection. `trickle=(bytes, seconds)` sends the body that many bytes at a
    time with that pause between; `start` holds the request (connected, nothing sent) until it is set."""
    host, port = base
    began = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            if start is not None:
                await start.wait()
                began = time.monotonic()
            writer.write(_head(method, path, f"{host}:{port}", headers or {}, None if body is None else len(body)))
            if body is not None and trickle is None:
                writer.write(body)
            await writer.drain()
            if body is not None and trickle is not None:
                step, pause = trickle
                for i in range(0, len(body), step):
                    writer.write(body[i:i + step])
                    await writer.drain()
                    await asyncio.sleep(pause)
            status, answer_headers, answer = await _read_answer(reader)
            return Answer(status, time.monotonic() - began, answer_headers, answer)
    except TimeoutError:
        return Answer(0, time.monotonic() - began, error="client timeout")
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        return Answer(0, time.monotonic() - began, error=f"{type(exc).__name__}: {exc}")
    finally:
        if writer is not None:
            writer.close()


async def hold_open(base: tuple[str, int], seconds: float, partial: bytes = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                    ) -> None:
    """A connection that sends part of its headers and then nothing for `seconds`."""
    try:
        _, writer = await asyncio.open_connection(*base)
    except OSError:
        return
    try:
        writer.write(partial)
        await writer.drain()
        await asyncio.sleep(seconds)
    finally:
        writer.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(answers: list[Answer], wall: float) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for a in answers:
        key = str(a.status) if a.status else (a.error.split(":")[0] or "no answer")
        statuses[key] = statuses.get(key, 0) + 1
    ok = [a.seconds for a in answers if 200 <= a.status < 300]
    every = [a.seconds for a in answers]
    return {
        "requests": len(answers),
        "statuses": statuses,
        "ok_per_s": round(len(ok) / wall, 1) if wall else None,
        "wall_s": round(wall, 2),
        "p50_s": round(statistics.median(every), 3) if every else None,
        "p99_s": round(percentile(every, 0.99), 3),
        "max_s": round(max(every), 3) if every else None,
    }
