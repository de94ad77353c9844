"""The web app's shell: sign-in, the first admin, projects and their lists, settings and people.

Pages call the same services as the JSON API, inside the same unit of work per request; they hold no
logic of their own beyond turning a form into a service call and a result into HTML.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.datastructures import FormData, MutableHeaders
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kennel.annotations import service as queues
from kennel.auth import SessionDep
from kennel.datasets import service as datasets
from kennel.errors import KennelError
from kennel.experiments import service as experiments
from kennel.jsonapi import decode_cursor, encode_cursor
from kennel.people import service as people
from kennel.people.roles import Permission
from kennel.projects import service as projects
from kennel.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    PageForbidden,
    PersonDep,
    SignInNeeded,
    session_limits,
    signed_in,
)

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGE = 50

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


_VERSION = _static_version()
templates.env.globals["static"] = lambda name: f"/static/{name}?v={_VERSION}"


async def form_data(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(form_data)]


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("person", None)
    context.setdefault("flashes", [])
    return templates.TemplateResponse(request, name, context, status_code=status)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(target: str) -> str:
    # Only paths on this server: `//evil.example` and `https://...` would send the person elsewhere, and so
    # would `/\t/evil.example` wherever it is not percent-encoded (browsers drop tabs and newlines in URLs).
    return target if (target.startswith("/") and not target.startswith("//") and "\\" not in target
                      and not any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in target)) else "/"


def _page_cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    return decode_cursor(raw, (int,), parameter="cursor")[0]


def _next_url(request: Request, rows: list[Any], last_pk: int | None) -> str | None:
    if last_pk is None or len(rows) <= PAGE:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    params["cursor"] = encode_cursor(last_pk)
    return f"{request.url.path}?{urlencode(params)}"


# Sign-in -------------------------------------------------------------------------------------------

def _login_page(request: Request, *, status: int = 200, error: str = "", login: str = "",
                next_url: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", status, error=error, login=login, next=next_url, login_csrf=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/")
    return response


def _login_csrf_ok(request: Request, form: FormData) -> bool:
    cookie, field = request.cookies.get(LOGIN_CSRF_COOKIE, ""), _text(form, "csrf_token")
    return bool(cookie) and secrets.compare_digest(cookie, field)


def _start(request: Request, session: SessionDep, user: Any, target: str) -> Response:
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        people.end_session(session, token=old)
    new = people.start_session(session, user=user)
    response = RedirectResponse(target, status_code=303)
    limits = session_limits(request)
    response.set_cookie(SESSION_COOKIE, new.token, max_age=int(limits.absolute.total_seconds()), httponly=True,
                        samesite="lax", secure=_secure(request), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.get("/login")
def login_form(request: Request, session: SessionDep, next: str = "/") -> Response:
    if signed_in(request, session) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login")
def login(request: Request, session: SessionDep, form: FormDep) -> Response:
    login_name, target = _text(form, "login"), _safe_next(_text(form, "next") or "/")
    if not _login_csrf_ok(request, form):
        return _login_page(request, status=403, login=login_name, next_url=target,
                           error="The sign-in form expired. Please try again.")
    address = request.client.host if request.client else "unknown"
    result = people.check_password(session, login=login_name, password=str(form.get("password") or ""),
                                   address=address)
    if result.user is None:
        response = _login_page(request, status=429 if result.retry_after else 401, login=login_name,
                               next_url=target, error=people.SIGN_IN_FAILED + "." + (
                                   f" Too many attempts: wait {result.retry_after} s." if result.retry_after else ""))
        if result.retry_after:
            response.headers["Retry-After"] = str(result.retry_after)
        return response
    return _start(request, session, result.user, target)


@router.post("/logout")
def logout(request: Request, session: SessionDep, person: PersonDep) -> Response:
    people.end_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/setup/{token}")
def setup_form(request: Request, session: SessionDep, token: str) -> Response:
    if not people.setup_token_valid(session, token=token):
        return render(request, "message.html", 404, heading="This set-up link no longer works",
                      text="An admin exists already (sign in), or the server was restarted and printed a new link.",
                      back="/login")
    login_csrf = secrets.token_urlsafe(24)
    response = render(request, "setup.html", login_csrf=login_csrf, username="", email="")
    response.set_cookie(LOGIN_CSRF_COOKIE, login_csrf, httponly=True, samesite="strict", secure=_secure(request))
    return response


@router.post("/setup/{token}")
def setup(request: Request, session: SessionDep, token: str, form: FormDep) -> Response:
    username, email = _text(form, "username"), _text(form, "email")
    try:
        if not _login_csrf_ok(request, form):
            raise PageForbidden("The form expired. Reload the page and try again.")
        user = people.create_first_admin(session, token=token, username=username, email=email or None,
                                         password=str(form.get("password") or ""))
    except (KennelError, PageForbidden) as exc:
        session.rollback()
        login_csrf = secrets.token_urlsafe(24)
        detail = exc.detail if isinstance(exc, KennelError) else exc.reason
        response = render(request, "setup.html", 400, error=detail, login_csrf=login_csrf, username=username,
                          email=email)
        response.set_cookie(LOGIN_CSRF_COOKIE, login_csrf, httponly=True, samesite="strict", secure=_secure(request))
        return response
    return _start(request, session, user, "/")


# The shell -----------------------------------------------------------------------------------------

@router.get("/")
def home(request: Request, session: SessionDep, person: PersonDep, q: str = "", cursor: str | None = None) -> Response:
    if not person.may(Permission.READ):
        return RedirectResponse("/queues", status_code=303)
    rows = projects.list_projects(session, ids=None, name=None, search=q or None, before_pk=_page_cursor(cursor),
                                  limit=PAGE + 1)
    return render(request, "projects.html", person=person, nav="projects", projects=rows[:PAGE], q=q,
                  next_url=_next_url(request, rows, rows[PAGE - 1].pk if len(rows) > PAGE else None))


TABS = (("datasets", "Datasets"), ("experiments", "Experiments"), ("queues", "Annotation queues"))


@router.get("/projects/{project_id}")
def project_page(request: Request, session: SessionDep, person: PersonDep, project_id: str, tab: str = "datasets",
                 q: str = "", cursor: str | None = None) -> Response:
    person.require(Permission.READ, "reading projects")
    project = projects.get_project(session, project_id=project_id)
    tab = tab if tab in dict(TABS) else "datasets"
    before = _page_cursor(cursor)
    rows: list[Any]
    last_pk = None
    if tab == "datasets":
        rows = datasets.list_datasets(session, project_id=project_id, ids=None, name=None, search=q or None,
                                      before_pk=before, limit=PAGE + 1)
        last_pk = rows[PAGE - 1].pk if len(rows) > PAGE else None
    elif tab == "experiments":
        found = experiments.list_experiments(session, project_id=project_id, dataset_id=None, ids=[], name=None,
                                             experiment=None, metadata=None, parent_ids=[], deleted=False,
                                             before_pk=before, limit=PAGE + 1)
        rows = [_experiment_row(r) for r in found if not q or q.lower() in r[0].name.lower()]
        last_pk = found[PAGE - 1][0].pk if len(found) > PAGE else None
    else:
        rows = [qu for qu, _ in queues.list_queues(session, project_id=project_id, queue_ids=None,
                                                    actor=person.actor)]
    return render(request, "project.html", person=person, nav="projects", project=project, tabs=TABS, tab=tab,
                  q=q, rows=rows[:PAGE], next_url=_next_url(request, rows, last_pk))


def _experiment_row(row: Any) -> dict[str, Any]:
    exp = row[0]
    return {"name": exp.name, "status": exp.status, "dataset_name": row[3], "created_at": exp.created_at}


@router.get("/queues")
def my_queues(request: Request, session: SessionDep, person: PersonDep) -> Response:
    person.require(Permission.REVIEW, "reviewing")
    rows = queues.list_queues(session, project_id=None, queue_ids=None, actor=person.actor)
    names = {p.id: p.name for p in projects.list_projects(session, ids=list({pid for _, pid in rows}), name=None,
                                                          before_pk=None, limit=len(rows) + 1)} if rows else {}
    return render(request, "queues.html", person=person, nav="queues", queues=rows, project_names=names)


# Wiring --------------------------------------------------------------------------------------------

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
       "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """Headers every page gets: pages render user content, and the CSP keeps any that slipped through
    the escaping from running (no inline scripts at all)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", CSP)
                    headers.setdefault("Referrer-Policy", "same-origin")
                    headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, sending)


def install(app: FastAPI) -> None:
    from kennel.web.people import router as people_router
    from kennel.web.traces import router as traces_router

    app.include_router(router)
    app.include_router(people_router)
    app.include_router(traces_router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, _: SignInNeeded) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        return render(request, "message.html", 403, heading="Not allowed", text=exc.reason, person=exc.person)

    api_errors = app.exception_handlers[KennelError]

    @app.exception_handler(KennelError)
    async def _kennel(request: Request, exc: KennelError) -> Response:
        # The API answers JSON:API errors; a page answers a page saying the same.
        if request.url.path.startswith("/api/"):
            answer = api_errors(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        return render(request, "message.html", exc.status, heading=exc.title, text=exc.detail)
