"""What every web page shares: templates, who is looking, CSRF, error pages and security headers.

Pages are thin adapters like the JSON API: they check the route's policy, call domain services and
render a template. Three things are web-only and live here:

- **CSRF.** Session cookies are SameSite=Strict, and on top of that every form post carries a token:
  HMAC-SHA256 of the session token, so it is bound to the session and useless without the cookie
  (``form_signed_in`` / ``form_allow`` check it; the sign-in form uses a double-submit cookie, as
  there is no session yet). A request authenticated by an ``Authorization`` header needs none:
  browsers never attach that header on their own.
- **Errors as pages.** A route of a ``web_router`` turns the services' errors into HTML: not
  signed in → the sign-in page (and back afterwards), forbidden → 403 page, not found → 404 page.
- **Headers.** Every page gets a strict Content-Security-Policy (scripts, styles and media from
  carerelay only; no framing), ``no-store`` caching and ``nosniff``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from carerelay.auth.deps import SESSION_COOKIE, allow, public, signed_in
from carerelay.core.actor import Actor
from carerelay.core.errors import (
    CarerelayError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from carerelay.directory import service as directory
from carerelay.directory.models import Person, Role
from carerelay.patients.models import Unit
from carerelay.realtime import service as realtime
from carerelay.staffing import service as staffing

M = TypeVar("M", bound=BaseModel)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
PRE_SESSION_COOKIE = "carerelay_csrf"
EMBED_COOKIE = "carerelay_embed"
_CSRF_CONTEXT = b"carerelay web form v1"

CARE = frozenset({Role.CLINICIAN.value, Role.NURSE.value, Role.OPERATOR.value, Role.SYSTEM_ADMIN.value})
"""Who may read patients (the same roles as the patients API)."""

BOARD_ADMINS = frozenset({Role.SYSTEM_ADMIN.value, Role.INTEGRATION_ADMIN.value})
"""Who sees every unit's staff board in the navigation; a charge nurse sees their own unit's."""
UNIT_BOARD = "Unit board"

NAV: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    ("Inbox", "/inbox", None),
    ("Alerts", "/alerts", None),
    ("Patients", "/patients", CARE),
    (UNIT_BOARD, "/staffing", BOARD_ADMINS),
    ("Directory", "/directory", None),
    ("On call", "/oncall", None),
    ("Board", "/board", frozenset({Role.OPERATOR.value})),
    ("My schedule", "/me/schedule", None),
    ("My rules", "/me/rules", None),
    ("Schedules", "/schedules", frozenset({Role.SCHEDULER.value, Role.SYSTEM_ADMIN.value})),
    ("Admin", "/admin", frozenset({Role.INTEGRATION_ADMIN.value, Role.SYSTEM_ADMIN.value})),
    ("Compliance", "/compliance", frozenset({Role.COMPLIANCE_OFFICER.value, Role.SYSTEM_ADMIN.value})),
)


# -- CSRF ----------------------------------------------------------------------------------------

def csrf_for(session_token: str) -> str:
    return hmac.new(session_token.encode("utf-8"), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def _cookie_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def _uses_header_auth(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


async def check_csrf(request: Request) -> None:
    if _uses_header_auth(request):
        return
    token = _cookie_token(request)
    form = await request.form()
    given = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    if not token or not given or not hmac.compare_digest(csrf_for(token), given):
        raise Forbidden("this form has expired or did not come from carerelay; reload the page and try again")


async def check_pre_session_csrf(request: Request) -> None:
    """The sign-in form: the token in the form must equal the one in the cookie we set with the page."""
    form = await request.form()
    given = str(form.get(CSRF_FIELD) or "")
    cookie = request.cookies.get(PRE_SESSION_COOKIE) or ""
    if not cookie or not given or not hmac.compare_digest(cookie, given):
        raise Forbidden("the sign-in form has expired; reload the page and sign in again")


def _form_guard(policy: Any) -> Any:
    async def csrf_guard(request: Request, actor: Actor = policy) -> Actor:
        await check_csrf(request)
        return actor

    return Depends(csrf_guard)


def form_signed_in() -> Any:
    """A form post by anyone signed in: the route's policy plus the CSRF check."""
    return _form_guard(signed_in())


def form_allow(*roles: Role) -> Any:
    """A form post by these roles: the route's policy plus the CSRF check."""
    return _form_guard(allow(*roles))


def form_public() -> Any:
    """The sign-in form: public, with the double-submit CSRF check."""
    async def pre_session_guard(request: Request, actor: Actor = public()) -> Actor:
        await check_pre_session_csrf(request)
        return actor

    return Depends(pre_session_guard)


CSRF_GUARDS = ("csrf_guard", "pre_session_guard")
"""Names of the guard dependencies; a test checks every web POST route has one."""


# -- who is looking ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Viewer:
    """The signed-in person looking at a page, and how to show them times."""

    actor: Actor
    person: Person
    tz: ZoneInfo
    embedded_patient: int | None
    csrf: str
    charge_units: tuple[Unit, ...] = ()
    """Units this person is charge nurse of now or next shift (their staff assignments say so)."""

    @property
    def embedded(self) -> bool:
        """Opened from an EHR (``/embed``): a compact page without the main navigation."""
        return self.embedded_patient is not None

    @property
    def id(self) -> int:
        assert self.actor.person_id is not None
        return self.actor.person_id

    def has(self, *roles: str) -> bool:
        return self.actor.has_any(*roles)


def viewer_of(request: Request, session: Session, actor: Actor) -> Viewer:
    if actor.person_id is None:
        raise Forbidden("only a person can use the web client")
    person = directory.get_person(session=session, person_id=actor.person_id)
    if person.department is not None:
        zone = person.department.site.timezone
    else:  # operators, administrators: the first site set up (the main hospital, usually)
        sites = sorted(directory.list_sites(session=session), key=lambda s: s.id)
        zone = sites[0].timezone if sites else "UTC"
    token = _cookie_token(request)
    embedded = request.cookies.get(EMBED_COOKIE, "")
    charge = tuple(staffing.units_in_charge(session=session, person_id=person.id, at=request.app.state.clock.now())
                   ) if actor.has_any(Role.NURSE.value) else ()
    return Viewer(actor=actor, person=person, tz=ZoneInfo(zone),
                  embedded_patient=int(embedded) if embedded.isdigit() else None, csrf=csrf_for(token) if token else "",
                  charge_units=charge)


def nav_for(viewer: Viewer, path: str) -> list[dict[str, Any]]:
    items = []
    for label, href, roles in NAV:
        if label == UNIT_BOARD and viewer.charge_units and not viewer.has(*BOARD_ADMINS):
            roles = None
            if len(viewer.charge_units) == 1:
                href = f"/staffing/{viewer.charge_units[0].code}"
        if roles is None or viewer.has(*roles):
            section = "/staffing" if label == UNIT_BOARD else href
            current = path == section or path.startswith(section + "/")
            items.append({"label": label, "href": href, "current": current})
    return items


def render(request: Request, template: str, *, viewer: Viewer | None, session: Session | None = None,
           status_code: int = 200, live: bool = True, **context: Any) -> HTMLResponse:
    """A full page. ``live``: the page opens the WebSocket from the event number current now, so
    nothing that happens between this render and the connection is missed."""
    settings = request.app.state.settings
    clock = request.app.state.clock
    last_seq = None
    if viewer is not None and live and session is not None:
        last_seq = realtime.last_seq(session=session, person_id=viewer.id)
    base = {
        "org": settings.organization_name, "viewer": viewer, "person": viewer.person if viewer else None,
        "nav": nav_for(viewer, request.url.path) if viewer else [], "csrf": viewer.csrf if viewer else "",
        "tz": viewer.tz if viewer else ZoneInfo("UTC"), "now": clock.now(), "last_seq": last_seq,
        "embedded": viewer.embedded if viewer else False, "path": request.url.path,
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def fragment(request: Request, template: str, *, viewer: Viewer, **context: Any) -> HTMLResponse:
    """Part of a page, fetched by live.js when an event says it changed."""
    clock = request.app.state.clock
    base = {"viewer": viewer, "csrf": viewer.csrf, "tz": viewer.tz, "now": clock.now(),
            "embedded": viewer.embedded, "path": request.url.path}
    return templates.TemplateResponse(request, template, {**base, **context})


def back_to(url: str) -> RedirectResponse:
    """After a form post: show the result with a GET (a reload does not post again)."""
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None, default: str = "/home") -> str:
    """Only our own paths: an open redirect would let a phishing link borrow carerelay's name."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def form_model(model: type[M], data: dict[str, Any]) -> M:
    """Validate form fields with the API's own input model; errors become Invalid naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise Invalid(f"{where}: {message}", field=where) from None


def optional_int(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise Invalid(f"{value!r} is not a number")
    return int(value)


# -- time in the viewer's zone -------------------------------------------------------------------

def _local(ctx: Context, value: datetime) -> datetime:
    tz: ZoneInfo = ctx.get("tz") or ZoneInfo("UTC")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz)


@pass_context
def when(ctx: Context, value: datetime | None) -> str:
    """'14:05' today, 'Mon 24 Nov 14:05' otherwise, in the viewer's zone."""
    if value is None:
        return "—"
    local = _local(ctx, value)
    now: datetime | None = ctx.get("now")
    today = _local(ctx, now).date() if now else None
    return f"{local:%H:%M}" if local.date() == today else f"{local:%a %d %b %H:%M}"


@pass_context
def full_time(ctx: Context, value: datetime | None) -> str:
    if value is None:
        return "—"
    local = _local(ctx, value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


@pass_context
def local_date(ctx: Context, value: datetime) -> str:
    return f"{_local(ctx, value):%a %d %b}"


@pass_context
def span_at(ctx: Context, start: datetime, end: datetime, zone: str) -> str:
    """A shift in its site's wall-clock time: '07:00–19:00 CST', with the day when it is not today."""
    tz = ZoneInfo(zone)
    now: datetime | None = ctx.get("now")
    today = now.astimezone(tz).date() if now else None
    a, b = start.astimezone(tz), end.astimezone(tz)
    first = f"{a:%H:%M}" if a.date() == today else f"{a:%a %d %b %H:%M}"
    second = f"{b:%H:%M}" if b.date() == a.date() or b.date() == today else f"{b:%a %d %b %H:%M}"
    return f"{first}–{second} {b.tzname()}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def bed(location: str | None) -> str:
    """An HL7 location (PV1-3 as sent, '4W^412^B^MAINHOSP') as people write it: '4W-412-B'."""
    parts = [p for p in (location or "").split("^")[:3] if p]
    return "-".join(parts)


def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


templates.env.filters.update(when=when, full_time=full_time, local_date=local_date, span_at=span_at, duration=duration,
                             iso=iso, bed=bed,
                             urlquote=lambda v: quote(str(v), safe=""))
templates.env.globals["timedelta"] = timedelta


# -- errors and headers --------------------------------------------------------------------------

_ERROR_STATUS: tuple[tuple[type[CarerelayError], int, str], ...] = (
    (NotFound, 404, "Not found"),
    (Forbidden, 403, "Not allowed"),
    (Conflict, 409, "Not done"),
    (Invalid, 422, "Not done"),
    (TooManyAttempts, 429, "Too many attempts"),
)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")


def error_page(request: Request, exc: CarerelayError) -> Response:
    if isinstance(exc, Unauthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/home"
        response: Response = RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)
        if _cookie_token(request):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    status, title = 400, "Not done"
    for cls, code, heading in _ERROR_STATUS:
        if isinstance(exc, cls):
            status, title = code, heading
            break
    return render(request, "error.html", viewer=None, status_code=status, live=False, title=title,
                  message=exc.message)


def validation_page(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form"))
    return render(request, "error.html", viewer=None, status_code=422, live=False, title="Not done",
                  message=f"{where or 'form'}: {first.get('msg')}")


def secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


class WebRoute(APIRoute):
    """A page route: service errors become pages, and every response gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except CarerelayError as exc:
                response = error_page(request, exc)
            except RequestValidationError as exc:
                response = validation_page(request, exc)
            return secure(response)

        return page


def web_router(**kwargs: Any) -> APIRouter:
    return APIRouter(include_in_schema=False, route_class=WebRoute, **kwargs)


def new_form_key() -> str:
    """The Idempotency-Key a compose form carries: a double click or a resubmitted form sends once."""
    return secrets.token_urlsafe(16)
