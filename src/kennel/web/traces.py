"""The trace view (/traces/{id}), one span in full (/traces/{id}/spans/{span_id}) and a session as the
transcript of its traces (/sessions/{id}).

A trace is rendered on the server as nested <details>: it opens and closes without any script, under the
CSP. Every value comes from programs and people outside, so it only ever reaches the HTML through Jinja2's
autoescaping. Long values are cut on the server; the rest is one click away (a nested <details>), or, past
INLINE_MAX, on the span's own page. A trace of more than INLINE_SPANS spans is a tree of summaries whose
spans fetch their fields when opened, so a page's cost and size stay bounded whatever the trace holds.

Who may look: whoever may `read` sees every trace and session; an annotator (`review` only) sees a trace
or session that is an interaction of a queue they may see (a trace also through its session), and is
told "not found" for any other, as for one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from kennel.annotations.service import visible_interactions as visible_to
from kennel.auth import SessionDep
from kennel.people.roles import Permission
from kennel.spans.trace_view import Trace, load_span, load_trace, session_turns, session_url, trace_session_ids
from kennel.web.auth import Person, PersonDep

router = APIRouter(include_in_schema=False)


# Who may see what ---------------------------------------------------------------------------------

def visible_interactions(session: Session, person: Person, *, trace_ids: Sequence[str] = (),
                         session_ids: Sequence[str] = ()) -> set[tuple[str, str]]:
    return visible_to(session, person.actor, trace_ids=trace_ids, session_ids=session_ids)


def may_view_trace(session: Session, person: Person, trace: Trace) -> bool:
    if person.may(Permission.READ):
        return True
    if not person.may(Permission.REVIEW):
        return False
    return bool(visible_interactions(session, person, trace_ids=[trace.trace_id], session_ids=trace.session_ids))


def may_view_session(session: Session, person: Person, session_id: str) -> bool:
    if person.may(Permission.READ):
        return True
    return person.may(Permission.REVIEW) and bool(visible_interactions(session, person, session_ids=[session_id]))


def _require_some_access(person: Person, doing: str) -> None:
    if not (person.may(Permission.READ) or person.may(Permission.REVIEW)):
        person.require(Permission.READ, doing)


def _not_found(request: Request, person: Person, heading: str, text: str) -> Response:
    from kennel.web.router import render

    return render(request, "message.html", 404, person=person, heading=heading, text=text,
                  back="/" if person.may(Permission.READ) else "/queues")


def _missing_trace(request: Request, person: Person, trace_id: str) -> Response:
    where = "" if person.may(Permission.READ) else ", or it is not in an annotation queue you review"
    return _not_found(request, person, "Trace not found",
                      f"No spans of trace {trace_id} have arrived{where}.")


# Pages --------------------------------------------------------------------------------------------

@router.get("/traces/{trace_id}")
def trace_page(request: Request, session: SessionDep, person: PersonDep, trace_id: str,
               open_mode: Annotated[str, Query(alias="open")] = "auto") -> Response:
    from kennel.web.router import render

    _require_some_access(person, "reading traces")
    open_mode = open_mode if open_mode in ("auto", "all", "none") else "auto"
    trace = load_trace(session, trace_id, open_mode=open_mode)
    if trace is None or not may_view_trace(session, person, trace):
        return _missing_trace(request, person, trace_id)
    session_ids = trace.session_ids if person.may(Permission.READ) else sorted(
        sid for _, sid in visible_interactions(session, person, session_ids=trace.session_ids))
    sessions = [(sid, session_url(sid)) for sid in session_ids[:5]]
    return render(request, "trace.html", person=person, trace=trace, open_mode=open_mode, sessions=sessions,
                  page_url=f"/traces/{quote(trace_id, safe='')}")


@router.get("/traces/{trace_id}/spans/{span_id:path}")
def span_page(request: Request, session: SessionDep, person: PersonDep, trace_id: str, span_id: str,
              part: str = "") -> Response:
    """One span with every value whole (where "show all" leads for the longest values); `?part=fields`: its
    fields alone, cut as in the trace, for the tree of a large trace to fetch when the span is opened."""
    from kennel.web.router import render

    _require_some_access(person, "reading traces")
    fragment = part == "fields"
    node = load_span(session, trace_id, span_id, whole=not fragment)
    if node is None:
        return _missing_trace(request, person, trace_id)
    if not person.may(Permission.READ) and not visible_interactions(
            session, person, trace_ids=[trace_id], session_ids=trace_session_ids(session, trace_id)):
        return _missing_trace(request, person, trace_id)
    if fragment:
        return render(request, "_span_part.html", n=node)
    return render(request, "span.html", person=person, n=node, trace_url=f"/traces/{quote(trace_id, safe='')}")


@router.get("/sessions/{session_id:path}")
def session_page(request: Request, session: SessionDep, person: PersonDep, session_id: str,
                 cursor: str | None = None) -> Response:
    """A session as a transcript: each trace's root span (its input and output), oldest first."""
    from kennel.web.router import render

    _require_some_access(person, "reading sessions")
    if not may_view_session(session, person, session_id):
        return _not_found(request, person, "Session not found",
                          f"Session {session_id} is not in an annotation queue you review.")
    turns, next_url = session_turns(session, session_id, cursor)
    if not turns and not cursor:
        return _not_found(request, person, "Session not found",
                          f"No trace of session {session_id} has arrived, or none has a root span yet.")
    return render(request, "session.html", person=person, session_id=session_id, turns=turns, next_url=next_url,
                  first_page=not cursor)
