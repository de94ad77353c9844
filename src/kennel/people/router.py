"""Kennel's own people API: users (admins only) and key pairs (one's own, or anyone's as an admin).

The same service functions back the people and settings pages, so a page action and its API call
check the same things.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.jsonapi import RawBody, parse_body, respond
from kennel.openapi import json_body
from kennel.people import access
from kennel.people import service as people
from kennel.people.schemas import KeyRequest, UserRequest, UserUpdateRequest
from kennel.people.views import key_resource, new_key_resource, user_resource

router = APIRouter(dependencies=[Depends(require_keys)], tags=["people"])
USERS = "/api/kennel/v1/users"


@router.get(USERS, summary="List people (admins)")
def list_users(session: SessionDep) -> Response:
    return respond({"data": [user_resource(u) for u in people.list_users(session)]})


@router.post(USERS, summary="Add a person (admins)", openapi_extra=json_body(UserRequest))
def create_user(session: SessionDep, raw: RawBody) -> Response:
    attrs = parse_body(UserRequest, raw).data.attributes
    user = people.create_user(session, username=attrs.username, email=attrs.email, role=attrs.role,
                              password=attrs.password)
    return respond({"data": user_resource(user)}, status=201)


@router.patch(USERS + "/{user_id}", summary="Change a person's role, or disable or enable them (admins)",
              openapi_extra=json_body(UserUpdateRequest))
def update_user(user_id: str, session: SessionDep, raw: RawBody) -> Response:
    attrs = parse_body(UserUpdateRequest, raw).data.attributes
    user = people.get_user(session, who=user_id)
    if attrs.role is not None:
        user = people.set_role(session, who=user.id, role=attrs.role)
    if attrs.disabled is True:
        user = people.disable_user(session, who=user.id)
    elif attrs.disabled is False:
        user = people.enable_user(session, who=user.id)
    return respond({"data": user_resource(user)})


@router.get(USERS + "/{user_id}/keys", summary="A person's active key pairs (`me` for your own)")
def list_keys(user_id: str, session: SessionDep, actor: ActorDep) -> Response:
    user, keys = access.list_user_keys(session, actor=actor, user_id=user_id)
    return respond({"data": [key_resource(k, user) for k in keys]})


@router.post(USERS + "/{user_id}/keys", summary="Create a key pair for a person; its keys are shown only here",
             openapi_extra=json_body(KeyRequest))
def create_key(user_id: str, session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    name = parse_body(KeyRequest, raw).data.attributes.name
    user, key = access.create_user_key(session, actor=actor, user_id=user_id, name=name)
    return respond({"data": new_key_resource(key, user)}, status=201)


@router.delete(USERS + "/{user_id}/keys/{key_id}", summary="Revoke one of a person's key pairs")
def revoke_key(user_id: str, key_id: str, session: SessionDep, actor: ActorDep) -> Response:
    key = access.revoke_user_key(session, actor=actor, user_id=user_id, key_id=key_id)
    return respond({"data": key_resource(key, access.key_owner(session, actor=actor, user_id=user_id))})


@router.get("/api/kennel/v1/keys", summary="Key pairs that belong to no person (admins); they act as admins")
def list_unowned_keys(session: SessionDep, actor: ActorDep) -> Response:
    return respond({"data": [key_resource(k, None) for k in access.unowned_keys(session, actor=actor)]})


@router.delete("/api/kennel/v1/keys/{key_id}", summary="Revoke a key pair that belongs to no person (admins)")
def revoke_unowned_key(key_id: str, session: SessionDep, actor: ActorDep) -> Response:
    return respond({"data": key_resource(access.revoke_unowned_key(session, actor=actor, key_id=key_id), None)})
