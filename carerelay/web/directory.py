"""The directory, who is on call, and the operators' board (message or page anyone on it in one click).

The board is the published schedules' answer for every department, now and next, in each site's
own wall-clock time; it reloads itself every minute, so a shift change shows without a click.
Paging a person raises an ordinary alert (kind ``page``), so it escalates, is audited and shows its
trail like any other; paging a number is ``/page``'s call (``web/paging.py``), so a number means the
same on both and a refused one is kept in the paging monitor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.directory import service as directory
from carerelay.directory.models import Role
from carerelay.messaging.models import Priority
from carerelay.scheduling import lookup
from carerelay.web.common import back_to, form_allow, fragment, optional_int, render, viewer_of, web_router
from carerelay.web.paging import PageForm, page_form_context, refused, send_page

router = web_router()

PAGERS = (Role.OPERATOR, Role.SYSTEM_ADMIN)
BOARD_REFRESH_SECONDS = 60


@router.get("/directory", response_class=HTMLResponse)
def directory_page(request: Request, session: DbSession, q: str = "", department: str = "",
                   actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    department_id = optional_int(department)
    departments = directory.list_departments(session=session)
    people: list[dict[str, Any]] = []
    if q.strip() or department_id is not None:
        people = directory.search_people(session=session, limit=100, query=directory.PersonQuery(
            q=q or None, department_id=department_id))
    names = {d.id: d.name for d in departments}
    return render(request, "directory/directory.html", viewer=viewer, session=session, q=q, people=people,
                  departments=departments, department_id=department_id, department_names=names)


@router.get("/directory/{person_id}", response_class=HTMLResponse)
def person_page(person_id: int, request: Request, session: DbSession, clock: ClockDep,
                actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    person = directory.get_person(session=session, person_id=person_id)
    contacts = [c for c in directory.list_contact_points(session=session, person_id=person_id) if c.active]
    shifts = lookup_slots(session, clock, person_id)
    return render(request, "directory/person.html", viewer=viewer, session=session, who=person, contacts=contacts,
                  shifts=shifts)


def lookup_slots(session: Session, clock: Clock, person_id: int) -> list[lookup.OnCall]:
    return lookup.person_slots(session=session, person_id=person_id, since=clock.now(), days=14)


def _coverage(session: Session, clock: Clock) -> dict[str, Any]:
    departments = {d.id: d for d in directory.list_departments(session=session)}
    coverage = lookup.on_call_now(session=session, at=clock.now())
    return {"coverage": coverage, "departments": departments}


def _oncall(request: Request, session: Session, clock: Clock, actor: Actor, *, board: bool,
            page_form: PageForm | None = None, status_code: int = 200) -> Response:
    viewer = viewer_of(request, session, actor)
    paging = page_form_context(session, page_form) if board else {}
    return render(request, "directory/oncall.html", viewer=viewer, session=session, board=board,
                  refresh=BOARD_REFRESH_SECONDS, status_code=status_code, **paging, **_coverage(session, clock))


@router.get("/oncall", response_class=HTMLResponse)
def oncall(request: Request, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    return _oncall(request, session, clock, actor, board=False)


@router.get("/oncall/fragment", response_class=HTMLResponse)
def oncall_fragment(request: Request, session: DbSession, clock: ClockDep, board: str = "",
                    actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return fragment(request, "directory/_coverage.html", viewer=viewer,
                    board=board == "1" and viewer.has(*PAGERS), **_coverage(session, clock))


@router.get("/board", response_class=HTMLResponse)
def board(request: Request, session: DbSession, clock: ClockDep, actor: Actor = allow(*PAGERS)) -> Response:
    return _oncall(request, session, clock, actor, board=True)


def _page(session: Session, clock: Clock, actor: Actor, *, address: str, text: str, priority: str) -> int:
    text = text.strip()
    if not text:
        raise Invalid("write what the page says", field="text")
    try:
        level = Priority(priority)
    except ValueError:
        raise Invalid("unknown priority", field="priority") from None
    assert actor.person_id is not None
    sender = directory.get_person(session=session, person_id=actor.person_id).display_name
    alert = alerts.raise_alert(session=session, clock=clock, actor=actor, kind="page", priority=level.value,
                               title=f"Page from {sender}: {text}"[:300], body=text, address=address,
                               source="web", source_ref=actor.username, choices=["Accept", "Call back"],
                               data={"raised_by": actor.person_id, "sender_type": "operator"})
    return alert.id


@router.post("/board/page", response_class=HTMLResponse)
def page_person(session: DbSession, clock: ClockDep, person_id: Annotated[int, Form()],
                text: Annotated[str, Form(max_length=2000)], priority: Annotated[str, Form(max_length=10)] = "urgent",
                actor: Actor = form_allow(*PAGERS)) -> Response:
    directory.get_person(session=session, person_id=person_id)
    alert_id = _page(session, clock, actor, address=f"person:{person_id}", text=text, priority=priority)
    return back_to(f"/alerts/{alert_id}")


@router.post("/board/page-number", response_class=HTMLResponse)
def page_number(request: Request, session: DbSession, clock: ClockDep, number: Annotated[str, Form(max_length=128)],
                text: Annotated[str, Form(max_length=2000)], priority: Annotated[str, Form(max_length=10)] = "urgent",
                actor: Actor = form_allow(*PAGERS)) -> Response:
    """The same call as ``/page``; a refused number comes back on the board with the reason."""
    form = PageForm(number, text, priority)
    try:
        outcome = send_page(session=session, clock=clock, actor=actor, form=form)
    except Invalid as exc:
        return _oncall(request, session, clock, actor, board=True, status_code=422,
                       page_form=PageForm(number, text, priority, exc.message))
    if not outcome.accepted:
        return _oncall(request, session, clock, actor, board=True, status_code=422, page_form=refused(form, outcome))
    return back_to(f"/alerts/{outcome.alert.id}" if outcome.alert is not None else "/board")
