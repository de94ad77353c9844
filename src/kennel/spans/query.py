"""Span search syntax: time bounds (`now-7d`, ISO 8601, epoch ms), `@field:value` / `tag:value` terms, sort."""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kennel.errors import Invalid
from kennel.jsonapi import INT64_MAX, INT64_MIN

# [0-9], not \d: \d and int() also read other scripts' digits, which no client means as a number
# (int_param refuses them too).
_RELATIVE = re.compile(r"^now(?:\s*-\s*([0-9]+)\s*(s|m|h|d|w|M|y))?$")
_EPOCH_MS = re.compile(r"[0-9]+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}

# `@field` names a query may use, and the span column each reads.
QUERY_FIELDS = {
    "trace_id": "trace_id", "span_id": "span_id", "parent_id": "parent_id", "ml_app": "ml_app",
    "name": "name", "span_name": "name", "span_kind": "span_kind", "meta.span.kind": "span_kind",
    "status": "status", "session_id": "session_id", "experiment_id": "experiment_id",
}
SORTS = {"timestamp": False, "-timestamp": True, "start_ns": False, "-start_ns": True}


def parse_time(raw: str, *, name: str, pointer: bool = False, now_ns: int | None = None) -> int:
    """A time bound as nanoseconds since the epoch."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    value = raw.strip()
    where: dict[str, Any] = {"pointer": f"/data/attributes/filter/{name}"} if pointer else {"parameter": f"filter[{name}]"}
    try:
        # int() refuses more than 4,300 digits.
        match = _RELATIVE.match(value)
        if match:
            amount, unit = match.groups()
            return now_ns - (int(amount) * _UNIT_SECONDS[unit] * 1_000_000_000 if amount else 0)
        if _EPOCH_MS.fullmatch(value):
            # Epoch milliseconds, the third form ddtrace documents.
            return int(value) * 1_000_000
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} must be ISO 8601, epoch milliseconds or relative such as now-15m; got {raw!r}",
                      **where) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def parse_sort(raw: str | None, *, pointer: bool = False) -> tuple[str, bool]:
    value = (raw or "-timestamp").strip()
    if value not in SORTS:
        where: dict[str, Any] = {"pointer": "/data/attributes/sort"} if pointer else {"parameter": "sort"}
        raise Invalid(f"sort must be one of {', '.join(SORTS)}, got {value!r}", **where)
    return value, SORTS[value]


@dataclass
class Term:
    column: str | None  # None: a tag term
    value: str
    negate: bool = False


@dataclass
class SpanFilter:
    from_ns: int
    to_ns: int
    terms: list[Term] = field(default_factory=list)

    def __post_init__(self) -> None:
        # start_ns is a 64-bit column, and a bound beyond it (year 9999, now-1000000000d, a time_offset
        # of centuries) cannot be bound. Every stored value lies inside, so the bound means the same
        # clamped to the column's edge; a range wholly outside becomes an empty one.
        if self.from_ns > INT64_MAX or self.to_ns < INT64_MIN:
            self.from_ns, self.to_ns = INT64_MAX, INT64_MIN
        else:
            self.from_ns, self.to_ns = max(self.from_ns, INT64_MIN), min(self.to_ns, INT64_MAX)


def parse_query(raw: str, *, pointer: bool = False) -> list[Term]:
    where: dict[str, Any] = {"pointer": "/data/attributes/filter/query"} if pointer else {"parameter": "filter[query]"}
    try:
        tokens = shlex.split(raw)
    except ValueError as exc:
        raise Invalid(f"query: {exc}", **where) from None
    terms: list[Term] = []
    for token in tokens:
        if token.upper() == "AND":
            continue
        negate = token.startswith("-")
        body = token[1:] if negate else token
        key, sep, value = body.partition(":")
        if not sep or not key or not value:
            raise Invalid(f"query term {token!r} is not supported; use @field:value or tag:value "
                          "(terms are ANDed, a leading - negates, a trailing * matches a prefix)", **where)
        if key.startswith("@"):
            column = QUERY_FIELDS.get(key[1:])
            if column is None:
                raise Invalid(f"query field {key!r} is not supported; use one of "
                              + ", ".join("@" + f for f in QUERY_FIELDS) + " or a tag:value term", **where)
            terms.append(Term(column, value, negate))
        else:
            terms.append(Term(None, f"{key}:{value}", negate))
    return terms
