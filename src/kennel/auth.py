"""Request authentication: management routes need both keys, intake routes the API key only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from kennel.db.session import get_session
from kennel.errors import Forbidden
from kennel.keys.service import Actor, authenticate

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _check(request: Request, session: Session, require_app_key: bool) -> Actor:
    api_key = request.headers.get("dd-api-key")
    app_key = request.headers.get("dd-application-key")
    actor = authenticate(session, api_key=api_key, app_key=app_key, require_app_key=require_app_key)
    if actor is not None:
        request.state.actor = actor
        return actor
    if not api_key:
        raise Forbidden("missing DD-API-KEY header", header="DD-API-KEY")
    if require_app_key and not app_key:
        raise Forbidden("missing DD-APPLICATION-KEY header; this route needs an API key and an application key",
                        header="DD-APPLICATION-KEY")
    raise Forbidden("invalid or revoked API key / application key pair", header="DD-API-KEY")


def require_keys(request: Request, session: SessionDep) -> Actor:
    return _check(request, session, require_app_key=True)


def require_api_key(request: Request, session: SessionDep) -> Actor:
    return _check(request, session, require_app_key=False)


ActorDep = Annotated[Actor, Depends(require_keys)]
IntakeActorDep = Annotated[Actor, Depends(require_api_key)]
