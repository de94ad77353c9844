"""Settings (one's own key pairs) and people (admins): who may act, and with which key pairs.

A new key pair is shown once, on the page that lists its owner's pairs: the keys travel there in a
short-lived cookie scoped to that page, so reloading cannot make another pair or show this one again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from kennel.auth import SessionDep
from kennel.errors import KennelError
from kennel.keys.service import authenticate
from kennel.people import access
from kennel.people import service as people
from kennel.people.roles import ROLES, Permission
from kennel.web.auth import Person, PersonDep
from kennel.web.router import FormDep, _secure, _text, render

router = APIRouter(include_in_schema=False)
# A key pair just created, on its way to the one page that shows it.
NEW_KEY_COOKIE = "kennel_new_key"


def _keys_url(person: Person, user_id: str) -> str:
    return "/settings" if user_id == access.ME or user_id == person.actor.id else f"/admin/people/{user_id}/keys"


def _shown_once(request: Request, session: SessionDep, user_pk: int) -> dict[str, str] | None:
    """The pair just created, from the one-time cookie, if it is a live pair of this user's."""
    api_key, _, app_key = request.cookies.get(NEW_KEY_COOKIE, "").partition(".")
    actor = authenticate(session, api_key=api_key, app_key=app_key, require_app_key=True) if api_key else None
    if actor is None or actor.user_pk is None or actor.user_pk != user_pk:
        return None
    return {"api_key": api_key, "app_key": app_key}


def _keys_page(request: Request, session: SessionDep, person: Person, user_id: str, *, status: int = 200,
               flashes: list[str] | None = None) -> Response:
    user, keys = access.list_user_keys(session, actor=person.actor, user_id=user_id)
    mine = user.pk == person.actor.user_pk
    response = render(request, "settings.html" if mine else "person_keys.html", status, person=person,
                      nav="" if mine else "people", owner=user, keys=keys,
                      new_key=_shown_once(request, session, user.pk), flashes=flashes or [],
                      keys_url=_keys_url(person, user.id))
    if NEW_KEY_COOKIE in request.cookies:
        # Shown once: the keys leave the cookie jar with this page, which no browser or proxy may keep.
        response.delete_cookie(NEW_KEY_COOKIE, path=_keys_url(person, user.id))
        response.headers["Cache-Control"] = "no-store"
    return response


def _create_key(request: Request, session: SessionDep, person: Person, user_id: str, form: Any) -> Response:
    try:
        user, key = access.create_user_key(session, actor=person.actor, user_id=user_id, name=_text(form, "name"))
    except KennelError as exc:
        session.rollback()
        return _keys_page(request, session, person, user_id, status=exc.status, flashes=[exc.detail])
    url = _keys_url(person, user.id)
    # Post/Redirect/Get, so that reloading the page cannot create (and show) another pair.
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(NEW_KEY_COOKIE, f"{key.api_key}.{key.app_key}", max_age=120, httponly=True,
                        samesite="strict", secure=_secure(request), path=url)
    response.headers["Cache-Control"] = "no-store"
    return response


def _revoke_key(session: SessionDep, person: Person, user_id: str, key_id: str) -> Response:
    user = access.key_owner(session, actor=person.actor, user_id=user_id)
    access.revoke_user_key(session, actor=person.actor, user_id=user.id, key_id=key_id)
    return RedirectResponse(_keys_url(person, user.id), status_code=303)


# Settings: my key pairs ----------------------------------------------------------------------------

@router.get("/settings")
def settings_page(request: Request, session: SessionDep, person: PersonDep) -> Response:
    return _keys_page(request, session, person, access.ME)


@router.post("/settings/keys")
def create_my_key(request: Request, session: SessionDep, person: PersonDep, form: FormDep) -> Response:
    return _create_key(request, session, person, access.ME, form)


@router.post("/settings/keys/{key_id}/revoke")
def revoke_my_key(session: SessionDep, person: PersonDep, key_id: str) -> Response:
    return _revoke_key(session, person, access.ME, key_id)


# People (admins) -----------------------------------------------------------------------------------

def _people(request: Request, session: SessionDep, person: Person, *, status: int = 200, error: str = "") -> Response:
    users = people.list_users(session)
    counts = people.key_counts(session)
    return render(request, "people.html", status, person=person, nav="people", users=users, key_counts=counts,
                  unowned=access.unowned_keys(session, actor=person.actor), roles=list(ROLES), error=error)


@router.get("/admin/people")
def people_page(request: Request, session: SessionDep, person: PersonDep) -> Response:
    person.require(Permission.PEOPLE, "managing people")
    return _people(request, session, person)


def _people_change(request: Request, session: SessionDep, person: Person, change: Callable[[], object]) -> Response:
    person.require(Permission.PEOPLE, "managing people")
    try:
        change()
    except KennelError as exc:
        session.rollback()
        return _people(request, session, person, status=exc.status, error=exc.detail)
    return RedirectResponse("/admin/people", status_code=303)


@router.post("/admin/people")
def add_person(request: Request, session: SessionDep, person: PersonDep, form: FormDep) -> Response:
    return _people_change(request, session, person, lambda: people.create_user(
        session, username=_text(form, "username"), email=_text(form, "email") or None, role=_text(form, "role"),
        password=str(form.get("password") or "")))


@router.post("/admin/people/{user_id}/role")
def change_role(request: Request, session: SessionDep, person: PersonDep, user_id: str, form: FormDep) -> Response:
    return _people_change(request, session, person,
                          lambda: people.set_role(session, who=user_id, role=_text(form, "role")))


@router.post("/admin/people/{user_id}/disable")
def disable(request: Request, session: SessionDep, person: PersonDep, user_id: str) -> Response:
    return _people_change(request, session, person, lambda: people.disable_user(session, who=user_id))


@router.post("/admin/people/{user_id}/enable")
def enable(request: Request, session: SessionDep, person: PersonDep, user_id: str) -> Response:
    return _people_change(request, session, person, lambda: people.enable_user(session, who=user_id))


@router.get("/admin/people/{user_id}/keys")
def person_keys(request: Request, session: SessionDep, person: PersonDep, user_id: str) -> Response:
    person.require(Permission.PEOPLE, "managing another person's key pairs")
    return _keys_page(request, session, person, user_id)


@router.post("/admin/people/{user_id}/keys")
def create_person_key(request: Request, session: SessionDep, person: PersonDep, user_id: str,
                      form: FormDep) -> Response:
    person.require(Permission.PEOPLE, "managing another person's key pairs")
    return _create_key(request, session, person, user_id, form)


@router.post("/admin/people/{user_id}/keys/{key_id}/revoke")
def revoke_person_key(session: SessionDep, person: PersonDep, user_id: str, key_id: str) -> Response:
    person.require(Permission.PEOPLE, "managing another person's key pairs")
    return _revoke_key(session, person, user_id, key_id)


@router.post("/admin/keys/{key_id}/revoke")
def revoke_unowned_key(session: SessionDep, person: PersonDep, key_id: str) -> Response:
    person.require(Permission.PEOPLE, "revoking key pairs")
    access.revoke_unowned_key(session, actor=person.actor, key_id=key_id)
    return RedirectResponse("/admin/people", status_code=303)
