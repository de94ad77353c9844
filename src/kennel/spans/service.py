"""Span storage and queries (filled in by the experiments/spans work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def spans_for_trace(session: Session, *, trace_id: str, cursor: str | None = None,
                    limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    """The spans of one trace as wire dicts (oldest first) and the cursor of the next page, if any.

    Annotation queues show these as the `events` of a `trace` interaction. Until span intake stores
    spans this returns no spans.
    """
    return [], None
