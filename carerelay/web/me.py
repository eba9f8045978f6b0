"""My schedule (with swap requests) and my routing rules ("how I want to be reached")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response

from carerelay.auth.deps import ClockDep, DbSession, signed_in
from carerelay.core.actor import Actor
from carerelay.core.errors import Invalid
from carerelay.directory import service as directory
from carerelay.messaging.models import Priority
from carerelay.routing import service as routing
from carerelay.routing.schemas import RuleIn
from carerelay.scheduling import lookup
from carerelay.scheduling import service as scheduling
from carerelay.web.common import back_to, form_model, form_signed_in, optional_int, render, viewer_of, web_router

router = web_router()

SENDER_TYPES = ("physician", "nurse", "operator", "system")
ACTIONS = (("deliver", "Deliver now"), ("hold", "Hold until a time"), ("forward", "Forward to someone else"),
           ("add_contact", "Also reach me another way after N minutes"))


@router.get("/me/schedule", response_class=HTMLResponse)
def my_schedule(request: Request, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    shifts = lookup.person_slots(session=session, person_id=viewer.id, since=clock.now(), days=31)
    colleagues: list[dict[str, Any]] = []
    if viewer.person.department_id is not None:
        colleagues = [p for p in directory.search_people(
            session=session, limit=200, query=directory.PersonQuery(department_id=viewer.person.department_id))
            if p["id"] != viewer.id]
    swaps = [s for s in scheduling.list_swaps(session=session, actor=actor)
             if viewer.id in (s.requested_by_id, s.from_person_id, s.to_person_id)]
    names = {p["id"]: p["display_name"] for p in colleagues} | {viewer.id: viewer.person.display_name}
    return render(request, "me/schedule.html", viewer=viewer, session=session, shifts=shifts,
                  colleagues=colleagues, swaps=swaps[-20:], names=names)


@router.post("/me/schedule/swap", response_class=HTMLResponse)
def request_swap(session: DbSession, clock: ClockDep, slot_id: Annotated[int, Form()],
                 to_person_id: Annotated[int, Form()], reason: Annotated[str, Form(max_length=500)] = "",
                 actor: Actor = form_signed_in()) -> Response:
    scheduling.request_swap(session=session, clock=clock, actor=actor, slot_id=slot_id, to_person_id=to_person_id,
                            reason=reason.strip() or None)
    return back_to("/me/schedule#swaps")


def _rules_page(request: Request, session: DbSession, actor: Actor, *, error: str | None = None,
                status_code: int = 200) -> Response:
    viewer = viewer_of(request, session, actor)
    return render(request, "me/rules.html", viewer=viewer, session=session, status_code=status_code,
                  rules=routing.my_rules(session=session, person_id=viewer.id), error=error,
                  priorities=[p.value for p in Priority], sender_types=SENDER_TYPES, actions=ACTIONS)


@router.get("/me/rules", response_class=HTMLResponse)
def my_rules(request: Request, session: DbSession, actor: Actor = signed_in()) -> Response:
    return _rules_page(request, session, actor)


def rule_fields(priorities: list[str] | None, sender_types: list[str] | None, window_start: str, window_end: str,
                action: str, hold_until: str, forward_to: str, contact_kind: str, after_minutes: str,
                rank: str) -> dict[str, Any]:
    """Form fields (empty strings for "not given") as the API's RuleIn expects them."""
    data: dict[str, Any] = {"priorities": priorities or [], "sender_types": sender_types or [], "action": action}
    for name, value in (("window_start", window_start), ("window_end", window_end), ("hold_until", hold_until),
                        ("forward_to", forward_to), ("contact_kind", contact_kind)):
        if value.strip():
            data[name] = value.strip()
    if after_minutes.strip():
        try:
            data["after_minutes"] = float(after_minutes)
        except ValueError:
            raise Invalid("after_minutes: write a number of minutes", field="after_minutes") from None
    number = optional_int(rank)
    if number is not None:
        data["rank"] = number
    return data


@router.post("/me/rules", response_class=HTMLResponse)
def add_rule(
    request: Request, session: DbSession, clock: ClockDep,
    action: Annotated[str, Form(max_length=20)],
    priorities: Annotated[list[str] | None, Form()] = None,
    sender_types: Annotated[list[str] | None, Form()] = None,
    window_start: Annotated[str, Form(max_length=5)] = "", window_end: Annotated[str, Form(max_length=5)] = "",
    hold_until: Annotated[str, Form(max_length=5)] = "", forward_to: Annotated[str, Form(max_length=200)] = "",
    contact_kind: Annotated[str, Form(max_length=10)] = "", after_minutes: Annotated[str, Form(max_length=10)] = "",
    rank: Annotated[str, Form(max_length=5)] = "",
    actor: Actor = form_signed_in(),
) -> Response:
    try:
        body = form_model(RuleIn, rule_fields(priorities, sender_types, window_start, window_end, action, hold_until,
                                              forward_to, contact_kind, after_minutes, rank))
        with session.begin_nested():
            routing.create_rule(session=session, clock=clock, actor=actor, data=body.model_dump(),
                                person_id=actor.person_id)
    except Invalid as exc:
        return _rules_page(request, session, actor, error=exc.message, status_code=422)
    return back_to("/me/rules")


@router.post("/me/rules/{rule_id}/deactivate", response_class=HTMLResponse)
def deactivate_rule(rule_id: int, session: DbSession, clock: ClockDep, actor: Actor = form_signed_in()) -> Response:
    routing.deactivate_rule(session=session, clock=clock, actor=actor, rule_id=rule_id)
    return back_to("/me/rules")
