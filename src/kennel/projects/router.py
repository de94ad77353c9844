from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.jsonapi import (
    RawBody,
    comma_list,
    decode_cursor,
    encode_cursor,
    list_meta,
    no_content,
    page_limit,
    parse_body,
    respond,
)
from kennel.openapi import integer, json_body
from kennel.projects import service
from kennel.projects.schemas import DeleteProjectsRequest, ProjectRequest, ProjectUpdateRequest
from kennel.projects.views import project_resource

router = APIRouter(dependencies=[Depends(require_keys)], tags=["projects"])


@router.post("/api/v2/llm-obs/v1/projects", openapi_extra=json_body(ProjectRequest))
@router.post("/api/unstable/llm-obs/v1/projects", openapi_extra=json_body(ProjectRequest))
def create_project(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(ProjectRequest, raw).data.attributes
    project, _created = service.create_or_get_project(
        session, name=attrs.name, description=attrs.description, author_id=actor.id)
    # 200 whether created or found: ddtrace accepts nothing else, and the typed client takes any 2xx.
    return respond({"data": project_resource(project)})


@router.get("/api/v2/llm-obs/v1/projects")
@router.get("/api/unstable/llm-obs/v1/projects")
def list_projects(
    session: SessionDep,
    filter_id: Annotated[list[str] | None, Query(alias="filter[id]")] = None,
    filter_name: Annotated[str | None, Query(alias="filter[name]")] = None,
    cursor: Annotated[str | None, Query(alias="page[cursor]")] = None,
    limit: Annotated[str | None, Query(alias="page[limit]", json_schema_extra=integer(1, 1000))] = None,
) -> Response:
    size = page_limit(limit, default=100, maximum=1000)
    before = decode_cursor(cursor, (int,))[0] if cursor else None
    ids = comma_list(filter_id)
    rows = service.list_projects(session, ids=ids or None, name=filter_name, before_pk=before, limit=size + 1)
    after = encode_cursor(rows[size - 1].pk) if len(rows) > size else None
    return respond({"data": [project_resource(p) for p in rows[:size]], "meta": list_meta(after)})


@router.patch("/api/v2/llm-obs/v1/projects/{project_id}", openapi_extra=json_body(ProjectUpdateRequest))
@router.patch("/api/unstable/llm-obs/v1/projects/{project_id}", openapi_extra=json_body(ProjectUpdateRequest))
def update_project(project_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(ProjectUpdateRequest, raw).data.attributes
    project = service.update_project(session, project_id=project_id, name=attrs.name,
                                     description=attrs.description, fields=attrs.model_fields_set, actor=actor)
    return respond({"data": project_resource(project)})


@router.post("/api/v2/llm-obs/v1/projects/delete", openapi_extra=json_body(DeleteProjectsRequest))
@router.post("/api/unstable/llm-obs/v1/projects/delete", openapi_extra=json_body(DeleteProjectsRequest))
def delete_projects(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    attrs = parse_body(DeleteProjectsRequest, raw).data.attributes
    service.delete_projects(session, project_ids=attrs.project_ids, actor=actor)
    return no_content()
