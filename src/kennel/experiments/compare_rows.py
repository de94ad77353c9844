"""The rows of a comparison: one per dataset record, filtered, sorted, in keyset pages.

Every run's results are in memory (compare.load_run), so a filter or sort is a pass over at most the
dataset's records; the cursor is the last row's sort key (never an offset), so a page costs the same
wherever it is, and a row added or removed elsewhere never shifts the next page. Inputs and outputs are
read for the page's records only.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from kennel.errors import Invalid
from kennel.experiments.compare import OUTCOMES, Comparison, outcome, value_of
from kennel.experiments.compare_run import Result
from kennel.spans.models import Span

MODES = ("compact", "full", "diff")
ORDERS = ("asc", "desc")
SCORE_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq}


@dataclass(frozen=True)
class RowQuery:
    """What the URL says about the rows (everything but the runs and the baseline)."""

    metric: str | None = None
    vs: str | None = None            # the run whose outcome or value is filtered and sorted on
    outcome: str | None = None
    value: str | None = None
    errors: bool = False
    sort: str = "record"             # "record" or a metric label
    order: str = "asc"
    cursor: str | None = None
    limit: int = 50


def check_query(comp: Comparison, q: RowQuery) -> RowQuery:
    """The query with `vs` defaulted (the first run after the baseline); a bad part is a 400 naming it."""
    ids = [r.info.id for r in comp.runs]
    vs = q.vs or next(i for i in ids if i != comp.baseline.info.id)
    if vs not in ids:
        raise Invalid(f"vs {vs!r} is not one of the runs compared", parameter="vs")
    for name, label in (("metric", q.metric), ("sort", None if q.sort == "record" else q.sort)):
        if label is not None and label not in comp.labels:
            raise Invalid(f"unknown metric {label!r}; these runs have: {', '.join(comp.labels) or 'no metrics'}",
                          parameter=name)
    if q.outcome is not None and q.outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}", parameter="outcome")
    if q.value is not None and q.metric is None:
        raise Invalid("a value filter needs the metric it applies to", parameter="value")
    if q.order not in ORDERS:
        raise Invalid("order must be asc or desc", parameter="order")
    if q.metric and q.value is not None:
        _value_test(comp.labels[q.metric], q.value)
    return RowQuery(q.metric, vs, q.outcome, q.value, q.errors, q.sort, q.order, q.cursor, q.limit)


def _value_test(kind: str, raw: str) -> Callable[[Any], bool]:
    text = raw.strip()
    if kind == "boolean":
        if text not in ("true", "false"):
            raise Invalid("a boolean metric's value is true or false", parameter="value")
        want = text == "true"
        return lambda v: v is want
    if kind == "score":
        for op in (">=", "<=", ">", "<", "="):
            if text.startswith(op):
                text, fn = text[len(op):].strip(), SCORE_OPS[op]
                break
        else:
            fn = operator.eq
        try:
            bound = float(text)
        except ValueError:
            raise Invalid("a score filter is a number, optionally after >, >=, <, <= or =, e.g. >=0.5",
                          parameter="value") from None
        return lambda v: v is not None and fn(v, bound)
    return lambda v: v == raw


def _has_error(comp: Comparison, rid: str) -> bool:
    return any(run.flagged(rid) for run in comp.runs)


def matching(comp: Comparison, q: RowQuery) -> list[str]:
    """Record ids passing the filters, in record order."""
    assert q.vs is not None
    base, other = comp.baseline, comp.run(q.vs)
    ids = comp.record_ids
    if q.errors:
        ids = [rid for rid in ids if _has_error(comp, rid)]
    if q.outcome is not None:
        wanted = q.outcome
        tests = [(base.column(label, kind), other.column(label, kind), kind, comp.higher.get(label, True))
                 for label, kind in comp.labels.items() if q.metric in (None, label)]
        ids = [rid for rid in ids
               if any(outcome(a.get(rid), b.get(rid), kind, higher) == wanted for a, b, kind, higher in tests)]
    if q.metric and q.value is not None:
        test = _value_test(comp.labels[q.metric], q.value)
        column = other.column(q.metric, comp.labels[q.metric])
        ids = [rid for rid in ids if test(column.get(rid))]
    return ids


def _desc_key(value: str) -> tuple[int, ...]:
    # Reversed string order as a tuple that sorts ascending ("ab" before "a" before "" when descending).
    return tuple(-ord(ch) for ch in value) + (1,)


def sort_keys(comp: Comparison, q: RowQuery, ids: list[str]) -> list[tuple[Any, ...]]:
    """(missing last, 0 for numbers / 1 for text, value, record id) per record, unsorted. The type tag keeps
    a forged cursor of the other type from ever being compared with a value."""
    assert q.vs is not None
    column = comp.run(q.vs).column(q.sort, comp.labels[q.sort])
    desc = q.order == "desc"
    out: list[tuple[Any, ...]] = []
    for rid in ids:
        v = column.get(rid)
        if v is None:
            out.append((1, 0, 0, rid))
        elif isinstance(v, str):
            out.append((0, 1, _desc_key(v) if desc else v, rid))
        else:
            out.append((0, 0, -float(v) if desc else float(v), rid))
    return out


def encode_key(prefix: Sequence[Any], key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([list(prefix), list(key)])).decode().rstrip("=")


def decode_key(cursor: str, prefix: Sequence[Any]) -> tuple[Any, ...]:
    try:
        head, key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if head != list(prefix) or not isinstance(key, list) or len(key) != 4:
            raise ValueError
        missing, tag, value, rid = key
        if isinstance(value, list):
            value = tuple(value)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = isinstance(value, str) or (isinstance(value, tuple) and all(isinstance(i, int) for i in value))
        if missing not in (0, 1) or tag not in (0, 1) or not isinstance(rid, str) or not (
                (tag == 0 and numeric) or (tag == 1 and text)):
            raise ValueError
        return (missing, tag, value, rid)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise Invalid("cursor is not one this comparison issued (it belongs to another sort, or was changed); "
                      "start from the first page", parameter="cursor") from None


def page(comp: Comparison, q: RowQuery) -> tuple[list[str], str | None, int]:
    """The page's record ids, the next page's cursor, and how many records match."""
    ids = matching(comp, q)  # in record order
    prefix = [q.sort, q.order, q.vs]
    after_key = decode_key(q.cursor, prefix) if q.cursor else None
    if q.sort == "record":
        # Already in order: the cursor is the last record id shown.
        if q.order == "desc":
            start = 0 if after_key is None else len(ids) - bisect_left(ids, after_key[3])
            ids = ids[::-1]
        else:
            start = 0 if after_key is None else bisect_right(ids, after_key[3])
        chosen = ids[start:start + q.limit]
        last = (0, 1, chosen[-1], chosen[-1]) if chosen else None
    else:
        keys = sorted(sort_keys(comp, q, ids))
        start = 0 if after_key is None else bisect_right(keys, after_key)
        window = keys[start:start + q.limit]
        chosen = [k[3] for k in window]
        last = window[-1] if window else None
    after = encode_key(prefix, last) if last is not None and start + q.limit < len(ids) else None
    return chosen, after, len(ids)


# What a row shows -------------------------------------------------------------------------------------

@dataclass(slots=True)
class Cell:
    run_id: str
    present: bool
    span_id: str = ""
    trace_id: str = ""
    output: Any = None
    output_text: str = ""
    error: str = ""
    duration_ms: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    metric_errors: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    diff: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Row:
    record_id: str
    input: Any
    expected_output: Any
    cells: list[Cell]


def pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def json_diff(base: Any, other: Any) -> list[tuple[str, str]]:
    """Line diff of the two outputs as canonical JSON (keys sorted, so key order never shows as a change):
    (" " | "-" | "+", line)."""
    a, b = pretty(base).splitlines(), pretty(other).splitlines()
    out = []
    for line in difflib.ndiff(a, b):
        tag = line[:1]
        if tag in (" ", "-", "+"):
            out.append((tag, line[2:]))
    return out


def metas(session: Session, comp: Comparison, record_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """(run id, span id) -> the span's meta (input, output, expected output, error), for these records."""
    wanted: dict[str, list[str]] = {}
    for run in comp.runs:
        spans = [run.span_ids[run.index[rid]] for rid in record_ids if rid in run.index]
        if spans:
            wanted[run.info.id] = spans
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for run_id, spans in wanted.items():
        for at in range(0, len(spans), 500):
            rows = session.execute(select(Span.span_id, Span.meta).where(
                Span.experiment_id == run_id, Span.span_id.in_(spans[at:at + 500]))).all()
            for span_id, meta in rows:
                out[(run_id, span_id)] = meta if isinstance(meta, dict) else {}
    return out


def _error_text(meta: dict[str, Any], result: Result) -> str:
    err = meta.get("error")
    if isinstance(err, dict):
        kind, msg = err.get("type"), err.get("message")
        return ": ".join(str(x) for x in (kind, msg) if x) or "error"
    return "error" if result.error else ""


def rows(session: Session, comp: Comparison, record_ids: Sequence[str], *, with_diff: bool = False) -> list[Row]:
    found = metas(session, comp, record_ids)
    base_id = comp.baseline.info.id
    out = []
    for rid in record_ids:
        cells: list[Cell] = []
        inp: Any = None
        expected: Any = None
        base_output: Any = None
        for run in [comp.baseline] + [r for r in comp.runs if r is not comp.baseline]:
            res = run.results.get(rid)
            if res is None:
                cells.append(Cell(run.info.id, False))
                continue
            meta = found.get((run.info.id, res.span_id), {})
            if inp is None:
                inp, expected = meta.get("input"), meta.get("expected_output")
            output = meta.get("output")
            cell = Cell(run.info.id, True, res.span_id, res.trace_id, output, pretty(output),
                        _error_text(meta, res), res.duration_ns / 1e6, dict(res.values), list(res.metric_errors))
            for label, kind in comp.labels.items():
                base_v = value_of(comp.baseline.results.get(rid), label, kind)
                cell.outcomes[label] = ("" if run.info.id == base_id else
                                        outcome(base_v, value_of(res, label, kind), kind, comp.higher.get(label, True)))
            if run.info.id == base_id:
                base_output = output
            elif with_diff and comp.baseline.results.get(rid) is not None:
                cell.diff = json_diff(base_output, output)
            cells.append(cell)
        order = {r.info.id: i for i, r in enumerate(comp.runs)}
        cells.sort(key=lambda c: order[c.run_id])
        out.append(Row(rid, inp, expected, cells))
    return out
