"""Admission: what a request must get through before it may touch the database.

Every route that uses the database passes, in this order:

1. **Keys.** The key pair is checked in a short read of its own, before a byte of the body is read, so
   an anonymous client cannot make the server buffer or spool anything.
2. **Body.** The whole body is read, under a deadline (408 past it) and a size limit (413), while its
   bytes count against a budget of bodies in flight (a request waits briefly for room, else 503).
   Nothing is open in the database meanwhile, so a client on a slow link delays only itself.
3. **A turn at the database.** Reads and writes queue separately (asyncio, not threads); SQLite takes
   one writer at a time, which is all it can run anyway, so waiting writers hold neither a worker
   thread nor a connection. A request that does not get its turn within the queue timeout is answered
   503 with Retry-After instead of piling up until the thread pool starves (40 worker threads, every
   one blocked on a lock whose holder needs a thread to finish).

The turn is given back when the answer starts (the unit of work has committed by then); the body's
room in the budget when the request is over, since the parsed body lives as long as the handler.

A route that depends on `streamed_body` (a file staged for import) skips steps 2 and 3: after its keys,
its handler reads the body as it arrives (Starlette spools a file part to disk past 1 MiB), still under
the size limit and the deadline, holding only STREAM_HOLD_BYTES of the budget, and then takes its own
turn at the database. So a large file is never held whole in memory, and a slow upload holds no turn.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kennel.errors import Forbidden, Invalid, KennelError, PayloadTooLarge, RequestTimeout, Unavailable, error_response
from kennel.people.roles import Permission, permission_for

log = logging.getLogger("kennel")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_S = 2
# Bodies at least this large are handled one at a time, and followed by giving the memory they used
# back to the system (see _trim).
LARGE_BODY_BYTES = 8 * 1024 * 1024
LARGE_WAIT_FACTOR = 6
STREAM_HOLD_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    body_timeout: float
    bodies_in_flight_bytes: int
    queue_timeout: float
    reads: int
    writes: int


@dataclass(frozen=True)
class RouteNeeds:
    keys: str | None          # "both", "api" (intake: DD-API-KEY only) or None
    database: bool
    permission: Permission = Permission.READ
    streamed: bool = False


def streamed_body() -> None:
    """A route that depends on this reads its own body as it arrives and takes its own database turn
    (Admission.write_turn); the gate checks its keys and bounds its body's size and time."""


def busy(detail: str) -> Unavailable:
    return Unavailable(f"{detail}; retry after {RETRY_AFTER_S} s", headers={"Retry-After": str(RETRY_AFTER_S)})


class ByteBudget:
    """Bytes of request bodies held at once. A body larger than the whole budget may still come in
    when nothing else is held, so the largest accepted body is never refused for want of room."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._changed = asyncio.Condition()

    def _fits(self, n: int) -> bool:
        return self.held + n <= self.capacity or self.held == 0

    async def take(self, n: int, timeout: float) -> None:
        async with self._changed:
            if not self._fits(n):
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: self._fits(n)), timeout)
                except TimeoutError:
                    raise busy(f"the server is holding {self.held // 2**20} MiB of request bodies, its limit "
                               f"(KENNEL_MAX_BODIES_IN_FLIGHT_BYTES)") from None
            self.held += n

    async def give(self, n: int) -> None:
        if n:
            async with self._changed:
                self.held -= n
                self._changed.notify_all()


class Turns:
    """A bounded queue for one kind of database work."""

    def __init__(self, kind: str, slots: int) -> None:
        self.kind = kind
        self.slots = slots
        self._sem = asyncio.Semaphore(slots)
        self.waiting = 0

    async def take(self, timeout: float) -> None:
        self.waiting += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), timeout)
        except TimeoutError:
            raise busy(f"the server is busy: {self.waiting} {self.kind} waited longer than {timeout:g} s for the "
                       f"database (KENNEL_QUEUE_TIMEOUT)") from None
        finally:
            self.waiting -= 1

    def give(self) -> None:
        self._sem.release()

    @asynccontextmanager
    async def turn(self, timeout: float) -> AsyncIterator[None]:
        await self.take(timeout)
        try:
            yield
        finally:
            self.give()


class Admission:
    """The queues and the body budget of one server process, shared by the gate and the routes that do
    database work after their answer has started (a streamed upload)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = ByteBudget(limits.bodies_in_flight_bytes)
        # Key checks queue apart from the reads they would otherwise stand in front of.
        self.checks = Turns("key checks", limits.reads)
        self.reads = Turns("reads", limits.reads)
        self.writes = Turns("writes", limits.writes)
        self.large = Turns("requests with large bodies", 1)

    def write_turn(self) -> AbstractAsyncContextManager[None]:
        return self.writes.turn(self.limits.queue_timeout)


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        if d.call is not None:
            found.add(d.call)
        stack.extend(d.dependencies)
    return found


class Gate:
    """ASGI middleware applying the admission steps above to every route that uses the database."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute], admission: Admission,
                 authenticate: Callable[[dict[str, str], bool], Awaitable[Any]]) -> None:
        from kennel.auth import require_api_key, require_keys
        from kennel.db.dependency import get_session

        self.app = app
        self.routes: list[tuple[BaseRoute, RouteNeeds]] = []
        for route in routes:
            if isinstance(route, APIRoute):
                calls = _calls(route.dependant)
                keys = "both" if require_keys in calls else "api" if require_api_key in calls else None
                needs = RouteNeeds(keys, get_session in calls, permission_for(route.path, min(route.methods or {"GET"})),
                                   streamed=streamed_body in calls)
            else:
                needs = RouteNeeds(None, False)
            self.routes.append((route, needs))
        self.limits = admission.limits
        self.authenticate = authenticate
        self.budget = admission.budget
        self.checks, self.reads, self.writes = admission.checks, admission.reads, admission.writes
        self.large = admission.large
        self._checking: dict[tuple[str | None, str | None, bool], asyncio.Future[Any]] = {}

    def needs(self, scope: Scope) -> RouteNeeds | None:
        for route, needs in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return needs
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needs = self.needs(scope)
        if needs is None or (needs.keys is None and not needs.database and not needs.streamed):
            await self.app(scope, receive, send)
            return
        try:
            await self._admit(needs, scope, receive, send)
        except KennelError as refused:
            # A body left unread cannot be skipped on a kept-alive connection: close it after the answer.
            headers = {**(refused.headers or {}), "Connection": "close"}
            await error_response(refused.status, refused.items(), headers=headers)(scope, receive, send)

    async def _admit(self, needs: RouteNeeds, scope: Scope, receive: Receive, send: Send) -> None:
        if needs.keys:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                       if k in (b"dd-api-key", b"dd-application-key")}
            actor = await self._check(headers, needs.keys == "both")
            if not actor.may(needs.permission):
                raise Forbidden(f"{actor.name} has the {actor.role} role, which lacks the `{needs.permission}` "
                                f"permission this request needs; nothing was changed")
            scope.setdefault("state", {})["actor"] = actor
        if needs.streamed:
            await self._stream(scope, receive, send)
            return
        held = 0
        try:
            body, held, replay = await self._read_body(scope, receive)
            if body is None:
                return  # the client went away while sending
            if held < LARGE_BODY_BYTES:
                await self._run(scope, replay, send)
            else:
                # Handling a body takes several times its size (parsed content, rows, an answer carrying the
                # records back). Waiting bodies cost only their bytes; one large body is worked on at a time.
                # Bulk work takes seconds per request, so these wait longer for their turn than the rest.
                async with self.large.turn(LARGE_WAIT_FACTOR * self.limits.queue_timeout):
                    await self._run(scope, replay, send)
        finally:
            await self.budget.give(held)
            if held >= LARGE_BODY_BYTES:
                await to_thread.run_sync(_trim)

    async def _check(self, headers: dict[str, str], both: bool) -> Any:
        """Requests that arrive with the same key headers while a check of those headers runs share its
        answer: a team's burst usually carries one key pair, and 200 identical lookups would stand in
        front of every other request. Nothing is kept after a check ends, so a revoked key or a disabled
        person is refused from the next check on, on every server."""
        key = (headers.get("dd-api-key"), headers.get("dd-application-key"), both)
        shared = self._checking.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._check_now(headers, both))
            self._checking[key] = shared
            shared.add_done_callback(lambda done: self._checked(key, done))
        # Shielded: a waiter whose client hung up must not cancel the check the others are waiting for.
        return await asyncio.shield(shared)

    async def _check_now(self, headers: dict[str, str], both: bool) -> Any:
        async with self.checks.turn(self.limits.queue_timeout):
            return await self.authenticate(headers, both)

    def _checked(self, key: tuple[str | None, str | None, bool], done: asyncio.Future[Any]) -> None:
        self._checking.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every waiter went away before it ended

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared, _ = _declared(scope)
        limit = self.limits.max_body_bytes
        if declared and declared > limit:
            raise PayloadTooLarge(_too_large(limit))
        hold = min(declared or STREAM_HOLD_BYTES, STREAM_HOLD_BYTES)
        await self.budget.take(hold, self.limits.queue_timeout)
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        seen = 0
        complete = False

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"the request body did not arrive within {self.limits.body_timeout:g} s "
                                     f"({seen} bytes received); nothing was changed (KENNEL_BODY_TIMEOUT)") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(_too_large(limit))
                complete = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            await self.budget.give(hold)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes | None, int, Receive]:
        declared, chunked = _declared(scope)
        if not declared and not chunked:
            return b"", 0, receive
        limit = self.limits.max_body_bytes
        if declared and declared > limit:
            raise PayloadTooLarge(_too_large(limit))
        held = 0
        if declared:
            wait = self.limits.queue_timeout * (LARGE_WAIT_FACTOR if declared >= LARGE_BODY_BYTES else 1)
            await self.budget.take(declared, wait)
            held = declared
        chunks: list[bytes] = []
        seen = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        await self.budget.give(held)
                        return None, 0, receive
                    chunk = message.get("body", b"")
                    if chunk:
                        seen += len(chunk)
                        if seen > limit:
                            raise PayloadTooLarge(_too_large(limit))
                        if seen > held:
                            await self.budget.take(seen - held, self.limits.queue_timeout)
                            held = seen
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self.budget.give(held)
            raise RequestTimeout(f"the request body did not arrive within {self.limits.body_timeout:g} s "
                                 f"({seen} bytes received); nothing was changed (KENNEL_BODY_TIMEOUT)") from None
        except KennelError:
            await self.budget.give(held)
            raise
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return body, held, replay

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        writing = scope["method"] in WRITE_METHODS
        turns = self.writes if writing else self.reads
        await turns.take(self.limits.queue_timeout)
        holding = True

        def give_back() -> None:
            nonlocal holding
            if holding:
                holding = False
                turns.give()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            give_back()


def _declared(scope: Scope) -> tuple[int | None, bool]:
    """The body's Content-Length, if given, and whether it comes chunked."""
    declared = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise Invalid("Content-Length is not a number", header="Content-Length") from None
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return declared, chunked


def _too_large(limit: int) -> str:
    return f"request body exceeds the limit of {limit} bytes (KENNEL_MAX_BODY_BYTES)"


_libc = None


def _trim() -> None:
    """Hand memory freed by a large request back to the system.

    glibc keeps freed memory in the arena of the thread that used it; a handful of 50 MB appends on
    different worker threads otherwise leave the server holding a gigabyte it no longer uses.
    """
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else False
    if isinstance(_libc, ctypes.CDLL) and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)
