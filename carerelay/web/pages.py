"""Signing in and out, and the home page that sends each role to its work."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from carerelay.alerts import service as alerts
from carerelay.auth import service as auth
from carerelay.auth.api import set_session_cookie
from carerelay.auth.deps import SESSION_COOKIE, ClockDep, DbSession, SettingsDep, client_ip, public, signed_in
from carerelay.core.actor import Actor
from carerelay.core.errors import TooManyAttempts, Unauthenticated
from carerelay.messaging import inbox
from carerelay.web.common import (
    EMBED_COOKIE,
    PRE_SESSION_COOKIE,
    form_public,
    form_signed_in,
    render,
    safe_next,
    templates,
    viewer_of,
    web_router,
)

__all__ = ["router", "templates"]

router = web_router()

NOTICES = {"ended": "Your session has ended, or you are not signed in yet. Sign in to continue."}


@router.get("/", response_class=HTMLResponse)
def index(request: Request, actor: Actor = public()) -> Response:
    target = "/home" if request.cookies.get(SESSION_COOKIE) else "/sign-in"
    return RedirectResponse(target, status_code=303)


def _sso_links(request: Request) -> list[dict[str, str]]:
    providers = getattr(request.app.state, "sso_providers", {}) or {}
    return [{"label": p.label, "href": f"/sso/{p.kind}/{p.name}/login"} for p in providers.values()]


def _sign_in_page(request: Request, *, error: str | None = None, status_code: int = 200, next_url: str = "",
                  username: str = "") -> Response:
    token = request.cookies.get(PRE_SESSION_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, "sign_in.html", viewer=None, live=False, status_code=status_code, error=error,
                      sso=_sso_links(request), pre_csrf=token, next=next_url, username=username,
                      notice=NOTICES["ended"] if next_url and not error else None)
    response.set_cookie(PRE_SESSION_COOKIE, token, httponly=True, samesite="strict", path="/sign-in",
                        secure=request.app.state.settings.cookie_secure)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "", actor: Actor = public()) -> Response:
    return _sign_in_page(request, next_url=safe_next(next, ""))


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in_form(
    request: Request,
    db_session: DbSession,
    clock: ClockDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=120)],
    password: Annotated[str, Form(max_length=200)],
    totp_code: Annotated[str | None, Form(max_length=6)] = None,
    next: Annotated[str, Form(max_length=2000)] = "",
    actor: Actor = form_public(),
) -> Response:
    try:
        result = auth.sign_in(session=db_session, clock=clock, settings=settings, username=username,
                              password=password, totp_code=totp_code or None, kind="web", ip=client_ip(request),
                              user_agent=request.headers.get("user-agent"))
    except (Unauthenticated, TooManyAttempts) as exc:
        # The failure was recorded; keep it (the unit of work commits on a normal return).
        return _sign_in_page(request, error=exc.message, next_url=safe_next(next, ""), username=username,
                             status_code=401 if isinstance(exc, Unauthenticated) else 429)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, result.token, settings.cookie_secure, settings.session_max_hours * 3600)
    response.delete_cookie(PRE_SESSION_COOKIE, path="/sign-in")
    response.delete_cookie(EMBED_COOKIE, path="/")
    return response


@router.get("/home", response_class=HTMLResponse)
def home(request: Request, db_session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, db_session, actor)
    conversations = inbox.inbox(session=db_session, clock=clock, actor=actor)
    open_alerts = alerts.my_alerts(session=db_session, actor=actor, open_only=True, limit=100)
    return render(request, "home.html", viewer=viewer, session=db_session,
                  unread=sum(c.unread for c in conversations), conversations=len(conversations),
                  open_alerts=len(open_alerts))


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out_form(db_session: DbSession, clock: ClockDep, actor: Actor = form_signed_in()) -> Response:
    auth.sign_out(session=db_session, clock=clock, actor=actor)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(EMBED_COOKIE, path="/")
    return response
