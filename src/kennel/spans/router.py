from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from kennel.auth import IntakeActorDep, SessionDep, require_keys
from kennel.errors import Invalid
from kennel.jsonapi import RawBody, page_limit, parse_body, respond, strict_loads
from kennel.spans import service
from kennel.spans.intake import NUL, ItemError, parse_eval_metrics, parse_span_events
from kennel.spans.query import SpanFilter, Term, parse_query, parse_sort, parse_time
from kennel.spans.schemas import SpanSearchRequest

router = APIRouter(tags=["spans"])


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise Invalid("request body is empty; expected JSON", pointer="")
    return strict_loads(raw)


def _intake_answer(accepted: int, errors: list[dict[str, Any]]) -> Response:
    if errors and not accepted:
        first = errors[0]
        raise Invalid(first["detail"], pointer=first["source"]["pointer"], errors=errors[1:])
    meta: dict[str, Any] = {"accepted": accepted, "rejected": len(errors)}
    if errors:
        meta["errors"] = errors
    return respond({"meta": meta}, status=202)


@router.post("/api/v2/llmobs")
def span_intake(session: SessionDep, _actor: IntakeActorDep, raw: RawBody) -> Response:
    rows, errors = parse_span_events(_json(raw), check_nul=NUL in raw)
    service.insert_spans(session, rows)
    # Committed by the session dependency before this 202 is sent: acknowledged means durable.
    return _intake_answer(len(rows), errors)


@router.post("/api/intake/llm-obs/v2/eval-metric")
def eval_metric_intake(session: SessionDep, _actor: IntakeActorDep, raw: RawBody) -> Response:
    try:
        rows, errors = parse_eval_metrics(_json(raw), check_nul=NUL in raw)
    except ItemError as exc:
        raise Invalid(exc.detail, pointer=exc.pointer) from None
    service.insert_metrics(session, rows)
    return _intake_answer(len(rows), errors)


def _structured_terms(values: dict[str, str | None], tags: dict[str, str]) -> list[Term]:
    terms = [Term(column, value) for column, value in values.items() if value]
    terms.extend(Term(None, f"{k}:{v}") for k, v in tags.items())
    return terms


def _respond_spans(session, *, flt: SpanFilter, sort_raw: str | None, cursor: str | None, limit: int,
                   pointer: bool, started: float) -> Response:
    sort, descending = parse_sort(sort_raw, pointer=pointer)
    data, after = service.search_spans(session, flt=flt, sort=sort, descending=descending, cursor=cursor,
                                       limit=limit, cursor_param="/data/attributes/page/cursor" if pointer
                                       else "page[cursor]")
    page: dict[str, Any] = {"after": after} if after else {}
    return respond({"data": data, "meta": {"elapsed": service.elapsed_ms(started), "page": page,
                                           "request_id": str(uuid.uuid4()), "status": "done"}})


@router.get("/api/v2/llm-obs/v1/spans/events", dependencies=[Depends(require_keys)])
def list_spans(request: Request, session: SessionDep) -> Response:
    started = time.perf_counter()
    q = request.query_params
    now_ns = time.time_ns()
    from_ns = parse_time(q.get("filter[from]") or "now-15m", name="from", now_ns=now_ns)
    to_ns = parse_time(q.get("filter[to]") or "now", name="to", now_ns=now_ns)
    tags = {key[len("filter[tag]["):-1]: value for key, value in q.multi_items()
            if key.startswith("filter[tag][") and key.endswith("]")}
    query = q.get("filter[query]")
    if query:
        # As documented: a query replaces the structured filters.
        terms = parse_query(query)
    else:
        terms = _structured_terms({"trace_id": q.get("filter[trace_id]"), "span_id": q.get("filter[span_id]"),
                                   "span_kind": q.get("filter[span_kind]"), "name": q.get("filter[span_name]"),
                                   "ml_app": q.get("filter[ml_app]")}, tags)
    limit = page_limit(q.get("page[limit]"), default=10, maximum=5000)
    return _respond_spans(session, flt=SpanFilter(from_ns, to_ns, terms), sort_raw=q.get("sort"),
                          cursor=q.get("page[cursor]"), limit=limit, pointer=False, started=started)


@router.post("/api/v2/llm-obs/v1/spans/events/search", dependencies=[Depends(require_keys)])
def search_spans(session: SessionDep, raw: RawBody) -> Response:
    started = time.perf_counter()
    attrs = parse_body(SpanSearchRequest, raw).data.attributes
    flt_in = attrs.filter
    offset_ns = (attrs.options.time_offset or 0) * 1_000_000_000 if attrs.options else 0
    now_ns = time.time_ns()
    from_ns = parse_time((flt_in and flt_in.from_) or "now-15m", name="from", pointer=True, now_ns=now_ns)
    to_ns = parse_time((flt_in and flt_in.to) or "now", name="to", pointer=True, now_ns=now_ns)
    if flt_in and flt_in.query:
        terms = parse_query(flt_in.query, pointer=True)
    elif flt_in:
        terms = _structured_terms({"trace_id": flt_in.trace_id, "span_id": flt_in.span_id,
                                   "span_kind": flt_in.span_kind, "name": flt_in.span_name,
                                   "ml_app": flt_in.ml_app}, flt_in.tags or {})
    else:
        terms = []
    limit = (attrs.page.limit if attrs.page and attrs.page.limit else 10)
    cursor = attrs.page.cursor if attrs.page else None
    return _respond_spans(session, flt=SpanFilter(from_ns + offset_ns, to_ns + offset_ns, terms),
                          sort_raw=attrs.sort, cursor=cursor, limit=limit, pointer=True, started=started)
