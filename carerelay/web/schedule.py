"""The scheduler's pages: a department's month and week grids, assign, swap, publish, and what changed
since the last publish. Which department a scheduler may edit is the scheduling service's rule."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.core.errors import Conflict, Forbidden, Invalid
from carerelay.directory import service as directory
from carerelay.directory.models import Role
from carerelay.scheduling import service as scheduling
from carerelay.scheduling.models import RequestStatus, Schedule, Slot
from carerelay.web.common import Viewer, back_to, form_allow, optional_int, render, viewer_of, web_router

router = web_router()

EDITORS = (Role.SCHEDULER, Role.SYSTEM_ADMIN)


def _date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{field}: write a date as YYYY-MM-DD", field=field) from None


def _departments_for(session: Session, viewer: Viewer) -> list[Any]:
    departments = directory.list_departments(session=session)
    if viewer.has(Role.SYSTEM_ADMIN.value):
        return departments
    return [d for d in departments if d.id == viewer.person.department_id]


@router.get("/schedules", response_class=HTMLResponse)
def schedules(request: Request, session: DbSession, actor: Actor = allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    return _schedules_page(request, session, viewer)


def _schedules_page(request: Request, session: Session, viewer: Viewer, *, error: str | None = None,
                    status_code: int = 200) -> Response:
    mine = _departments_for(session, viewer)
    rows = [s for s in scheduling.list_schedules(session=session, actor=viewer.actor)
            if any(d.id == s.department_id for d in mine)]
    return render(request, "schedule/schedules.html", viewer=viewer, session=session, schedules=rows,
                  departments=mine, error=error, status_code=status_code)


@router.post("/schedules", response_class=HTMLResponse)
def create_schedule(request: Request, session: DbSession, clock: ClockDep,
                    department_id: Annotated[int, Form()], starts_on: Annotated[str, Form(max_length=10)],
                    ends_on: Annotated[str, Form(max_length=10)], name: Annotated[str, Form(max_length=200)] = "",
                    actor: Actor = form_allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    try:
        with session.begin_nested():
            schedule = scheduling.create_schedule(session=session, clock=clock, actor=actor,
                                                  department_id=department_id,
                                                  starts_on=_date(starts_on, "starts_on"),
                                                  ends_on=_date(ends_on, "ends_on"), name=name.strip() or None)
    except (Invalid, Conflict) as exc:
        return _schedules_page(request, session, viewer, error=exc.message, status_code=422)
    return back_to(f"/schedules/{schedule.id}")


def _window(schedule: Schedule, view: str, start: str, today: date) -> tuple[list[date], date | None, date | None]:
    """The days shown and the previous/next window's first day (None past the schedule's edges)."""
    anchor = _date(start, "start") if start else max(schedule.starts_on, min(today, schedule.ends_on))
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        following = first + timedelta(days=7)
        before = first - timedelta(days=7)
    else:
        first = anchor.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        before = (first - timedelta(days=1)).replace(day=1)
    days = [first + timedelta(days=n) for n in range((following - first).days)]
    days = [d for d in days if schedule.starts_on <= d <= schedule.ends_on]
    return (days, before if first - timedelta(days=1) >= schedule.starts_on else None,
            following if following <= schedule.ends_on else None)


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(schedule_id: int, request: Request, session: DbSession, clock: ClockDep, view: str = "month",
                  start: str = "", published: str = "", actor: Actor = allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    schedule = scheduling.access_schedule(session=session, actor=actor, schedule_id=schedule_id)
    today = clock.now().astimezone(viewer.tz).date()
    view = "week" if view == "week" else "month"
    days, prev, nxt = _window(schedule, view, start, today)
    assignments = [a for a in scheduling.list_assignments(session=session, department_id=schedule.department_id)
                   if a.active]
    cells: dict[tuple[int, date], list[Slot]] = defaultdict(list)
    for slot in scheduling.list_slots(session=session, schedule_id=schedule_id):
        cells[(slot.assignment_id, slot.on_date)].append(slot)
    changes = scheduling.list_changes(session=session, schedule_id=schedule_id, since_version=schedule.version) \
        if schedule.version else []
    slot_ids = {s.id for group in cells.values() for s in group}
    swaps = [s for s in scheduling.list_swaps(session=session, actor=actor, status=RequestStatus.PENDING.value)
             if s.slot_id in slot_ids]
    people = {p["id"]: p["display_name"] for p in _people(session, schedule.department_id)}
    return render(request, "schedule/schedule.html", viewer=viewer, session=session, schedule=schedule,
                  view=view, days=days, prev=prev, next=nxt, assignments=assignments, cells=cells,
                  changes=changes, swaps=swaps, people=people, today=today, published=published,
                  may_edit=_may_edit(session, viewer, schedule.department_id))


def _may_edit(session: Session, viewer: Viewer, department_id: int) -> bool:
    try:
        scheduling.check_may_edit(session=session, actor=viewer.actor, department_id=department_id)
    except Forbidden:
        return False
    return True


def _people(session: Session, department_id: int) -> list[dict[str, Any]]:
    """Who may work the department's slots: its people and those cross-credentialed to it."""
    own = directory.search_people(session=session, limit=500,
                                  query=directory.PersonQuery(department_id=department_id))
    extra = []
    for grant in scheduling.list_cross_credentials(session=session, department_id=department_id):
        person = directory.get_person(session=session, person_id=grant.person_id)
        if person.active:
            extra.append({"id": person.id, "display_name": f"{person.display_name} (cross-credentialed)",
                          "profession": person.profession})
    return own + extra


def _slot_form(request: Request, session: Session, viewer: Viewer, schedule: Schedule, *, slot: Slot | None,
               assignment_id: int, on_date: date, error: str | None = None, status_code: int = 200) -> Response:
    assignment = scheduling.get_assignment(session=session, assignment_id=assignment_id)
    same_day = [s for s in scheduling.list_slots(session=session, schedule_id=schedule.id, on_date=on_date)
                if slot is None or s.id != slot.id]
    return render(request, "schedule/slot.html", viewer=viewer, session=session, schedule=schedule, slot=slot,
                  assignment=assignment, on_date=on_date, people=_people(session, schedule.department_id),
                  same_day=same_day, error=error, status_code=status_code)


@router.get("/schedules/{schedule_id}/new", response_class=HTMLResponse)
def new_slot(schedule_id: int, request: Request, session: DbSession, assignment: int, on: str,
             actor: Actor = allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    schedule = scheduling.access_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return _slot_form(request, session, viewer, schedule, slot=None, assignment_id=assignment,
                      on_date=_date(on, "on"))


def _who(person_id: str, placeholder_name: str, placeholder_contact: str, notes: str) -> scheduling.SlotFields:
    return scheduling.SlotFields(person_id=optional_int(person_id), placeholder_name=placeholder_name.strip() or None,
                                 placeholder_contact=placeholder_contact.strip() or None,
                                 notes=notes.strip() or None)


@router.post("/schedules/{schedule_id}/slots", response_class=HTMLResponse)
def add_slot(schedule_id: int, request: Request, session: DbSession, clock: ClockDep,
             assignment_id: Annotated[int, Form()], on_date: Annotated[str, Form(max_length=10)],
             person_id: Annotated[str, Form(max_length=20)] = "",
             placeholder_name: Annotated[str, Form(max_length=200)] = "",
             placeholder_contact: Annotated[str, Form(max_length=60)] = "",
             notes: Annotated[str, Form(max_length=1000)] = "", actor: Actor = form_allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    schedule = scheduling.access_schedule(session=session, actor=actor, schedule_id=schedule_id)
    day = _date(on_date, "on_date")
    try:
        with session.begin_nested():
            scheduling.add_slot(session=session, clock=clock, actor=actor, schedule_id=schedule_id,
                                assignment_id=assignment_id, on_date=day,
                                fields=_who(person_id, placeholder_name, placeholder_contact, notes))
    except (Invalid, Conflict) as exc:
        return _slot_form(request, session, viewer, schedule, slot=None, assignment_id=assignment_id, on_date=day,
                          error=exc.message, status_code=422)
    return back_to(f"/schedules/{schedule_id}?start={day.isoformat()}")


@router.get("/schedules/slots/{slot_id}", response_class=HTMLResponse)
def edit_slot(slot_id: int, request: Request, session: DbSession, actor: Actor = allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    slot = scheduling.get_slot(session=session, slot_id=slot_id)
    schedule = scheduling.access_schedule(session=session, actor=actor, schedule_id=slot.schedule_id)
    return _slot_form(request, session, viewer, schedule, slot=slot, assignment_id=slot.assignment_id,
                      on_date=slot.on_date)


@router.post("/schedules/slots/{slot_id}", response_class=HTMLResponse)
def update_slot(slot_id: int, request: Request, session: DbSession, clock: ClockDep,
                person_id: Annotated[str, Form(max_length=20)] = "",
                placeholder_name: Annotated[str, Form(max_length=200)] = "",
                placeholder_contact: Annotated[str, Form(max_length=60)] = "",
                notes: Annotated[str, Form(max_length=1000)] = "", actor: Actor = form_allow(*EDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    slot = scheduling.get_slot(session=session, slot_id=slot_id)
    schedule = scheduling.access_schedule(session=session, actor=actor, schedule_id=slot.schedule_id)
    try:
        with session.begin_nested():
            scheduling.update_slot(session=session, clock=clock, actor=actor, slot_id=slot_id,
                                   fields=_who(person_id, placeholder_name, placeholder_contact, notes))
    except (Invalid, Conflict) as exc:
        return _slot_form(request, session, viewer, schedule, slot=slot, assignment_id=slot.assignment_id,
                          on_date=slot.on_date, error=exc.message, status_code=422)
    return back_to(f"/schedules/{schedule.id}?start={slot.on_date.isoformat()}")


@router.post("/schedules/slots/{slot_id}/remove", response_class=HTMLResponse)
def remove_slot(slot_id: int, session: DbSession, clock: ClockDep, actor: Actor = form_allow(*EDITORS)) -> Response:
    slot = scheduling.get_slot(session=session, slot_id=slot_id)
    schedule_id, day = slot.schedule_id, slot.on_date
    scheduling.remove_slot(session=session, clock=clock, actor=actor, slot_id=slot_id)
    return back_to(f"/schedules/{schedule_id}?start={day.isoformat()}")


@router.post("/schedules/slots/{slot_id}/swap", response_class=HTMLResponse)
def swap_slots(slot_id: int, request: Request, session: DbSession, clock: ClockDep,
               other_slot_id: Annotated[int, Form()], actor: Actor = form_allow(*EDITORS)) -> Response:
    """A scheduler's swap: the two slots trade people, asked and approved in one step (both audited)."""
    viewer = viewer_of(request, session, actor)
    slot = scheduling.get_slot(session=session, slot_id=slot_id)
    other = scheduling.get_slot(session=session, slot_id=other_slot_id)
    schedule = scheduling.access_schedule(session=session, actor=actor, schedule_id=slot.schedule_id)
    try:
        with session.begin_nested():
            if other.person_id is None:
                raise Invalid("the other slot is a placeholder; assign a person instead", field="other_slot_id")
            swap = scheduling.request_swap(session=session, clock=clock, actor=actor, slot_id=slot_id,
                                           to_person_id=other.person_id, other_slot_id=other.id,
                                           reason="swapped by the scheduler")
            scheduling.decide_swap(session=session, clock=clock, actor=actor, swap_id=swap.id, approve=True)
    except (Invalid, Conflict) as exc:
        return _slot_form(request, session, viewer, schedule, slot=slot, assignment_id=slot.assignment_id,
                          on_date=slot.on_date, error=exc.message, status_code=422)
    return back_to(f"/schedules/{schedule.id}?start={slot.on_date.isoformat()}")


@router.post("/schedules/swaps/{swap_id}/decision", response_class=HTMLResponse)
def decide_swap(swap_id: int, session: DbSession, clock: ClockDep, approve: Annotated[bool, Form()],
                back: Annotated[str, Form(max_length=200)] = "/schedules",
                actor: Actor = form_allow(*EDITORS)) -> Response:
    scheduling.decide_swap(session=session, clock=clock, actor=actor, swap_id=swap_id, approve=approve)
    return back_to(back if back.startswith("/schedules") else "/schedules")


@router.post("/schedules/{schedule_id}/publish", response_class=HTMLResponse)
def publish(schedule_id: int, session: DbSession, clock: ClockDep, actor: Actor = form_allow(*EDITORS)) -> Response:
    version = scheduling.publish_schedule(session=session, clock=clock, actor=actor, schedule_id=schedule_id)
    return back_to(f"/schedules/{schedule_id}?published={version.version}")
