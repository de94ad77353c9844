"""The records filter: a small subset of Datadog's search syntax, turned into one SQL condition.

    @input.country:France          a JSON path in input, expected_output or metadata equals a value
    @metadata.difficulty:"very hard"   values with spaces are quoted ("..." with \\" and \\\\ escapes)
    @expected_output:42            the whole field (a number, true, false or null also matches its JSON)
    tag:lang:fr                    the record has this tag (everything after `tag:` is the tag)
    id:rec-17                      the record id
    -@metadata.reviewed:true       a leading `-` negates a term

Terms separated by spaces must all hold. A term that does not parse is a 400 naming its position (the
1-based character where it starts). The condition is applied while the page's index walk runs, so a page
costs about (page size / share of records that match) rows read; see README "The dataset workspace".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    Text,
    and_,
    cast,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from kennel.datasets.models import DatasetRecord
from kennel.errors import Invalid

R = DatasetRecord.__table__.c
FIELDS = {"input": R.input, "expected_output": R.expected_output, "metadata": R.metadata}
MAX_TERMS = 20
_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_LITERALS = {"true", "false", "null"}
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Term:
    kind: str               # "field", "tag" or "id"
    value: str
    negated: bool = False
    field: str = ""
    path: tuple[str, ...] = ()


def _error(text: str, position: int, why: str) -> Invalid:
    return Invalid(f"filter does not parse at position {position + 1}: {why} (filter: {text!r})",
                   parameter="filter", meta={"position": position + 1})


def _value(text: str, start: int) -> tuple[str, int]:
    """The value starting at `start` (quoted or bare) and the index just past it."""
    if start < len(text) and text[start] == '"':
        out, i = [], start + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                return "".join(out), i + 1
            out.append(ch)
            i += 1
        raise _error(text, start, "a quoted value is not closed")
    end = start
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end], end


def parse(text: str) -> list[Term]:
    terms: list[Term] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-"
        if negated:
            i += 1
        if text.startswith("@", i):
            word_end = next((j for j in range(i, len(text)) if text[j].isspace()), len(text))
            colon = text.find(":", i, word_end)
            if colon < 0:
                raise _error(text, start, "a field term needs `:value` (e.g. @input.country:France)")
            parts = text[i + 1:colon].split(".")
            if parts[0] not in FIELDS:
                raise _error(text, i + 1, f"unknown field {parts[0]!r}; use @input, @expected_output or @metadata")
            at = i + 1 + len(parts[0]) + 1
            for part in parts[1:]:
                if not _KEY.fullmatch(part):
                    raise _error(text, at, f"path part {part!r} is not a key (letters, digits, _ and -)")
                at += len(part) + 1
            value, i = _value(text, colon + 1)
            terms.append(Term("field", value, negated, parts[0], tuple(parts[1:])))
        elif text.startswith(("tag:", "id:"), i):
            kind, _, _ = text[i:].partition(":")
            value, i = _value(text, i + len(kind) + 1)
            if not value:
                raise _error(text, start, f"`{kind}:` needs a value")
            terms.append(Term(kind, value, negated))
        else:
            raise _error(text, start, "a term is @field.path:value, tag:value or id:value")
        if i < len(text) and not text[i].isspace():
            raise _error(text, i, "expected a space between terms")
        if len(terms) > MAX_TERMS:
            raise _error(text, start, f"at most {MAX_TERMS} terms")
    return terms


def _json_forms(value: str) -> list[str]:
    """The JSON texts a value matches: the string itself, and the literal when it reads as one."""
    forms = [orjson.dumps(value).decode()]
    if value in _LITERALS or _NUMBER.fullmatch(value):
        forms.append(value)
    return forms


def _field_text(session: Session, term: Term) -> Any:
    """The JSON text at the term's path (NULL where there is none), the same on both databases."""
    column = FIELDS[term.field]
    if session.get_bind().dialect.name == "postgresql":
        if not term.path:
            return cast(column, Text)
        return cast(column.op("#>")(postgresql.array(list(term.path))), Text)
    path = "$" + "".join(f"[{p}]" if p.isdigit() else f'."{p}"' for p in term.path)
    # `->` gives the JSON text of the value (a string keeps its quotes), as PostgreSQL's cast does.
    return column.op("->")(path)


def _tag_condition(session: Session, tag: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return R.tags.op("?")(tag)
    each = func.json_each(R.tags).table_valued("value")
    return exists(select(literal_column("1")).select_from(each).where(each.c.value == tag))


def condition(session: Session, terms: list[Term]) -> Any:
    """One SQL condition for all the terms (true when there are none)."""
    parts = []
    for term in terms:
        if term.kind == "id":
            cond: Any = R.record_id == term.value
        elif term.kind == "tag":
            cond = _tag_condition(session, term.value)
        else:
            forms = _json_forms(term.value)
            text = _field_text(session, term)
            cond = or_(*(text == f for f in forms))
            if term.negated:
                # A record without the path does not hold the value either.
                cond = or_(text.is_(None), not_(cond))
                parts.append(cond)
                continue
        parts.append(not_(cond) if term.negated else cond)
    return and_(true(), *parts)
