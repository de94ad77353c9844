"""Who a browser is, and the checks every page request passes.

A browser signs in with a session cookie only; the API takes key headers only. So a page is never
reached with a key, nor the API with a cookie, and the cookie (SameSite=Lax, HttpOnly) is backed by a
CSRF token on every state-changing request: a hidden form field, or the X-CSRF-Token header htmx sends.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from kennel.auth import SessionDep
from kennel.keys.service import Actor
from kennel.people.roles import Permission
from kennel.people.service import SessionLimits, Signed, resume_session

SESSION_COOKIE = "kennel_session"
# Before sign-in there is no session to bind a CSRF token to: the sign-in form carries a random value
# that must equal this cookie's (a cross-site form cannot read or set it).
LOGIN_CSRF_COOKIE = "kennel_login_csrf"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SignInNeeded(Exception):
    """No live session: pages redirect to the sign-in form (htmx requests are told to)."""


class PageForbidden(Exception):
    def __init__(self, reason: str, person: Person | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # Who was refused, so the page still shows their navigation and menu.
        self.person = person


@dataclass(frozen=True)
class Person:
    actor: Actor
    csrf_token: str

    def may(self, permission: Permission) -> bool:
        return self.actor.may(permission)

    def require(self, permission: Permission, doing: str) -> None:
        if not self.may(permission):
            raise PageForbidden(f"You are signed in as {self.actor.name}, whose role ({self.actor.role}) does not "
                                f"allow {doing}. An admin can change your role.", self)


def session_limits(request: Request) -> SessionLimits:
    settings = request.app.state.settings
    return SessionLimits(idle=timedelta(minutes=settings.session_idle_minutes),
                         absolute=timedelta(hours=settings.session_max_hours))


def signed_in(request: Request, session: Session) -> Signed | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return resume_session(session, token=token, limits=session_limits(request))


async def form_csrf(request: Request) -> str | None:
    if request.headers.get("x-csrf-token"):
        return request.headers["x-csrf-token"]
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded",
                                                           "multipart/form-data")):
        value = (await request.form()).get("csrf_token")
        return value if isinstance(value, str) else None
    return None


CsrfDep = Annotated[str | None, Depends(form_csrf)]


def current_person(request: Request, session: SessionDep, csrf: CsrfDep) -> Person:
    signed = signed_in(request, session)
    if signed is None:
        raise SignInNeeded
    if request.method in STATE_CHANGING and not (csrf and secrets.compare_digest(csrf, signed.csrf_token)):
        raise PageForbidden("This form has expired or did not come from Kennel (its CSRF token is missing or "
                            "wrong). Reload the page and try again.")
    return Person(signed.actor, signed.csrf_token)


PersonDep = Annotated[Person, Depends(current_person)]
