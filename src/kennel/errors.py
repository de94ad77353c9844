"""One error hierarchy, rendered as JSON:API errors by one set of handlers.

Both real clients read the same body: the typed client wants `status` as a string plus `title`,
`detail` and `source`; ddtrace only ever reads `detail`/`title`.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

if TYPE_CHECKING:  # every service imports this module, and so every `kennel` command: FastAPI is 0.2 s
    from fastapi import FastAPI, Request

log = logging.getLogger("kennel")

JSONAPI = "application/vnd.api+json"


class KennelError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(
        self,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        header: str | None = None,
        meta: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.headers = headers
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter
        self.header = header
        self.meta = meta
        # Several problems found at once (e.g. every bad field of a body) travel together.
        self.extra = errors or []

    def items(self) -> list[dict[str, Any]]:
        first = error_item(self.status, self.title, self.detail, pointer=self.pointer,
                           parameter=self.parameter, header=self.header, meta=self.meta)
        return [first, *self.extra]


class Invalid(KennelError):
    status = 400
    title = "Bad Request"


class Forbidden(KennelError):
    status = 403
    title = "Forbidden"


class NotFound(KennelError):
    status = 404
    title = "Not Found"


class Conflict(KennelError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(KennelError):
    status = 413
    title = "Payload Too Large"


class UnsupportedMediaType(KennelError):
    status = 415
    title = "Unsupported Media Type"


class ClientClosedRequest(KennelError):
    """The client hung up before its request was done; nobody reads this answer (nginx's 499)."""

    status = 499
    title = "Client Closed Request"


class RequestTimeout(KennelError):
    status = 408
    title = "Request Timeout"


class Unavailable(KennelError):
    status = 503
    title = "Service Unavailable"


class InsufficientStorage(KennelError):
    status = 507
    title = "Insufficient Storage"


# PostgreSQL's disk_full (psycopg.errors.DiskFull); its other class-53 errors are not about disk space.
_PG_DISK_FULL = "53100"


def out_of_space(exc: BaseException | None) -> InsufficientStorage | None:
    """The error to answer when `exc` is the database refusing to write for want of disk space.

    SQLite says SQLITE_FULL ("database or disk is full") and PostgreSQL SQLSTATE 53100, wrapped by
    SQLAlchemy, or not when they come straight from the driver (PostgreSQL's COPY). Either way the
    transaction is rolled back and the database is as it was, so the server can go on serving reads,
    and writes once there is room again.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for err in (exc, getattr(exc, "orig", None)):
            if isinstance(err, sqlite3.Error) and (getattr(err, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL:
                return InsufficientStorage(
                    f"the SQLite database is out of disk space (SQLite: {err}), so this request changed "
                    f"nothing. The server is still running and answers reads. Free space on the disk that "
                    f"holds the database file and its -wal file, or on SQLite's temporary directory "
                    f"(SQLITE_TMPDIR), then retry.")
            if getattr(err, "sqlstate", None) == _PG_DISK_FULL:
                said = str(err).strip().splitlines()[0] if str(err).strip() else "disk full"
                return InsufficientStorage(
                    f"the PostgreSQL database is out of disk space (PostgreSQL: {said}), so this request "
                    f"changed nothing. The server is still running and answers reads. Free space on the "
                    f"PostgreSQL server's disk, then retry.")
        exc = exc.__cause__ or exc.__context__
    return None


def error_item(status: int, title: str, detail: str, *, pointer: str | None = None,
               parameter: str | None = None, header: str | None = None,
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    source: dict[str, str] = {}
    if pointer is not None:
        source["pointer"] = pointer
    if parameter is not None:
        source["parameter"] = parameter
    if header is not None:
        source["header"] = header
    item: dict[str, Any] = {"status": str(status), "title": title, "detail": detail}
    if source:
        item["source"] = source
    if meta:
        item["meta"] = meta
    return item


def error_response(status: int, items: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"errors": items}), status_code=status, media_type=JSONAPI, headers=headers)


def _loc_to_source(loc: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """Map a FastAPI validation location to a JSON:API source (pointer or parameter)."""
    if not loc:
        return None, None
    where, rest = loc[0], loc[1:]
    if where in ("query", "path", "header", "cookie"):
        return None, str(rest[0]) if rest else None
    return "/" + "/".join(str(p) for p in rest), None


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(KennelError)
    async def _kennel(_: Request, exc: KennelError) -> Response:
        return error_response(exc.status, exc.items(), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        items = []
        for err in exc.errors():
            pointer, parameter = _loc_to_source(tuple(err.get("loc", ())))
            name = parameter or pointer or "request"
            items.append(error_item(400, "Bad Request", f"{name}: {err.get('msg', 'invalid value')}",
                                    pointer=pointer, parameter=parameter))
        return error_response(400, items or [error_item(400, "Bad Request", "invalid request")])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route"
        return error_response(exc.status_code, [error_item(exc.status_code, title, detail)],
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(StatementError)
    async def _statement(request: Request, exc: StatementError) -> Response:
        # Values the database refuses (PostgreSQL DataError: NUL in text, out-of-range numbers; a JSON
        # value that cannot be encoded) are the client's data, not a server fault.
        if isinstance(exc, DataError) or isinstance(exc.orig, (TypeError, ValueError)):
            log.info("rejected value on %s %s: %s", request.method, request.url.path, exc.orig)
            reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            return error_response(400, [error_item(400, "Bad Request", f"a value in the request cannot be stored: "
                                                                       f"{reason}")])
        return await _unexpected(request, exc)

    @app.exception_handler(psycopg.Error)
    @app.exception_handler(sqlite3.Error)
    async def _driver(request: Request, exc: Exception) -> Response:
        # Driver errors SQLAlchemy never wrapped (PostgreSQL's COPY goes through psycopg itself). Handled
        # here, not by the catch-all below, whose answer Starlette follows by re-raising the error.
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        full = out_of_space(exc)
        if full is not None:
            # The operator's problem, not a bug: one line says what to do, no stack trace.
            log.error("out of disk space on %s %s: %s", request.method, request.url.path, full.detail)
            return error_response(full.status, full.items())
        # Never leak a stack trace to the client; it goes to the server log instead.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, [error_item(500, "Internal Server Error",
                                               "the server failed to handle this request; see the server log")])
