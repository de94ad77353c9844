"""Wire helpers shared by every router: JSON:API responses, body parsing, cursors, page limits."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import AfterValidator, BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from kennel.errors import JSONAPI, Invalid, NotFound, error_item
from kennel.openapi import json_body

M = TypeVar("M", bound=BaseModel)

# What both databases' integer columns hold.
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
# orjson writes every JSON value PostgreSQL is handed, and every response: it writes integers from
# -2**63 to 2**64 - 1 and at most 254 nested arrays and objects, and raises on anything beyond.
JSON_INT_MIN, JSON_INT_MAX = -2**63, 2**64 - 1
ORJSON_MAX_DEPTH = 254
# A stored document is served again inside a response envelope several levels deep, so it must stay
# well inside orjson's limit; pydantic's parser already refuses bodies nested deeper than this.
MAX_JSON_DEPTH = 200


def _default(value: Any) -> Any:
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, default=_default, option=orjson.OPT_UTC_Z)


def respond(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status_code=status, media_type=JSONAPI)


def no_content() -> Response:
    return Response(status_code=204)


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def raw_body(request: Request) -> bytes:
    return await request.body()


def _pointer(loc: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(p) for p in loc) if loc else ""


# Digits to "0", quotes and minus signs kept, everything else a space: in the translated body an integer
# literal too wide for orjson is a space (what precedes a JSON number once translated) followed by 20
# zeros, or by a minus and 19. Digits inside strings rarely match, and a match only costs a second parse.
_DIGIT_RUNS = bytes(ord("0") if 48 <= c <= 57 else c if c in b'"-' else ord(" ") for c in range(256))
# In a CSV file a quote may open a cell that is a bare number, not only a JSON string.
_CSV_DIGIT_RUNS = _DIGIT_RUNS.replace(b'"', b" ")
_WIDE, _WIDE_NEGATIVE = b" " + b"0" * 20, b" -" + b"0" * 19
# Both hold this run, which is looked for first: in a short text, bytes.find sets up a mixed needle (space
# or minus, then zeros) in ~3 us, and a uniform one in a tenth of that.
_RUN = b"0" * 19
# Translated a block at a time, so a 100 MB upload is never copied whole; blocks overlap by a pattern's
# length less one, so a literal across a boundary is seen whole in one of them.
_SCAN_BLOCK = 1 << 20
_SCAN_OVERLAP = len(_WIDE) - 1


def may_hold_wide_int(raw: bytes, *, csv: bool = False) -> bool:
    """Whether `raw` (JSON or JSON lines, or with `csv` a CSV file whose cells may be JSON) may hold an
    integer literal orjson would read as a float; False means it certainly does not. At C speed, about a
    seventh of an orjson parse."""
    table = _CSV_DIGIT_RUNS if csv else _DIGIT_RUNS
    for start in range(0, len(raw), _SCAN_BLOCK):
        # At the very start nothing precedes a literal: a space stands in for it.
        block = raw[max(start - _SCAN_OVERLAP, 0):start + _SCAN_BLOCK] if start else b" " + raw[:_SCAN_BLOCK]
        translated = block.translate(table)
        if _RUN in translated and (_WIDE in translated or _WIDE_NEGATIVE in translated):
            return True
    return False


def _exact_ints(raw: bytes | str, tree: Any) -> Any:
    # `tree` is orjson's reading of `raw`, so `raw` is strict JSON; the standard library reads it alike
    # but for integers beyond 64 bits, which it keeps exact for check_storable to refuse.
    if not may_hold_wide_int(raw if isinstance(raw, bytes) else raw.encode()):
        return tree
    try:
        return json.loads(raw)
    except RecursionError:
        raise Invalid("malformed JSON: nested too deep", pointer="") from None


def strict_loads(raw: bytes) -> Any:
    """Parse strict JSON (RFC 8259) with integers exact, or answer 400 saying what is wrong with it.

    orjson reads integers beyond 64 bits as floats, a changed number stored without a word; a body that
    may hold one is parsed again by the standard library, which keeps them exact for check_storable to
    refuse.
    """
    return _exact_ints(raw, _strict_orjson(raw))


def exact_loads(raw: bytes | str) -> Any:
    """orjson.loads, raising orjson.JSONDecodeError as it does, but with integers beyond 64 bits exact
    (as strict_loads) rather than floats; Invalid if such a document is nested too deep to read again.
    For callers that treat what is not JSON otherwise than as a 400 (an upload's CSV cell is then text);
    worth calling only where may_hold_wide_int found something, as the check costs a copy per call."""
    return _exact_ints(raw, orjson.loads(raw))


def _strict_orjson(raw: bytes) -> Any:
    """Bodies pydantic validates pass here first: pydantic reads NaN and Infinity, and turns 1e999 into
    inf; JSON has none of them, and stored, each would come back as null, data changed without a word.
    At ~1 ms per MB this second parse costs ~4% of a 1,000-record append. parse_body throws the tree
    away rather than validating it: pydantic keeps integers beyond 64 bits exact, orjson does not.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        # Python's json.dumps writes NaN and Infinity by default, so say why rather than where only.
        at = raw.decode("utf-8", "replace")[exc.pos:exc.pos + 9].lstrip("-")
        if at.startswith(("NaN", "Infinity")) or "infinity" in exc.msg:
            reason += "; NaN, Infinity and numbers beyond a double's range are not JSON numbers"
        raise Invalid(f"malformed JSON: {reason}", pointer="") from None


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body into `model`, turning every problem into a 400 naming its field."""
    if not raw.strip():
        raise Invalid("request body is empty; expected a JSON document with a top-level `data` member",
                      pointer="")
    _strict_orjson(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        items = []
        for err in exc.errors(include_url=False):
            etype = err.get("type", "")
            loc = tuple(err.get("loc", ()))
            if etype == "json_invalid":
                reason = err.get("ctx", {}).get("error", err.get("msg", ""))
                items.append(error_item(400, "Bad Request", f"malformed JSON: {reason}", pointer=""))
                continue
            pointer = _pointer(loc)
            field = ".".join(str(p) for p in loc) or "body"
            msg = err.get("msg", "invalid value")
            if etype == UNSTORABLE:
                pointer += err["ctx"]["path"]
                detail = f"{pointer}: {msg}"
            elif etype == "missing":
                detail = f"{field} is required"
            elif etype == "literal_error":
                expected = err.get("ctx", {}).get("expected", "")
                detail = f"{field} must be {expected}, got {err.get('input')!r}"
            else:
                detail = f"{field}: {msg}"
            items.append(error_item(400, "Bad Request", detail, pointer=pointer))
        first = items[0]
        raise Invalid(first["detail"], pointer=first.get("source", {}).get("pointer"), errors=items[1:]) from None


def _deeper_than(value: Any, depth: int) -> Any:
    # `depth` more levels around the value: orjson's own limit then refuses a value nested deeper than
    # ORJSON_MAX_DEPTH - depth, at C speed.
    for _ in range(depth):
        value = [value]
    return value


# An escaped NUL in orjson's output: `\u0000` after an even number of backslashes (after an odd number,
# it is the text "u0000" following a backslash).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def storable(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests at most `max_depth` arrays and objects, holds only integers orjson writes,
    and no NUL character in a string or key."""
    try:
        blob = orjson.dumps(_deeper_than(value, ORJSON_MAX_DEPTH - max_depth))
    except orjson.JSONEncodeError:
        return False
    # PostgreSQL's jsonb cannot hold a NUL where SQLite stores it, so both refuse it, alike. Looking for
    # a backslash first is a memchr; most JSON has no escape at all.
    return b"\\" not in blob or b"\\u0000" not in blob or not _NUL_ESCAPE.search(blob)


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


_NUL_KEY = object()  # stands, on unstorable's stack, for the value of a key holding a NUL


def unstorable(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """Where (a JSON pointer inside `value`) and why `value` cannot be stored, or None if it can."""
    if storable(value, max_depth=max_depth):
        return None
    # Only a value that failed gets walked (in document order, without recursion: it may be deep).
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return path, f"JSON nested too deep: at most {max_depth} levels of arrays and objects"
            if isinstance(item, dict):
                children = [(_NUL_KEY if isinstance(k, str) and "\x00" in k else v, f"{path}/{_escape(k)}",
                             depth + 1) for k, v in item.items()]
            else:
                children = [(v, f"{path}/{k}", depth + 1) for k, v in enumerate(item)]
            stack.extend(reversed(children))
        elif isinstance(item, int) and not JSON_INT_MIN <= item <= JSON_INT_MAX:
            return path, "integer too large to store: integers must fit in 64 bits (-2^63 to 2^64 - 1)"
        elif item is _NUL_KEY or (isinstance(item, str) and "\x00" in item):
            where = "key" if item is _NUL_KEY else "string"
            return path, f"a {where} holds a NUL character (\\u0000), which cannot be stored"
    return "", "value cannot be written as JSON"


def check_storable(value: Any, *, pointer: str | None = None, parameter: str | None = None,
                   max_depth: int = MAX_JSON_DEPTH) -> None:
    """A 400 naming the first part of `value` neither database could store (or a response could not
    carry back): a pointer below `pointer`, or the query `parameter` it came in."""
    problem = unstorable(value, max_depth=max_depth)
    if problem is None:
        return
    path, reason = problem
    if parameter is not None:
        raise Invalid(f"{parameter}: {reason}" + (f" (at {path})" if path else ""), parameter=parameter)
    where = (pointer or "") + path
    raise Invalid(f"{where or 'body'}: {reason}", pointer=where)


UNSTORABLE = "json_unstorable"


def _storable_field(value: Any) -> Any:
    problem = unstorable(value)
    if problem is not None:
        # parse_body appends `path` to the field's pointer.
        raise PydanticCustomError(UNSTORABLE, problem[1], {"path": problem[0]})
    return value


# A JSON object field the server stores as sent (metadata, config): check_storable as a field type.
StorableObject = Annotated[dict[str, Any], AfterValidator(_storable_field)]


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...], parameter: str = "page[cursor]", *,
                  prefix: tuple[Any, ...] = ()) -> list[Any]:
    """The parts of a cursor encode_cursor made: `prefix` (e.g. the sort order it was issued for), then
    one part of each of `types`, which the caller gets.

    Checked here for every caller: a forged or stale cursor is a 400 naming `parameter` (a query
    parameter, or a body field's JSON pointer, starting with /), never a value a query cannot bind (an
    object, a bool, an integer beyond 64 bits).
    """
    where: dict[str, Any] = {"pointer": parameter} if parameter.startswith("/") else {"parameter": parameter}
    refused = Invalid(f"{parameter} is not a cursor this server issued for this request", **where)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise refused from None
    if not isinstance(parts, list) or len(parts) != len(prefix) + len(types):
        raise refused
    if parts[:len(prefix)] != list(prefix):
        raise refused
    tail = parts[len(prefix):]
    for part, kind in zip(tail, types, strict=True):
        # type(), not isinstance(): a bool is an int to isinstance.
        if type(part) is not kind or (isinstance(part, int) and not INT64_MIN <= part <= INT64_MAX):
            raise refused
    return tail


def page_limit(raw: str | None, *, default: int, maximum: int, parameter: str = "page[limit]",
               clamp: bool = False) -> int:
    """A page size from 1 to `maximum`; with `clamp` (where the API documents it) a larger one reads as
    `maximum` rather than a 400."""
    value = int_param(raw, parameter, default=default, minimum=None, maximum=None)
    assert value is not None
    if clamp and value > maximum:
        return maximum
    if value < 1 or value > maximum:
        raise Invalid(f"{parameter} must be between 1 and {maximum}, got {value}", parameter=parameter)
    return value


# What an integer in a URL looks like. int() also reads surrounding whitespace, underscores between
# digits and any script's decimal digits (Arabic-Indic, fullwidth, ...): none is an integer to any other
# HTTP server or client, so a value that only Python reads as one is refused, not guessed at.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def int_param(raw: str | None, name: str, *, default: int | None = None, minimum: int | None = INT64_MIN,
              maximum: int | None = INT64_MAX) -> int | None:
    """An optional integer query parameter: an optional sign and ASCII digits; anything else is a 400
    naming it. By default it must fit in 64 bits, as both databases' integers do: SQLite cannot bind a
    wider one at all."""
    if raw is None or raw == "":
        return default
    try:
        if not _INTEGER.fullmatch(raw):
            raise ValueError(raw)
        value = int(raw)  # ValueError beyond 4,300 digits
    except ValueError:
        raise Invalid(f"{name} must be an integer (ASCII digits, optionally signed), got {raw!r}",
                      parameter=name) from None
    if minimum is not None and value < minimum:
        raise Invalid(f"{name} must be >= {minimum}, got {value}", parameter=name)
    if maximum is not None and value > maximum:
        raise Invalid(f"{name} must be <= {maximum}, got {value}", parameter=name)
    return value


async def plain_parameters(request: Request) -> None:
    """Every API route's query and path parameters, checked for NUL characters before any handler runs.

    Neither database holds a name, id or tag with a NUL (writes refuse them on both), but the two differ
    on a query holding one: SQLite compares and finds nothing, PostgreSQL refuses to bind it at all.
    Checked here once, for every parameter a route has now or gets later, so both answer alike: a query
    parameter is the client's mistake, a 400 naming it; a path names a resource, and no resource has
    such a name (404). Async: a sync dependency would take a worker thread per request.
    """
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:
            raise Invalid(f"{key} contains a NUL character (%00); no name, id or tag can hold one",
                          parameter=key)
    for key, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise NotFound(f"no {key} {value!r}: no name or id can hold a NUL character (%00)")


def bool_param(raw: str | None, name: str, default: bool) -> bool:
    """An optional boolean query parameter: true/false, 1/0 or yes/no."""
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise Invalid(f"{name} must be true or false, got {raw!r}", parameter=name)


def comma_list(values: list[str] | None, *, strip: bool = False) -> list[str]:
    """A query parameter given repeatedly and/or as comma-separated values, as one list (empty items
    dropped; with `strip`, items are trimmed first)."""
    if strip:
        return [item.strip() for raw in values or [] for item in raw.split(",") if item.strip()]
    return [item for raw in values or [] for item in raw.split(",") if item]


def list_meta(after: str | None) -> dict[str, Any]:
    # ddtrace treats "" as the last page; the typed client accepts a string too.
    return {"after": after or ""}


RawBody = Annotated[bytes, Depends(raw_body)]

# ddtrace calls some routes under /api/unstable; every route is served under both prefixes.
PREFIXES = ("/api/v2/llm-obs", "/api/unstable/llm-obs")


def dual_route(router: APIRouter, method: str, path: str, *,
               body: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `path` (starting with /v1 or /v2) under both prefixes; `body` is the model the handler
    passes to parse_body, for /openapi.json."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for prefix in PREFIXES:
            router.add_api_route(prefix + path, fn, methods=[method],
                                 openapi_extra=json_body(body) if body is not None else None)
        return fn
    return register


async def client_hang_up(request: Request) -> AsyncIterator[threading.Event]:
    """An event set when the client hangs up, for a sync route to check from its worker thread.

    Dependencies run once the body has been read, so the one message left to receive is the
    disconnect; receiving also lets the server read the connection's end while the route works.
    """
    gone = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        watcher.cancel()


HangUpDep = Annotated[threading.Event, Depends(client_hang_up, scope="function")]
