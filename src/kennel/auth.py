"""Request authentication: management routes need both keys, intake routes the API key only.

The check itself runs in the admission gate (kennel.gate), before the body is read; a route declares
which keys it needs by depending on `require_keys` or `require_api_key`, and receives the actor the
gate found.
"""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from kennel.db.dependency import get_session
from kennel.db.session import unit_of_work
from kennel.errors import Forbidden
from kennel.keys.service import Actor, authenticate

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def check_keys(factory: sessionmaker[Session], headers: dict[str, str], require_app_key: bool) -> Actor:
    """The actor these headers authorise, or Forbidden saying which header is missing or wrong."""
    api_key = headers.get("dd-api-key")
    app_key = headers.get("dd-application-key")
    if api_key:
        with unit_of_work(factory, write=False) as session:
            actor = authenticate(session, api_key=api_key, app_key=app_key, require_app_key=require_app_key)
        if actor is not None:
            return actor
    if not api_key:
        raise Forbidden("missing DD-API-KEY header", header="DD-API-KEY")
    if require_app_key and not app_key:
        raise Forbidden("missing DD-APPLICATION-KEY header; this route needs an API key and an application key",
                        header="DD-APPLICATION-KEY")
    raise Forbidden("invalid or revoked API key / application key pair", header="DD-API-KEY")


def gate_authenticator(factory: sessionmaker[Session]):
    async def authenticate_headers(headers: dict[str, str], require_app_key: bool) -> Actor:
        return await to_thread.run_sync(check_keys, factory, headers, require_app_key)
    return authenticate_headers


def _actor(request: Request) -> Actor:
    actor = getattr(request.state, "actor", None)
    if actor is None:  # pragma: no cover - the gate runs before every route that depends on this
        raise Forbidden("request was not authenticated", header="DD-API-KEY")
    return actor


def require_keys(request: Request) -> Actor:
    return _actor(request)


def require_api_key(request: Request) -> Actor:
    return _actor(request)


ActorDep = Annotated[Actor, Depends(require_keys)]
IntakeActorDep = Annotated[Actor, Depends(require_api_key)]
