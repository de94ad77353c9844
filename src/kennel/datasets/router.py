from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.datasets import records, service
from kennel.datasets.schemas import (
    AppendRequest,
    BatchUpdateRequest,
    DatasetRequest,
    DatasetUpdateRequest,
    DeleteDatasetsRequest,
    DeleteRecordsRequest,
    UpdateRecordsRequest,
)
from kennel.datasets.views import dataset_resource, mutation_items, record_rows, version_resource
from kennel.errors import JSONAPI, Invalid
from kennel.ids import require_unique_ids
from kennel.jsonapi import (
    RawBody,
    comma_list,
    decode_cursor,
    dual_route,
    dumps,
    encode_cursor,
    int_param,
    list_meta,
    no_content,
    page_limit,
    parse_body,
    respond,
)
from kennel.openapi import integer, json_body

router = APIRouter(dependencies=[Depends(require_keys)], tags=["datasets"])

UNSTABLE = "/api/unstable/llm-obs/v1"


def route(method: str, path: str,
          body: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return dual_route(router, method, "/v1" + path, body=body)


@route("POST", "/{project_id}/datasets", DatasetRequest)
def create_dataset(project_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(DatasetRequest, raw).data.attributes
    dataset, _ = service.create_or_get_dataset(session, project_id=project_id, name=attrs.name,
                                               description=attrs.description, metadata=attrs.metadata, actor=actor)
    return respond({"data": dataset_resource(dataset, project_id)})


@route("GET", "/{project_id}/datasets")
def list_datasets(
    project_id: str,
    session: SessionDep,
    filter_name: Annotated[str | None, Query(alias="filter[name]")] = None,
    filter_id: Annotated[list[str] | None, Query(alias="filter[id]")] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
    limit: Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 1000))] = None,
) -> Response:
    size = page_limit(limit, default=100, maximum=1000)
    before = decode_cursor(cursor, (int,))[0] if cursor else None
    rows = service.list_datasets(session, project_id=project_id, ids=comma_list(filter_id) or None, name=filter_name,
                                 before_pk=before, limit=size + 1)
    after = encode_cursor(rows[size - 1].pk) if len(rows) > size else None
    return respond({"data": [dataset_resource(d, project_id) for d in rows[:size]], "meta": list_meta(after)})


@route("PATCH", "/{project_id}/datasets/{dataset_id}", DatasetUpdateRequest)
def update_dataset(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(DatasetUpdateRequest, raw).data.attributes
    changes = {name: getattr(attrs, name) for name in attrs.model_fields_set}
    dataset = service.update_dataset(session, project_id=project_id, dataset_id=dataset_id, changes=changes,
                                     actor=actor)
    return respond({"data": dataset_resource(dataset, project_id)})


@route("POST", "/{project_id}/datasets/delete", DeleteDatasetsRequest)
def delete_datasets(project_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(DeleteDatasetsRequest, raw).data.attributes
    service.delete_datasets(session, dataset_ids=attrs.dataset_ids, project_id=project_id, actor=actor)
    return no_content()


@router.post(UNSTABLE + "/datasets/delete", openapi_extra=json_body(DeleteDatasetsRequest))
def delete_datasets_unstable(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """ddtrace's delete: no project in the path, and 200 with the deleted datasets."""
    attrs = parse_body(DeleteDatasetsRequest, raw).data.attributes
    deleted = service.delete_datasets(session, dataset_ids=attrs.dataset_ids, project_id=None, actor=actor)
    return respond({"data": [dataset_resource(d, service.project_id_of(session, d)) for d in deleted]})


@route("GET", "/{project_id}/datasets/{dataset_id}/versions")
def list_versions(project_id: str, dataset_id: str, session: SessionDep) -> Response:
    dataset, versions = service.list_versions(session, project_id=project_id, dataset_id=dataset_id)
    return respond({"data": [version_resource(v, dataset.id) for v in versions], "meta": list_meta(None)})


@route("GET", "/{project_id}/datasets/{dataset_id}/records")
def list_records(
    project_id: str,
    dataset_id: str,
    session: SessionDep,
    filter_version: Annotated[str | None, Query(alias="filter[version]", json_schema_extra=integer(0))] = None,
    filter_tags: Annotated[list[str] | None, Query(alias="filter[tags]")] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
    limit: Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 10000))] = None,
) -> Response:
    size = page_limit(limit, default=1000, maximum=10000)
    position = None
    if cursor:
        seq, version = decode_cursor(cursor, (int, int))
        position = (seq, version)
    dataset, rows, next_position = records.list_records(
        session, project_id=project_id, dataset_id=dataset_id,
        version=int_param(filter_version, "filter[version]"), tags=[t for t in filter_tags or [] if t],
        cursor=position, limit=size)
    after = encode_cursor(*next_position) if next_position else None
    return respond({"data": record_rows(dataset.id, rows), "meta": list_meta(after)})


# Answers this long are sent in slices after the commit instead of as one rendered body: a large append's
# answer is as big as its request, and holding both at once is what bounds the server's memory per request.
STREAM_AT = 2_000
_SLICE = 1_000


def _mutation_response(dataset_id: str, result: records.ChangeResult) -> Response:
    """The answer to a record change, rendered once the store has returned; a long one is streamed."""
    if len(result.records) < STREAM_AT:
        return Response(dumps({"data": mutation_items(dataset_id, result.records, result.version)}),
                        media_type=JSONAPI)
    return StreamingResponse(_slices(dataset_id, result), media_type=JSONAPI)


def _slices(dataset_id: str, result: records.ChangeResult) -> Iterator[bytes]:
    states, version = result.records, result.version
    yield b'{"data":['
    for start in range(0, len(states), _SLICE):
        items = dumps(mutation_items(dataset_id, states[start:start + _SLICE], version))
        # Each slice is a JSON array; its brackets go, and a comma joins it to the one before.
        yield (b"," if start else b"") + items[1:-1]
    yield b"]}"


@route("POST", "/{project_id}/datasets/{dataset_id}/records", AppendRequest)
def append_records(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(AppendRequest, raw).data.attributes
    if not attrs.records:
        raise Invalid("records must contain at least one record", pointer="/data/attributes/records")
    _, result = records.change_records(
        session, project_id=project_id, dataset_id=dataset_id, actor=actor, inserts=attrs.records,
        deduplicate=attrs.deduplicate, common_tags=attrs.tags, pointers=("/data/attributes/records",) * 3)
    return _mutation_response(dataset_id, result)


@route("PATCH", "/{project_id}/datasets/{dataset_id}/records", UpdateRecordsRequest)
def update_records(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(UpdateRecordsRequest, raw).data.attributes
    if not attrs.records:
        raise Invalid("records must contain at least one record", pointer="/data/attributes/records")
    _, result = records.change_records(
        session, project_id=project_id, dataset_id=dataset_id, actor=actor, updates=attrs.records,
        pointers=("/data/attributes/records",) * 3)
    return _mutation_response(dataset_id, result)


@route("POST", "/{project_id}/datasets/{dataset_id}/records/delete", DeleteRecordsRequest)
def delete_records(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(DeleteRecordsRequest, raw).data.attributes
    require_unique_ids(attrs.record_ids, pointer="/data/attributes/record_ids", what="record")
    records.change_records(session, project_id=project_id, dataset_id=dataset_id, actor=actor,
                           deletes=attrs.record_ids, report_content=False,
                           pointers=("/data/attributes/record_ids",) * 3)
    return no_content()


@route("POST", "/{project_id}/datasets/{dataset_id}/batch_update", BatchUpdateRequest)
def batch_update(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    body = parse_body(BatchUpdateRequest, raw).data
    if body.id != dataset_id:
        raise Invalid(f"data.id {body.id!r} does not match the dataset in the path ({dataset_id})",
                      pointer="/data/id")
    attrs = body.attributes
    _, result = records.change_records(
        session, project_id=project_id, dataset_id=dataset_id, actor=actor,
        inserts=attrs.insert_records or [], updates=attrs.update_records or [], deletes=attrs.delete_records or [],
        create_new_version=attrs.create_new_version, deduplicate=attrs.deduplicate, common_tags=attrs.tags)
    return _mutation_response(dataset_id, result)
