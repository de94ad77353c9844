#!/usr/bin/env python
"""What the access log costs a request, in-process: the AccessLog middleware around a trivial ASGI app,
writing to a file, against the same app without it. Prints the extra microseconds per request for the
log switched off (--log-level warning), text lines and JSON lines (median of 5 runs of 20,000 requests).

  .venv/bin/python bench/bench_access_log.py

For the cost seen by a client over HTTP, interleaved, see bench_ab.py --a-log-level/--b-log-level.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from kennel import logs

REQUESTS = 20_000
SCOPE = {"type": "http", "method": "GET", "path": "/api/v2/llm-obs/v1/projects",
         "query_string": b"filter[name]=x&page[limit]=10"}


class Caller:
    name = "laptop"


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, str]:
    return {"type": "http.request"}


async def send(message: Any) -> None:
    return None


async def serve(target: Any) -> None:
    for _ in range(REQUESTS):
        await target({**SCOPE, "state": {"actor": Caller()}}, receive, send)


def extra_us(mode: str, folder: Path) -> float:
    cfg = logs.config("json" if mode == "json" else "text", "WARNING" if mode == "off" else "INFO")
    cfg["handlers"]["stderr"] = {"class": "logging.FileHandler", "filename": str(folder / f"{mode}.log"),
                                 "formatter": "kennel"}
    logging.config.dictConfig(cfg)
    logged = logs.AccessLog(app)
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        asyncio.run(serve(logged))
        with_log = time.perf_counter() - began
        began = time.perf_counter()
        asyncio.run(serve(app))
        runs.append((with_log - (time.perf_counter() - began)) / REQUESTS * 1e6)
    return round(statistics.median(runs), 1)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kennel-access-log-") as tmp:
        out = {f"{mode}_extra_us_per_request": extra_us(mode, Path(tmp)) for mode in ("off", "text", "json")}
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
