"""Dataset lifecycle routes: restore, clone, export, file upload, draft lock (issue 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.datasets import lifecycle
from kennel.datasets.lifecycle_schemas import CloneRequest, RestoreRequest
from kennel.datasets.models import Dataset
from kennel.datasets.views import dataset_resource
from kennel.errors import Invalid
from kennel.jsonapi import RawBody, iso, parse_body, respond

router = APIRouter(dependencies=[Depends(require_keys)], tags=["datasets"])

V2 = "/api/v2/llm-obs"
UNSTABLE = "/api/unstable/llm-obs"


def route(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve a path under both prefixes, as datasets/router.py does (`path` starts with /v1 or /v2)."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for prefix in (V2, UNSTABLE):
            router.add_api_route(prefix + path, fn, methods=[method])
        return fn
    return register


def _check_body_id(body_id: str | None, dataset_id: str) -> None:
    if body_id is not None and body_id != dataset_id:
        raise Invalid(f"data.id {body_id!r} does not match the dataset in the path ({dataset_id})", pointer="/data/id")


@route("POST", "/v1/{project_id}/datasets/{dataset_id}/restore")
def restore(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    data = parse_body(RestoreRequest, raw).data
    _check_body_id(data.id, dataset_id)
    dataset = lifecycle.restore_version(session, project_id=project_id, dataset_id=dataset_id,
                                        version=data.attributes.dataset_version, actor=actor)
    # The typed client expects no body; ddtrace-style callers get the dataset with its new version.
    return respond({"data": dataset_resource(dataset, project_id)})


@route("POST", "/v1/{project_id}/datasets/{dataset_id}/clone")
def clone(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    data = parse_body(CloneRequest, raw).data
    _check_body_id(data.id, dataset_id)
    attrs = data.attributes
    dataset = lifecycle.clone_dataset(session, project_id=project_id, dataset_id=dataset_id, name=attrs.name,
                                      description=attrs.description,
                                      description_given="description" in attrs.model_fields_set, actor=actor)
    return respond({"data": dataset_resource(dataset, project_id)})


def _draft_state(dataset: Dataset) -> dict[str, Any]:
    """The typed model requires `drafting_since` and `user.id` even when nobody holds the lock.

    Unlocked, `locked` is false, `user.id` is "" and `drafting_since` is the dataset's last change
    (the draft as it stands dates from then). Locked, `user` is the key pair holding the lock.
    """
    if dataset.draft_holder_id is None:
        attrs = {"locked": False, "drafting_since": iso(dataset.updated_at), "user": {"id": "", "name": ""}}
    else:
        attrs = {"locked": True, "drafting_since": iso(dataset.drafting_since),
                 "user": {"id": dataset.draft_holder_id, "name": dataset.draft_holder_name or ""}}
    return {"data": {"id": dataset.id, "type": "draft_state_data", "attributes": attrs}}


@route("GET", "/v1/{project_id}/datasets/{dataset_id}/draft_state")
def get_draft_state(project_id: str, dataset_id: str, session: SessionDep) -> Response:
    return respond(_draft_state(lifecycle.get_draft_state(session, project_id=project_id, dataset_id=dataset_id)))


@route("PATCH", "/v1/{project_id}/datasets/{dataset_id}/draft_state/lock")
def lock_draft_state(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return respond(_draft_state(lifecycle.lock_draft(session, project_id=project_id, dataset_id=dataset_id,
                                                     actor=actor)))


@route("PATCH", "/v1/{project_id}/datasets/{dataset_id}/draft_state/unlock")
def unlock_draft_state(project_id: str, dataset_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return respond(_draft_state(lifecycle.unlock_draft(session, project_id=project_id, dataset_id=dataset_id,
                                                       actor=actor)))
