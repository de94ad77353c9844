"""The trace view: a trace's spans as a collapsible tree, each with its input, output, metadata, tags and
evaluation metrics. Rendered on the server into nested <details>, so it works without any script."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from kennel.auth import SessionDep
from kennel.errors import NotFound
from kennel.people.roles import Permission
from kennel.spans.service import spans_for_trace
from kennel.web.auth import PersonDep

router = APIRouter(include_in_schema=False)

# Longer values are cut on the server; the whole value stays one click away.
CUT = 2000
# Spans nested deeper than this are shown at this depth, so a pathological chain cannot exhaust the
# template's recursion.
MAX_DEPTH = 60
MAX_SPANS = 10_000


@dataclass
class Value:
    text: str

    @property
    def cut(self) -> str | None:
        return self.text[:CUT] if len(self.text) > CUT else None


@dataclass
class Node:
    span: dict[str, Any]
    children: list[Node] = field(default_factory=list)

    @property
    def a(self) -> dict[str, Any]:
        return self.span["attributes"]

    @property
    def duration_ms(self) -> str:
        ns = self.a.get("duration") or 0
        if ns < 1e6:
            return f"{ns / 1e3:,.1f} µs"
        return f"{ns / 1e6:,.1f} ms" if ns < 1e10 else f"{ns / 1e9:,.2f} s"

    def show(self, key: str) -> Value | None:
        value = self.a.get(key)
        if value in (None, {}, []):
            return None
        if isinstance(value, dict) and set(value) == {"value"} and isinstance(value["value"], str):
            return Value(value["value"])
        return Value(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())

    @property
    def error(self) -> str | None:
        return self.a.get("status") == "error" and (self.a.get("metadata") or {}).get("error.message") or None


def build_tree(spans: list[dict[str, Any]]) -> list[Node]:
    nodes = {s["id"]: Node(s) for s in spans}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.a.get("parent_id") or "")
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    _flatten_deep(roots, 0)
    return roots


def _flatten_deep(level: list[Node], depth: int) -> None:
    # Iterative, and bounded: below MAX_DEPTH every descendant is listed flat under its ancestor there.
    stack = [(level, depth)]
    while stack:
        nodes, d = stack.pop()
        for node in nodes:
            if d >= MAX_DEPTH and node.children:
                flat, todo = [], list(node.children)
                while todo:
                    child = todo.pop()
                    flat.append(child)
                    todo.extend(child.children)
                    child.children = []
                node.children = sorted(flat, key=lambda n: n.a.get("start_ns") or 0)
            else:
                stack.append((node.children, d + 1))


def trace_spans(session: Any, trace_id: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    cursor = None
    while len(spans) < MAX_SPANS:
        page, cursor = spans_for_trace(session, trace_id=trace_id, cursor=cursor, limit=1000)
        spans.extend(page)
        if not cursor:
            break
    return spans


@router.get("/traces/{trace_id}")
def trace_page(request: Request, session: SessionDep, person: PersonDep, trace_id: str) -> Response:
    from kennel.web.router import render

    person.require(Permission.READ, "reading traces")
    spans = trace_spans(session, trace_id)
    if not spans:
        raise NotFound(f"no spans of trace {trace_id!r} have arrived")
    return render(request, "trace.html", person=person, trace_id=trace_id, roots=build_tree(spans),
                  count=len(spans), errors=sum(1 for s in spans if s["attributes"].get("status") == "error"))
