"""The integration administrator's consoles: HL7 feeds and message log (filters, errors, reprocess),
escalation policies, departments' routing defaults, and users with their roles.

Feeds refresh themselves every few seconds. Changing people's roles, activating them and resetting
passwords is for system administrators (as in the API): an integration admin sees the list but may
not make anyone, themselves included, a system administrator.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from carerelay.auth import service as auth
from carerelay.auth.deps import ClockDep, DbSession, SettingsDep, allow
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Conflict, Invalid
from carerelay.directory import service as directory
from carerelay.directory.models import Role
from carerelay.escalation import service as escalation
from carerelay.escalation.schemas import PolicyIn
from carerelay.integrations.hl7 import store
from carerelay.integrations.hl7.feeds import feeds_from
from carerelay.integrations.hl7.parser import decode
from carerelay.messaging.models import Priority
from carerelay.routing import service as routing
from carerelay.routing.schemas import DepartmentRuleIn
from carerelay.web.common import (
    Viewer,
    back_to,
    form_allow,
    form_model,
    fragment,
    optional_int,
    render,
    viewer_of,
    web_router,
)
from carerelay.web.me import ACTIONS, SENDER_TYPES, rule_fields

router = web_router()

ADMINS = (Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)
SYSTEM = (Role.SYSTEM_ADMIN,)
FEEDS_REFRESH_SECONDS = 5
STATUSES = ("received", "processed", "filtered", "error")


@router.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request, session: DbSession, actor: Actor = allow(*ADMINS)) -> Response:
    return render(request, "admin/index.html", viewer=viewer_of(request, session, actor), session=session)


# -- HL7 ------------------------------------------------------------------------------------------

def _feeds(request: Request, session: Session, clock: Clock) -> list[dict[str, Any]]:
    settings = request.app.state.settings
    runtime = getattr(request.app.state, "hl7", None)
    configured = runtime.feeds if runtime is not None else feeds_from(settings)
    ports = runtime.ports if runtime is not None else {}
    health = {h.feed: h for h in store.check_feeds(session=session, clock=clock, feeds=configured)}
    counts = store.message_counts(session=session)
    return [{"name": f.name, "port": ports.get(f.name, f.port), "listening": f.name in ports,
             "ack_mode": f.ack_mode, "types": ", ".join(f.message_types), "silence_minutes": f.silence_minutes,
             "last": health[f.name].last_message_at, "silent_since": health[f.name].silent_since,
             "counts": counts.get(f.name, {})} for f in configured]


@router.get("/admin/hl7", response_class=HTMLResponse)
def hl7_feeds(request: Request, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> Response:
    viewer = viewer_of(request, session, actor)
    return render(request, "admin/hl7.html", viewer=viewer, session=session, feeds=_feeds(request, session, clock),
                  refresh=FEEDS_REFRESH_SECONDS, statuses=STATUSES)


@router.get("/admin/hl7/fragment", response_class=HTMLResponse)
def hl7_feeds_fragment(request: Request, session: DbSession, clock: ClockDep,
                       actor: Actor = allow(*ADMINS)) -> Response:
    viewer = viewer_of(request, session, actor)
    return fragment(request, "admin/_feeds.html", viewer=viewer, feeds=_feeds(request, session, clock),
                    statuses=STATUSES)


@router.get("/admin/hl7/messages", response_class=HTMLResponse)
def hl7_messages(request: Request, session: DbSession, clock: ClockDep, type: str = "", mrn: str = "",
                 status: str = "", feed: str = "", control_id: str = "", before_id: str = "",
                 done: str = "", actor: Actor = allow(*ADMINS)) -> Response:
    viewer = viewer_of(request, session, actor)
    if status and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
    query = store.MessageQuery(message_type=type.strip() or None, mrn=mrn.strip() or None,
                               control_id=control_id.strip() or None, status=status or None, feed=feed.strip() or None)
    rows = store.search_messages(session=session, clock=clock, actor=actor, query=query,
                                 before_id=optional_int(before_id), limit=100)
    filters = {"type": type, "mrn": mrn, "status": status, "feed": feed, "control_id": control_id}
    return render(request, "admin/hl7_messages.html", viewer=viewer, session=session, rows=rows, filters=filters,
                  statuses=STATUSES, done=done, older=rows[-1].id if len(rows) == 100 else None)


@router.get("/admin/hl7/messages/{message_id}", response_class=HTMLResponse)
def hl7_message(message_id: int, request: Request, session: DbSession, clock: ClockDep,
                actor: Actor = allow(*ADMINS)) -> Response:
    viewer = viewer_of(request, session, actor)
    row = store.access_message(session=session, clock=clock, actor=actor, message_id=message_id)
    text, _, _ = decode(row.raw, row.charset or "utf-8")
    return render(request, "admin/hl7_message.html", viewer=viewer, session=session, row=row,
                  segments=text.replace("\r\n", "\r").replace("\n", "\r").split("\r"))


@router.post("/admin/hl7/reprocess", response_class=HTMLResponse)
def hl7_reprocess(request: Request, background: BackgroundTasks, session: DbSession, clock: ClockDep,
                  ids: Annotated[list[int] | None, Form()] = None, all_errors: Annotated[bool, Form()] = False,
                  actor: Actor = form_allow(*ADMINS)) -> Response:
    if not ids and not all_errors:
        raise Invalid("tick the messages to reprocess, or choose every message in error", field="ids")
    found = store.reprocess_messages(session=session, clock=clock, actor=actor, ids=ids or [],
                                     query=None if ids else store.MessageQuery(status="error"))
    runtime = getattr(request.app.state, "hl7", None)
    if runtime is not None:  # after the response, so after the commit (the processor also polls)
        background.add_task(runtime.wake)
    return back_to(f"/admin/hl7/messages?done={len(found)}")


# -- escalation policies --------------------------------------------------------------------------

def _escalation_page(request: Request, session: Session, viewer: Viewer, *, error: str | None = None,
                     form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    departments = directory.list_departments(session=session)
    return render(request, "admin/escalation.html", viewer=viewer, session=session, status_code=status_code,
                  policies=escalation.list_policies(session=session), departments=departments,
                  names={d.id: d.name for d in departments}, priorities=[p.value for p in Priority], error=error,
                  form=form or {})


@router.get("/admin/escalation", response_class=HTMLResponse)
def escalation_policies(request: Request, session: DbSession, actor: Actor = allow(*ADMINS)) -> Response:
    return _escalation_page(request, session, viewer_of(request, session, actor))


def parse_steps(text: str) -> list[dict[str, Any]]:
    """One step per line: '<address> <minutes to wait>', e.g. 'target: 5' or 'role:CARD-CALL2-DAY 3'."""
    steps = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        address, _, wait = line.rpartition(" ")
        try:
            minutes = float(wait)
        except ValueError:
            raise Invalid(f"steps line {number}: end the line with the minutes to wait, e.g. 'target: 5'",
                          field="steps") from None
        steps.append({"address": address.strip(), "wait_minutes": minutes})
    return steps


@router.post("/admin/escalation", response_class=HTMLResponse)
def create_policy(
    request: Request, session: DbSession, clock: ClockDep, name: Annotated[str, Form(max_length=200)],
    steps: Annotated[str, Form(max_length=5000)], alert_kind: Annotated[str, Form(max_length=40)] = "",
    department_id: Annotated[str, Form(max_length=20)] = "", priority: Annotated[str, Form(max_length=10)] = "",
    repeat: Annotated[str, Form(max_length=3)] = "0", fallback_address: Annotated[str, Form(max_length=200)] = "",
    actor: Actor = form_allow(*ADMINS),
) -> Response:
    viewer = viewer_of(request, session, actor)
    form = {"name": name, "steps": steps, "alert_kind": alert_kind, "department_id": department_id,
            "priority": priority, "repeat": repeat, "fallback_address": fallback_address}
    try:
        body = form_model(PolicyIn, {
            "name": name, "steps": parse_steps(steps), "alert_kind": alert_kind.strip() or None,
            "department_id": optional_int(department_id), "priority": priority or None,
            "repeat": optional_int(repeat) or 0, "fallback_address": fallback_address.strip() or None})
        with session.begin_nested():
            escalation.create_policy(session=session, clock=clock, actor=actor, data=body.model_dump())
    except (Invalid, Conflict) as exc:
        return _escalation_page(request, session, viewer, error=exc.message, form=form, status_code=422)
    return back_to("/admin/escalation")


# -- departments' routing defaults ----------------------------------------------------------------

def _routing_page(request: Request, session: Session, viewer: Viewer, *, error: str | None = None,
                  status_code: int = 200) -> Response:
    departments = directory.list_departments(session=session)
    return render(request, "admin/routing.html", viewer=viewer, session=session, status_code=status_code,
                  rules=routing.department_rules(session=session), departments=departments,
                  names={d.id: d.name for d in departments}, priorities=[p.value for p in Priority],
                  sender_types=SENDER_TYPES, actions=ACTIONS, error=error)


@router.get("/admin/routing", response_class=HTMLResponse)
def routing_defaults(request: Request, session: DbSession, actor: Actor = allow(*ADMINS)) -> Response:
    return _routing_page(request, session, viewer_of(request, session, actor))


@router.post("/admin/routing", response_class=HTMLResponse)
def add_department_rule(
    request: Request, session: DbSession, clock: ClockDep, department_id: Annotated[int, Form()],
    action: Annotated[str, Form(max_length=20)],
    priorities: Annotated[list[str] | None, Form()] = None,
    sender_types: Annotated[list[str] | None, Form()] = None,
    window_start: Annotated[str, Form(max_length=5)] = "", window_end: Annotated[str, Form(max_length=5)] = "",
    hold_until: Annotated[str, Form(max_length=5)] = "", forward_to: Annotated[str, Form(max_length=200)] = "",
    contact_kind: Annotated[str, Form(max_length=10)] = "", after_minutes: Annotated[str, Form(max_length=10)] = "",
    rank: Annotated[str, Form(max_length=5)] = "",
    actor: Actor = form_allow(*ADMINS),
) -> Response:
    viewer = viewer_of(request, session, actor)
    try:
        fields = rule_fields(priorities, sender_types, window_start, window_end, action, hold_until, forward_to,
                             contact_kind, after_minutes, rank)
        body = form_model(DepartmentRuleIn, {**fields, "department_id": department_id})
        with session.begin_nested():
            routing.create_rule(session=session, clock=clock, actor=actor,
                                data=body.model_dump(exclude={"department_id"}), person_id=None,
                                department_id=body.department_id)
    except Invalid as exc:
        return _routing_page(request, session, viewer, error=exc.message, status_code=422)
    return back_to("/admin/routing")


@router.post("/admin/routing/{rule_id}/deactivate", response_class=HTMLResponse)
def deactivate_department_rule(rule_id: int, session: DbSession, clock: ClockDep,
                               actor: Actor = form_allow(*SYSTEM)) -> Response:
    routing.deactivate_rule(session=session, clock=clock, actor=actor, rule_id=rule_id)
    return back_to("/admin/routing")


# -- users and roles ------------------------------------------------------------------------------

@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, session: DbSession, q: str = "", role: str = "", inactive: str = "",
          actor: Actor = allow(*ADMINS)) -> Response:
    viewer = viewer_of(request, session, actor)
    roles = [r.value for r in Role]
    if role and role not in roles:
        raise Invalid(f"role must be one of {', '.join(roles)}", field="role")
    people = directory.search_people(session=session, limit=200, query=directory.PersonQuery(
        q=q or None, role=role or None, active=None if inactive else True)) if (q.strip() or role) else []
    return render(request, "admin/users.html", viewer=viewer, session=session, q=q, role=role, roles=roles,
                  people=people, inactive=bool(inactive))


def _user_page(request: Request, session: Session, viewer: Viewer, person_id: int, *, error: str | None = None,
               notice: str | None = None, status_code: int = 200) -> Response:
    person = directory.get_person(session=session, person_id=person_id)
    return render(request, "admin/user.html", viewer=viewer, session=session, status_code=status_code, who=person,
                  roles=[r.value for r in Role], error=error, notice=notice,
                  may_edit=viewer.has(Role.SYSTEM_ADMIN.value))


@router.get("/admin/users/{person_id}", response_class=HTMLResponse)
def user(person_id: int, request: Request, session: DbSession, saved: str = "",
         actor: Actor = allow(*ADMINS)) -> Response:
    return _user_page(request, session, viewer_of(request, session, actor), person_id,
                      notice={"roles": "Saved.", "password": "Password reset; every session of this person ended."}
                      .get(saved))


@router.post("/admin/users/{person_id}", response_class=HTMLResponse)
def update_user(person_id: int, session: DbSession, clock: ClockDep,
                roles: Annotated[list[str] | None, Form()] = None, active: Annotated[bool, Form()] = False,
                actor: Actor = form_allow(*SYSTEM)) -> Response:
    known = {r.value for r in Role}
    unknown = sorted(set(roles or ()) - known)
    if unknown:
        raise Invalid(f"unknown role {unknown[0]}", field="roles")
    directory.update_person(session=session, clock=clock, actor=actor, person_id=person_id,
                            changes={"roles": [Role(r) for r in roles or ()], "active": active})
    return back_to(f"/admin/users/{person_id}?saved=roles")


@router.post("/admin/users/{person_id}/reset-password", response_class=HTMLResponse)
def reset_password(person_id: int, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
                   password: Annotated[str, Form(max_length=200)], actor: Actor = form_allow(*SYSTEM)) -> Response:
    viewer = viewer_of(request, session, actor)
    try:
        with session.begin_nested():
            auth.reset_password(session=session, clock=clock, settings=settings, actor=actor, person_id=person_id,
                                new=password)
    except Invalid as exc:
        return _user_page(request, session, viewer, person_id, error=exc.message, status_code=422)
    return back_to(f"/admin/users/{person_id}?saved=password")
