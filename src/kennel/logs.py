"""The server's log: timestamped lines (or JSON objects for log collectors) and one access line per request.

An access line names the method, the path (set-up tokens and secret-looking query values hidden), the
status, the time to the end of the answer and who made the request (the key pair's name, or its
owner's user name); never a key. Lines are never wrapped, whatever the width of a terminal.
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORMATS = ("text", "json")
ACCESS = "kennel.access"
# Printed whatever the log level: where the server listens, which database, the first admin's link.
STARTUP = "kennel.startup"
_SECRET_NAME = re.compile(r"key|token|secret|pass|sig|auth|session|code", re.IGNORECASE)
_SETUP_PATH = re.compile(r"^/setup/[^/]+")


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record.created)} {record.levelname:<7} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access line's fields on their own."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": _timestamp(record.created), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "access", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def config(fmt: str, level: str) -> dict[str, Any]:
    """The logging configuration of `kennel serve` (given to uvicorn too, so its workers use it)."""
    formatter = {"()": JsonFormatter if fmt == "json" else TextFormatter}
    handler = {"class": "logging.StreamHandler", "formatter": "kennel", "stream": "ext://sys.stderr"}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kennel": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "kennel": {"handlers": ["stderr"], "level": level, "propagate": False},
            STARTUP: {"level": "INFO"},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            # Replaced by kennel.access, which knows the duration and who asked.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def shown_path(scope: Scope) -> str:
    path = _SETUP_PATH.sub("/setup/…", scope.get("path", ""))
    raw = scope.get("query_string", b"")
    if not raw:
        return path
    parts = []
    for pair in raw.decode("latin-1").split("&"):
        name, eq, _ = pair.partition("=")
        parts.append(f"{name}=…" if eq and _SECRET_NAME.search(name) else pair)
    return f"{path}?{'&'.join(parts)}"


class AccessLog:
    """ASGI middleware writing one line per HTTP request once its answer has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger(ACCESS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - started) * 1000
            actor = scope.get("state", {}).get("actor")
            who = actor.name if actor is not None else "-"
            path = shown_path(scope)
            method = scope["method"]
            # An answer never started is the server's failure (the client may also have hung up).
            code = status or 500
            self.log.info("%s %s %d %.1fms key=%s", method, path, code, ms, who,
                          extra={"access": {"method": method, "path": path, "status": code,
                                            "duration_ms": round(ms, 2), "key": who}})
