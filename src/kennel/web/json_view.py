"""Record content as the workspace pages show it: pretty-printed, foldable (nested <details>, no script),
and cut on the server, so that a page's size stays bounded whatever a record holds.

Everything here is data for the templates; Jinja2's autoescaping puts it into the HTML, so content from
records stays text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

# A tree shows at most this many nodes of one value; the rest of a large value is shown as its text.
MAX_NODES = 300
MAX_DEPTH = 12


@dataclass(slots=True)
class Cut:
    """A text cut to `limit` characters: `head` is shown, `rest` is behind "show all" (when `inline`)."""

    head: str
    rest: str = ""
    total: int = 0

    @property
    def cut(self) -> bool:
        return self.total > len(self.head)


def cut(text: str, limit: int, inline_max: int = 0) -> Cut:
    if len(text) <= limit:
        return Cut(text, "", len(text))
    rest = text[limit:inline_max] if len(text) <= inline_max else ""
    return Cut(text[:limit], rest, len(text))


def pretty(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, which orjson does not write
        return json.dumps(value, indent=2, ensure_ascii=False)


def compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def one_line(value: Any, limit: int) -> Cut:
    return cut(value if isinstance(value, str) else compact(value), limit)


@dataclass(slots=True)
class Node:
    """One value of a JSON tree: a container with children, or a scalar as JSON text (cut)."""

    key: str | None
    kind: str                  # "object", "array" or "scalar"
    text: Cut | None = None
    children: list[Node] = field(default_factory=list)
    size: int = 0


def tree(value: Any, *, limit: int, inline_max: int = 0) -> Node:
    budget = [MAX_NODES]

    def build(key: str | None, v: Any, depth: int) -> Node:
        budget[0] -= 1
        if isinstance(v, (dict, list)) and v and depth < MAX_DEPTH and budget[0] > 0:
            items = v.items() if isinstance(v, dict) else enumerate(v)
            node = Node(key, "object" if isinstance(v, dict) else "array", size=len(v))
            node.children = [build(str(k), item, depth + 1) for k, item in items]
            return node
        text = compact(v) if not isinstance(v, (dict, list)) else pretty(v)
        return Node(key, "scalar", cut(text, limit, inline_max))

    return build(None, value, 0)


@dataclass(slots=True)
class JsonError:
    field: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.field}: line {self.line}, column {self.column}: {self.message}"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(field_name: str, text: str, *, empty: Any = None) -> tuple[Any, JsonError | None]:
    """The JSON value of an editor's text, or where it stops being JSON (1-based line and column)."""
    if not text.strip():
        return empty, None
    try:
        # The standard parser: it reports the line and column, and reads integers of any size exactly.
        return json.loads(text, parse_constant=_no_constants), None
    except json.JSONDecodeError as exc:
        return None, JsonError(field_name, exc.lineno, exc.colno, exc.msg)
    except ValueError as exc:  # NaN, Infinity: not JSON, though Python's parser would take them
        name = str(exc).split(" ", 1)[0]
        at = text.find(name)
        line = text.count("\n", 0, at) + 1
        return None, JsonError(field_name, line, at - (text.rfind("\n", 0, at) + 1) + 1, str(exc))
