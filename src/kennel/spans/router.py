from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from kennel.auth import IntakeActorDep, SessionDep, require_keys
from kennel.errors import Invalid
from kennel.jsonapi import RawBody, page_limit, parse_body, respond, strict_loads
from kennel.openapi import integer, json_body
from kennel.spans import service
from kennel.spans.intake import NUL, ItemError, parse_eval_metrics, parse_span_events
from kennel.spans.query import SpanFilter, Term, parse_query, parse_sort, parse_time
from kennel.spans.schemas import EvalMetricIntakeRequest, SpanIntakeRequest, SpanSearchRequest

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


@router.post("/api/v2/llmobs", openapi_extra=json_body(SpanIntakeRequest))
def span_intake(session: SessionDep, _actor: IntakeActorDep, raw: RawBody) -> Response:
    rows, errors = parse_span_events(_json(raw), check_nul=NUL in raw)
    service.insert_spans(session, rows)
    # Committed by the session dependency before this 202 is sent: acknowledged means durable.
    return _intake_answer(len(rows), errors)


@router.post("/api/intake/llm-obs/v2/eval-metric", openapi_extra=json_body(EvalMetricIntakeRequest))
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


# filter[tag][<key>] names its own parameters, so FastAPI cannot declare it: it is read from the query
# string, and documented as the deepObject that serialises that way.
TAG_FILTER = {"parameters": [{
    "name": "filter[tag]", "in": "query", "required": False, "style": "deepObject", "explode": True,
    "description": "filter[tag][<key>]=<value> keeps spans tagged <key>:<value>",
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}]}


# Query parameters are declared as plain strings and checked here, so that a bad value is a JSON:API
# 400 naming it rather than FastAPI's 422.
@router.get("/api/v2/llm-obs/v1/spans/events", dependencies=[Depends(require_keys)], openapi_extra=TAG_FILTER)
def list_spans(
    request: Request,
    session: SessionDep,
    from_: Annotated[str | None, Query(alias="filter[from]", description="default now-15m")] = None,
    to: Annotated[str | None, Query(alias="filter[to]", description="default now")] = None,
    query: Annotated[str | None, Query(alias="filter[query]",
                                       description="replaces the other filter[...] parameters")] = None,
    trace_id: Annotated[str | None, Query(alias="filter[trace_id]")] = None,
    span_id: Annotated[str | None, Query(alias="filter[span_id]")] = None,
    span_kind: Annotated[str | None, Query(alias="filter[span_kind]")] = None,
    span_name: Annotated[str | None, Query(alias="filter[span_name]")] = None,
    ml_app: Annotated[str | None, Query(alias="filter[ml_app]")] = None,
    limit: Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 5000))] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
    sort: Annotated[str | None, Query()] = None,
) -> Response:
    started = time.perf_counter()
    now_ns = time.time_ns()
    from_ns = parse_time(from_ or "now-15m", name="from", now_ns=now_ns)
    to_ns = parse_time(to or "now", name="to", now_ns=now_ns)
    tags = {key[len("filter[tag]["):-1]: value for key, value in request.query_params.multi_items()
            if key.startswith("filter[tag][") and key.endswith("]")}
    if query:
        # As documented: a query replaces the structured filters.
        terms = parse_query(query)
    else:
        terms = _structured_terms({"trace_id": trace_id, "span_id": span_id, "span_kind": span_kind,
                                   "name": span_name, "ml_app": ml_app}, tags)
    size = page_limit(limit, default=10, maximum=5000)
    return _respond_spans(session, flt=SpanFilter(from_ns, to_ns, terms), sort_raw=sort,
                          cursor=cursor, limit=size, pointer=False, started=started)


@router.post("/api/v2/llm-obs/v1/spans/events/search", dependencies=[Depends(require_keys)],
             openapi_extra=json_body(SpanSearchRequest))
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
