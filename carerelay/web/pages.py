"""The minimal web entry: sign in, see who you are, sign out. The full client grows from here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from carerelay.auth import service as auth
from carerelay.auth.api import set_session_cookie
from carerelay.auth.deps import SESSION_COOKIE, ClockDep, DbSession, SettingsDep, client_ip, public, signed_in
from carerelay.core.actor import Actor
from carerelay.core.errors import TooManyAttempts, Unauthenticated
from carerelay.directory import service as directory

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, actor: Actor = public()) -> Response:
    target = "/home" if request.cookies.get(SESSION_COOKIE) else "/sign-in"
    return RedirectResponse(target, status_code=303)


def _sso_links(request: Request) -> list[dict[str, str]]:
    providers = getattr(request.app.state, "sso_providers", {}) or {}
    return [{"label": p.label, "href": f"/sso/{p.kind}/{p.name}/login"} for p in providers.values()]


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, settings: SettingsDep, actor: Actor = public()) -> Response:
    return templates.TemplateResponse(request, "sign_in.html", {"org": settings.organization_name, "error": None,
                                                                "sso": _sso_links(request)})


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in_form(
    request: Request,
    db_session: DbSession,
    clock: ClockDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=120)],
    password: Annotated[str, Form(max_length=200)],
    totp_code: Annotated[str | None, Form(max_length=6)] = None,
    actor: Actor = public(),
) -> Response:
    try:
        result = auth.sign_in(session=db_session, clock=clock, settings=settings, username=username,
                              password=password, totp_code=totp_code or None, kind="web", ip=client_ip(request),
                              user_agent=request.headers.get("user-agent"))
    except (Unauthenticated, TooManyAttempts) as exc:
        # The failure was recorded; keep it (the unit of work commits on a normal return).
        return templates.TemplateResponse(request, "sign_in.html",
                                          {"org": settings.organization_name, "error": exc.message,
                                           "sso": _sso_links(request)},
                                          status_code=401 if isinstance(exc, Unauthenticated) else 429)
    response = RedirectResponse("/home", status_code=303)
    set_session_cookie(response, result.token, settings.cookie_secure, settings.session_max_hours * 3600)
    return response


@router.get("/home", response_class=HTMLResponse)
def home(request: Request, db_session: DbSession, settings: SettingsDep, actor: Actor = signed_in()) -> Response:
    assert actor.person_id is not None
    person = directory.get_person(session=db_session, person_id=actor.person_id)
    return templates.TemplateResponse(request, "home.html", {"org": settings.organization_name, "person": person})


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out_form(db_session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    auth.sign_out(session=db_session, clock=clock, actor=actor)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
