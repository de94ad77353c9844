from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.errors import JSONAPI, Invalid
from kennel.experiments import events, service
from kennel.experiments.models import Experiment
from kennel.experiments.schemas import (
    DeleteExperimentsRequest,
    EventsRequest,
    ExperimentRequest,
    ExperimentUpdateRequest,
)
from kennel.experiments.views import experiment_resource, join_json
from kennel.jsonapi import (
    RawBody,
    bool_param,
    check_storable,
    comma_list,
    decode_cursor,
    dumps,
    encode_cursor,
    list_meta,
    no_content,
    page_limit,
    parse_body,
    respond,
)
from kennel.openapi import BOOLEAN, integer, json_body

router = APIRouter(dependencies=[Depends(require_keys)], tags=["experiments"])

V1 = "/api/v2/llm-obs/v1/experiments"
UNSTABLE = "/api/unstable/llm-obs/v1/experiments"


def _one(session, exp: Experiment) -> Response:
    project_id, dataset_id = service.wire_ids(session, exp)
    return respond({"data": experiment_resource(exp, project_id=project_id, dataset_id=dataset_id)})


@router.post(V1, openapi_extra=json_body(ExperimentRequest))
@router.post(UNSTABLE, openapi_extra=json_body(ExperimentRequest))
def create_experiment(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(ExperimentRequest, raw).data.attributes
    exp = service.create_experiment(session, attrs=attrs, author_id=actor.id)
    # 200, not 201: ddtrace accepts nothing else.
    return _one(session, exp)


def _split(values: list[str]) -> list[str]:
    return comma_list(values)


# Query parameters are declared as plain strings and checked here, so that a bad value is a JSON:API
# 400 naming it rather than FastAPI's 422.
@router.get(V1)
@router.get(UNSTABLE)
def list_experiments(
    session: SessionDep,
    raw_limit: Annotated[str | None, Query(alias="page[limit]", description="values above 5000 are clamped",
                                           json_schema_extra=integer(1))] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
    project_id: Annotated[str | None, Query(alias="filter[project_id]")] = None,
    dataset_id: Annotated[str | None, Query(alias="filter[dataset_id]")] = None,
    ids: Annotated[list[str] | None, Query(alias="filter[id]", description="repeated or comma-separated")] = None,
    name: Annotated[str | None, Query(alias="filter[name]")] = None,
    experiment: Annotated[str | None, Query(alias="filter[experiment]")] = None,
    raw_meta: Annotated[str | None, Query(alias="filter[metadata]", description="a JSON object")] = None,
    parent_ids: Annotated[list[str] | None, Query(alias="filter[parent_experiment_id]",
                                                  description="repeated or comma-separated")] = None,
    is_deleted: Annotated[str | None, Query(alias="filter[is_deleted]", json_schema_extra=BOOLEAN)] = None,
    dataset_names: Annotated[str | None, Query(alias="include[dataset_names]", json_schema_extra=BOOLEAN)] = None,
) -> Response:
    size = page_limit(raw_limit, default=100, maximum=5000, clamp=True)  # documented: more is clamped
    before = decode_cursor(cursor, (int,))[0] if cursor else None
    metadata = None
    if raw_meta:
        try:
            metadata = orjson.loads(raw_meta)
        except orjson.JSONDecodeError:
            metadata = None
        if not isinstance(metadata, dict):
            raise Invalid("filter[metadata] must be a JSON object, e.g. {\"tags\":[\"team:ml\"]}",
                          parameter="filter[metadata]")
        # PostgreSQL is handed it as JSON; nothing nested deeper is stored to match anyway.
        check_storable(metadata, parameter="filter[metadata]")
    with_names = bool_param(dataset_names, "include[dataset_names]", False)
    rows = service.list_experiments(
        session, project_id=project_id or None, dataset_id=dataset_id or None, ids=_split(ids or []),
        name=name or None, experiment=experiment or None, metadata=metadata, parent_ids=_split(parent_ids or []),
        deleted=bool_param(is_deleted, "filter[is_deleted]", False), before_pk=before, limit=size + 1)
    after = encode_cursor(rows[size - 1][0].pk) if len(rows) > size else None
    data = [experiment_resource(e, project_id=pid, dataset_id=did, dataset_name=dname, with_dataset_name=with_names)
            for e, pid, did, dname in rows[:size]]
    return respond({"data": data, "meta": list_meta(after)})


@router.patch(V1 + "/{experiment_id}", openapi_extra=json_body(ExperimentUpdateRequest))
@router.patch(UNSTABLE + "/{experiment_id}", openapi_extra=json_body(ExperimentUpdateRequest))
def update_experiment(experiment_id: str, session: SessionDep, raw: RawBody) -> Response:
    attrs = parse_body(ExperimentUpdateRequest, raw).data.attributes
    exp = service.update_experiment(session, experiment_id=experiment_id, attrs=attrs)
    return _one(session, exp)


@router.post(V1 + "/delete", openapi_extra=json_body(DeleteExperimentsRequest))
@router.post(UNSTABLE + "/delete", openapi_extra=json_body(DeleteExperimentsRequest))
def delete_experiments(session: SessionDep, raw: RawBody) -> Response:
    attrs = parse_body(DeleteExperimentsRequest, raw).data.attributes
    service.delete_experiments(session, experiment_ids=attrs.experiment_ids)
    return no_content()


@router.post(V1 + "/{experiment_id}/events", openapi_extra=json_body(EventsRequest))
@router.post(UNSTABLE + "/{experiment_id}/events", openapi_extra=json_body(EventsRequest))
def push_events(experiment_id: str, session: SessionDep, raw: RawBody) -> Response:
    exp = service.get_experiment(session, experiment_id=experiment_id)
    attrs = parse_body(EventsRequest, raw).data.attributes
    events.push_events(session, exp=exp, metrics=attrs.metrics, spans=attrs.spans)
    return Response(status_code=202)


def _events_document(session, exp: Experiment, spans: list[bytes], after: str | None = None) -> Response:
    # Assembled from JSON fragments (see events.py): the spans are already serialised.
    head = dumps({"id": exp.id, "type": "experiment_events"})[:-1]
    doc = b"".join((b'{"data":', head, b',"attributes":{"spans":', join_json(spans), b',"summary_metrics":',
                    dumps(events.summary_metrics(session, exp)), b'}},"meta":', dumps(list_meta(after)), b"}"))
    return Response(doc, media_type=JSONAPI)


@router.get(V1 + "/{experiment_id}/events")
def list_events_v1(experiment_id: str, session: SessionDep) -> Response:
    exp = service.get_experiment(session, experiment_id=experiment_id)
    items = [b'{"id":' + dumps(span_id) + b',"type":"experiments","attributes":' + span + b"}"
             for span_id, span in events.all_spans(session, exp)]
    return Response(b'{"data":' + join_json(items) + b"}", media_type=JSONAPI)


@router.get("/api/v2/llm-obs/v2/experiments/{experiment_id}/events")
@router.get(UNSTABLE + "/{experiment_id}/events")
def list_events_full(
    experiment_id: str,
    session: SessionDep,
    _eval_metrics: Annotated[str | None, Query(alias="include[eval_metrics]",
                                               description="ignored: evaluation metrics are always included")] = None,
) -> Response:
    # ddtrace's pull reads everything in one response; `include[eval_metrics]` is always honoured.
    exp = service.get_experiment(session, experiment_id=experiment_id)
    return _events_document(session, exp, [span for _, span in events.all_spans(session, exp)])


@router.get("/api/v2/llm-obs/v3/experiments/{experiment_id}/events")
def list_events_v3(
    experiment_id: str,
    session: SessionDep,
    limit: Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 10000))] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
) -> Response:
    exp = service.get_experiment(session, experiment_id=experiment_id)
    size = page_limit(limit, default=5000, maximum=10000)
    spans, after = events.span_page(session, exp, cursor=cursor or None, limit=size)
    return _events_document(session, exp, spans, after)


@router.get(UNSTABLE + "/events")
def events_by_name(
    session: SessionDep,
    project_name: Annotated[str | None, Query(alias="filter[project_name]", description="required")] = None,
    name: Annotated[str | None, Query(alias="filter[experiment_name]", description="required")] = None,
) -> Response:
    if not project_name or not name:
        missing = "filter[project_name]" if not project_name else "filter[experiment_name]"
        raise Invalid(f"{missing} is required (or use /experiments/{{id}}/events)", parameter=missing)
    exp = service.get_experiment_by_name(session, project_name=project_name, name=name)
    return _events_document(session, exp, [span for _, span in events.all_spans(session, exp)])
