"""A trace as the web app shows it: its spans as a tree of nodes with their values ready to show (cut,
formatted, the way to each error open), a span alone, and a session as the list of its traces.

Pure reading of spans: no HTTP, no access rules (the pages in kennel.web.traces decide who may look).
A trace of more than INLINE_SPANS spans is a tree of summaries whose spans' fields are read when opened,
so a page's cost and size stay bounded whatever the trace holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session

from kennel.jsonapi import decode_cursor, encode_cursor
from kennel.spans.models import Span, SpanMetric
from kennel.spans.views import evaluation_map

# A value longer than CUT characters shows its first CUT; the rest is behind "show all" (in the page up
# to INLINE_MAX characters, on the span's own page beyond).
CUT = 2000
INLINE_MAX = 50_000
# An error message in a span's one-line summary.
SUMMARY_CUT = 160
# Spans nested deeper than this are listed flat at this depth (browsers stop nesting elements at ~512,
# and a pathological parent chain must not make a page that cannot be read).
MAX_DEPTH = 40
# A page shows at most this many spans of a trace, the earliest. A trace of up to INLINE_SPANS spans
# carries every span's fields in the page (while their values add up to BODY_BUDGET characters; later
# spans' are a link away); a larger one is a tree of summaries, and a span's fields are fetched when it
# is opened (htmx; without script, a link to the span's page). So a page costs about the same at 1,000
# spans as at 10,000: no span's input and output are read until someone opens it.
MAX_SPANS = 10_000
INLINE_SPANS = 200
BODY_BUDGET = 3_000_000
# A trace this small opens fully (every span with children); a larger one opens two levels and the way to
# each error.
OPEN_ALL_UPTO = 100
OPEN_DEPTH = 2
SESSION_PAGE = 50
ROW_COLUMNS = (Span.pk, Span.trace_id, Span.span_id, Span.parent_id, Span.name, Span.span_kind, Span.ml_app,
               Span.session_id, Span.status, Span.start_ns, Span.duration, Span.meta, Span.body)


# Values -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Value:
    """A value as text: `head` always shown; `rest` behind "show all", or (`elsewhere`) only on the span's
    own page."""

    head: str
    rest: str = ""
    total: int = 0
    elsewhere: bool = False

    @property
    def total_text(self) -> str:
        return f"{self.total:,}"


def text_value(text: str, *, whole: bool = False) -> Value:
    n = len(text)
    if whole or n <= CUT:
        return Value(text, total=n)
    if n <= INLINE_MAX:
        return Value(text[:CUT], text[CUT:], n)
    return Value(text[:CUT], "", n, True)


def json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # pragma: no cover - stored spans are JSON already
        return repr(value)


@dataclass(slots=True)
class Message:
    role: str
    content: Value | None
    extra: Value | None  # tool calls and other fields of the message, as JSON


@dataclass(slots=True)
class IO:
    """A span's input or output: chat messages, a text value, and whatever else it holds (as JSON)."""

    messages: list[Message] = field(default_factory=list)
    text: Value | None = None
    other: Value | None = None

    def __bool__(self) -> bool:
        return bool(self.messages) or self.text is not None or self.other is not None


def io_of(raw: Any, *, whole: bool) -> IO:
    def val(v: Any) -> Value:
        return text_value(json_text(v), whole=whole)

    out = IO()
    if raw is None or raw == {} or raw == []:
        return out
    if not isinstance(raw, dict):
        out.text = val(raw)
        return out
    rest = dict(raw)
    messages = rest.pop("messages", None)
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                extra = {k: v for k, v in m.items() if k not in ("role", "content")}
                content = m.get("content")
                out.messages.append(Message(str(m.get("role") or ""),
                                            val(content) if content not in (None, "") else None,
                                            val(extra) if extra else None))
            else:
                out.messages.append(Message("", val(m), None))
    elif messages is not None:
        rest["messages"] = messages
    if "value" in rest and rest["value"] is not None:
        out.text = val(rest.pop("value"))
    rest.pop("value", None)
    if rest:
        out.other = val(rest)
    return out


def format_ns(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:,.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:,.1f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:,.1f} ms"
    if ns < 60e9:
        return f"{ns / 1e9:,.2f} s"
    return f"{int(ns // 60e9)} min {ns % 60e9 / 1e9:,.0f} s"


def utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


# Spans and their tree ----------------------------------------------------------------------------

@dataclass(slots=True)
class SpanError:
    type: str
    message: str
    stack: str


def error_of(status: str, meta: dict[str, Any]) -> SpanError | None:
    """ddtrace 4 sends meta.error {message, type, stack}; older tracers sent flat `error.*` keys."""
    if status != "error":
        return None
    err = meta.get("error")
    nested = meta.get("metadata")
    metadata: dict[str, Any] = nested if isinstance(nested, dict) else {}
    if isinstance(err, dict):
        got = {k: err.get(k) for k in ("type", "message", "stack")}
    else:
        got = {k: meta.get(f"error.{k}", metadata.get(f"error.{k}")) for k in ("type", "message", "stack")}
        if isinstance(err, str) and not got["message"]:
            got["message"] = err
    return SpanError(*(v if isinstance(v, str) else json_text(v) if v is not None else ""
                       for v in (got["type"], got["message"], got["stack"])))


@dataclass(slots=True)
class Evaluation:
    label: str
    type: str
    value: Value
    short: str  # for the span's one-line summary
    assessment: str
    reasoning: Value | None


# A titled part of a span's fields (Input, Output, Metadata): its values, each with the role of the chat
# message it is (or None).
Section = tuple[str, list[tuple[str | None, Value]]]


def io_items(io: IO) -> list[tuple[str | None, Value]]:
    items: list[tuple[str | None, Value]] = []
    for m in io.messages:
        if m.content is not None:
            items.append((m.role or "message", m.content))
        if m.extra is not None:
            items.append((None if m.content is not None else m.role or "message", m.extra))
    items.extend((None, v) for v in (io.text, io.other) if v is not None)
    return items


@dataclass(slots=True, eq=False)
class Node:
    span_id: str
    parent_id: str | None
    trace_id: str
    name: str
    kind: str
    status: str
    start_ns: int
    duration: float
    ml_app: str
    session_id: str | None
    model: str
    error: SpanError | None
    input: IO
    output: IO
    sections: list[Section]
    metrics_text: str  # the span's own metrics (token counts...), "name value · name value"
    tags_text: str
    evaluations: list[Evaluation]
    size: int  # characters of the values shown inline
    inline: bool = True  # False: the fields are fetched when the span is opened, or on the span's page
    seq: int = 0  # its place in the page, for element ids
    children: list[Node] = field(default_factory=list)
    orphan: bool = False  # its parent is not in the trace (yet)
    loop: bool = False  # its parent is below it (a parent loop), so it is shown as a root
    flattened: int = 0  # how many spans nested deeper than MAX_DEPTH are listed as its children
    has_error_below: bool = False
    open: bool = True
    bar_x: float = 0.0
    bar_w: float = 0.0

    @property
    def duration_text(self) -> str:
        return format_ns(self.duration)

    # When it started: on the trace page, after the trace's start (set by load_trace); else the time.
    start_text: str = ""

    @property
    def started(self) -> str:
        return self.start_text or utc(self.start_ns)

    @property
    def url(self) -> str:
        return span_url(self.trace_id, self.span_id)

    @property
    def facts(self) -> str:
        """Its ids, times, model and app in one line (one escaped string: a page has thousands)."""
        parts = [f"span {self.span_id}" + (f" ({self.kind})" if self.kind else "")]
        if self.parent_id is not None:
            parts.append(f"parent {self.parent_id}" + (" (not in this trace)" if self.orphan else
                                                       " (below this span: a parent loop)" if self.loop else ""))
        parts.append(f"started {self.started}, took {self.duration_text}")
        if self.model:
            parts.append(f"model {self.model}")
        if self.ml_app:
            parts.append(f"ML app {self.ml_app}")
        return " · ".join(parts)

    @property
    def error_line(self) -> str:
        if self.error is None:
            return ""
        line = ": ".join(p for p in (self.error.type, self.error.message.split("\n", 1)[0]) if p)
        return line if len(line) <= SUMMARY_CUT else line[:SUMMARY_CUT] + "…"


def session_url(session_id: str) -> str:
    return f"/sessions/{quote(session_id, safe='')}"


def _segment(text: str) -> str:
    return text if text.isascii() and text.isalnum() else quote(text, safe="")


def span_url(trace_id: str, span_id: str) -> str:
    return f"/traces/{_segment(trace_id)}/spans/{_segment(span_id)}"


def node_of(row: Any, metrics: list[dict[str, Any]] | None, *, whole: bool = False) -> Node:
    """A span row (ROW_COLUMNS) as a node, its values ready to show. Called for each of up to 10,000 spans of
    a page, so it does the least it can."""
    _, trace_id, span_id, parent_id, name, kind, ml_app, session_id, status, start_ns, duration, meta, body = row
    if not isinstance(meta, dict):
        meta = {}
    if not isinstance(body, dict):
        body = {}
    evaluations = []
    if metrics:
        for label, e in sorted(evaluation_map(metrics).items()):
            v = e.get("value")
            reasoning = e.get("reasoning")
            evaluations.append(Evaluation(label, str(e.get("eval_metric_type") or ""),
                                          text_value(json_text(v), whole=whole), _short(v),
                                          str(e.get("assessment") or ""),
                                          text_value(reasoning, whole=whole) if reasoning else None))
    inp = io_of(meta.get("input"), whole=whole)
    out = io_of(meta.get("output"), whole=whole)
    sections: list[Section] = []
    size = 0
    for label, io in (("Input", inp), ("Output", out)):
        if io:
            items = io_items(io)
            sections.append((label, items))
            size += sum(len(v.head) + len(v.rest) for _, v in items)
    metadata = meta.get("metadata")
    if metadata is not None and metadata != {}:
        v = text_value(json_text(metadata), whole=whole)
        sections.append(("Metadata", [(None, v)]))
        size += len(v.head) + len(v.rest)
    provider, model = meta.get("model_provider"), meta.get("model_name")
    span_metrics, tags = body.get("metrics"), body.get("tags")
    return Node(
        span_id=span_id, parent_id=parent_id, trace_id=trace_id, name=name, kind=kind or "", status=status,
        start_ns=start_ns, duration=duration or 0.0, ml_app=ml_app or "", session_id=session_id,
        model=" / ".join(m for m in (provider, model) if isinstance(m, str)) if provider or model else "",
        error=error_of(status, meta) if status == "error" else None, input=inp, output=out, sections=sections,
        metrics_text=" · ".join(f"{k} {_short(v)}" for k, v in span_metrics.items())
        if isinstance(span_metrics, dict) else "",
        tags_text="  ".join(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else "",
        evaluations=evaluations, size=size)


def _short(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json_text(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= 40 else text[:40] + "…"


def metrics_for(session: Session, trace_id: str, span_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Evaluation metrics of these spans of this trace (span ids alone are not unique across traces)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    ids = list(span_ids)
    for at in range(0, len(ids), 1000):
        stmt = (select(SpanMetric.span_id, SpanMetric.body)
                .where(SpanMetric.span_id.in_(ids[at:at + 1000]), SpanMetric.trace_id == trace_id)
                .order_by(SpanMetric.pk))
        for span_id, body in session.execute(stmt):
            grouped.setdefault(span_id, []).append(body)
    return grouped


@dataclass
class Trace:
    trace_id: str
    roots: list[Node]
    count: int
    errors: int
    truncated: bool
    start_ns: int
    end_ns: int
    session_ids: list[str]
    steps: list[Node | None] = field(default_factory=list)  # a node opens, None closes the last one opened
    inline_all: bool = True  # every span's fields are in the page
    light: bool = False  # too many spans to carry their fields: each is fetched when its span is opened
    small: bool = True  # opens fully by default

    @property
    def duration_text(self) -> str:
        return format_ns(self.end_ns - self.start_ns)

    @property
    def dom_id(self) -> str:
        """A prefix for the ids of this trace's elements, so that a page may embed several traces."""
        return "t" + hashlib.blake2s(self.trace_id.encode(), digest_size=5).hexdigest()

    @property
    def started(self) -> str:
        return utc(self.start_ns)

    @property
    def root(self) -> Node:
        """The span that began the trace (the earliest without a parent), or else its earliest span."""
        return next((r for r in self.roots if r.parent_id is None), self.roots[0])


# The columns of a span's one-line summary in the tree of a large trace: its JSON (input, output...) is
# not read at all, but for the spans that ended in an error.
SUMMARY_COLUMNS = (Span.pk, Span.trace_id, Span.span_id, Span.parent_id, Span.name, Span.span_kind, Span.ml_app,
                   Span.session_id, Span.status, Span.start_ns, Span.duration)
NO_IO = IO()


def summary_node(row: Any, error_meta: dict[str, Any] | None, metrics: list[dict[str, Any]] | None) -> Node:
    """A span of a large trace: what its summary shows; its fields are fetched when it is opened."""
    _, trace_id, span_id, parent_id, name, kind, ml_app, session_id, status, start_ns, duration = row
    evaluations = []
    if metrics:
        for label, e in sorted(evaluation_map(metrics).items()):
            v = e.get("value")
            evaluations.append(Evaluation(label, str(e.get("eval_metric_type") or ""), Value(""), _short(v),
                                          str(e.get("assessment") or ""), None))
    return Node(
        span_id=span_id, parent_id=parent_id, trace_id=trace_id, name=name, kind=kind or "", status=status,
        start_ns=start_ns, duration=duration or 0.0, ml_app=ml_app or "", session_id=session_id,
        model="", error=error_of(status, error_meta or {}) if status == "error" else None, input=NO_IO, output=NO_IO,
        sections=[], metrics_text="", tags_text="", evaluations=evaluations, size=0, inline=False)


def load_trace(session: Session, trace_id: str, *, open_mode: str = "auto") -> Trace | None:
    count = session.scalar(select(func.count()).select_from(
        select(Span.pk).where(Span.trace_id == trace_id).limit(INLINE_SPANS + 1).subquery()))
    if not count:
        return None
    light = count > INLINE_SPANS
    by_start = (Span.start_ns, Span.pk)
    if light:
        rows = session.execute(select(*SUMMARY_COLUMNS).where(Span.trace_id == trace_id)
                               .order_by(*by_start).limit(MAX_SPANS + 1)).all()
    else:
        rows = session.execute(select(*ROW_COLUMNS).where(Span.trace_id == trace_id)
                               .order_by(*by_start).limit(MAX_SPANS + 1)).all()
    if not rows:  # deleted in between
        return None
    truncated = len(rows) > MAX_SPANS
    rows = rows[:MAX_SPANS]
    metrics = metrics_for(session, trace_id, [r.span_id for r in rows])
    if light:
        errors: dict[str, Any] = dict(session.execute(select(Span.span_id, Span.meta).where(
            Span.trace_id == trace_id, Span.status == "error")).all())
        nodes = [summary_node(r, errors.get(r.span_id), metrics.get(r.span_id)) for r in rows]
    else:
        nodes = [node_of(r, metrics.get(r.span_id)) for r in rows]
    roots = build_tree(nodes)
    start = min(n.start_ns for n in nodes)
    end = max(n.start_ns + n.duration for n in nodes)
    trace = Trace(trace_id, roots, len(nodes), sum(1 for n in nodes if n.status == "error"), truncated, start,
                  int(end), sorted({n.session_id for n in nodes if n.session_id}), light=light)
    total = max(end - start, 1)
    for n in nodes:
        n.bar_x = round((n.start_ns - start) / total * 1000, 1)
        n.bar_w = round(max(n.duration / total * 1000, 3), 1)
        n.start_text = f"+{format_ns(n.start_ns - start)} into the trace"
    trace.small = len(nodes) <= OPEN_ALL_UPTO
    trace.steps = steps_of(roots, open_mode=open_mode, small=trace.small)
    shown = seq = 0
    for step in trace.steps:
        if step is not None:
            seq += 1
            step.seq = seq
            if not light:
                shown += step.size
                step.inline = shown <= BODY_BUDGET
    trace.inline_all = not light and shown <= BODY_BUDGET
    return trace


def build_tree(nodes: list[Node]) -> list[Node]:
    """Nodes (oldest first) → the roots, each holding its children oldest first.

    A span whose parent is not in the trace is a root (marked `orphan`); so is the earliest span of a
    parent cycle, which otherwise no root would reach."""
    by_id = {n.span_id: n for n in nodes}
    roots: list[Node] = []
    for n in nodes:
        parent = by_id.get(n.parent_id) if n.parent_id is not None else None
        if parent is None or parent is n:
            n.orphan = n.parent_id is not None and parent is None
            roots.append(n)
        else:
            parent.children.append(n)
    reached = _walk(roots)
    if len(reached) < len(nodes):
        for n in nodes:  # oldest first: the earliest span of each cycle becomes a root
            if n not in reached:
                parent = by_id[n.parent_id]  # type: ignore[index]
                parent.children.remove(n)
                n.loop = True
                roots.append(n)
                reached |= _walk([n])
        roots.sort(key=lambda r: r.start_ns)
    return roots


def _walk(roots: Iterable[Node]) -> set[Node]:
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(n.children)
    return seen


def steps_of(roots: list[Node], *, open_mode: str, small: bool) -> list[Node | None]:
    """The tree as a flat walk (a node: open it; None: close the last one opened), so that the template
    renders any depth without recursion. Also flattens below MAX_DEPTH and decides which nodes open."""
    # Post-order: does an error sit below each node?
    order: list[tuple[Node, int]] = []
    stack = [(r, 0) for r in reversed(roots)]
    while stack:
        n, depth = stack.pop()
        if depth == MAX_DEPTH and n.children:
            flat, todo = [], list(n.children)
            while todo:
                c = todo.pop()
                flat.append(c)
                todo.extend(c.children)
                c.children = []
            n.flattened = len(flat)
            n.children = sorted(flat, key=lambda c: c.start_ns)
        order.append((n, depth))
        stack.extend((c, depth + 1) for c in reversed(n.children))
    for n, _ in reversed(order):
        n.has_error_below = any(c.status == "error" or c.has_error_below for c in n.children)
    # A span with children opens onto them; a leaf opens onto its fields, so leaves start closed.
    for n, depth in order:
        n.open = bool(n.children) and (open_mode == "all" or (
            open_mode == "auto" and (small or depth < OPEN_DEPTH or n.has_error_below)))
    steps: list[Node | None] = []
    walk: list[Node | None] = [r for r in reversed(roots)]
    while walk:
        step = walk.pop()
        steps.append(step)
        if step is not None and step.children:
            walk.append(None)
            walk.extend(reversed(step.children))
    return steps


@dataclass
class Turn:
    root: Node
    spans: int
    errors: int

    @property
    def trace_url(self) -> str:
        return f"/traces/{quote(self.root.trace_id, safe='')}"


def session_turns(session: Session, session_id: str, cursor: str | None = None) -> tuple[list[Turn], str | None]:
    """A page of the session's traces (each as its root span), oldest first, and the next page's URL."""
    stmt = select(*ROW_COLUMNS).where(Span.session_id == session_id, Span.parent_id.is_(None))
    if cursor:
        start_ns, pk = decode_cursor(cursor, (int, int), "cursor")
        stmt = stmt.where(tuple_(Span.start_ns, Span.pk) > tuple_(start_ns, pk))
    rows = session.execute(stmt.order_by(Span.start_ns, Span.pk).limit(SESSION_PAGE + 1)).all()
    next_url = None
    if len(rows) > SESSION_PAGE:
        last = rows[SESSION_PAGE - 1]
        next_url = f"{session_url(session_id)}?{urlencode({'cursor': encode_cursor(last.start_ns, last.pk)})}"
    rows = rows[:SESSION_PAGE]
    counts: dict[str, tuple[int, int]] = {}
    trace_ids = list({r.trace_id for r in rows})
    if trace_ids:
        stmt = (select(Span.trace_id, func.count(), func.sum(case((Span.status == "error", 1), else_=0)))
                .where(Span.trace_id.in_(trace_ids)).group_by(Span.trace_id))
        counts = {t: (n, int(e or 0)) for t, n, e in session.execute(stmt)}
    turns = [Turn(node_of(r, None), *counts.get(r.trace_id, (1, 0))) for r in rows]
    return turns, next_url


def load_span(session: Session, trace_id: str, span_id: str, *, whole: bool) -> Node | None:
    """One span with its evaluations; `whole`: every value uncut (the span's own page)."""
    row = session.execute(select(*ROW_COLUMNS).where(Span.trace_id == trace_id, Span.span_id == span_id)).first()
    if row is None:
        return None
    return node_of(row, metrics_for(session, trace_id, [span_id]).get(span_id), whole=whole)


def trace_session_ids(session: Session, trace_id: str, limit: int = 100) -> list[str]:
    """Sessions the spans of this trace belong to (a trace is usually in one)."""
    return [s for s in session.execute(select(Span.session_id).where(
        Span.trace_id == trace_id, Span.session_id.is_not(None)).distinct().limit(limit)).scalars() if s is not None]
