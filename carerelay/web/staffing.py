"""The charge nurse's board: a unit's beds, the patient in each, and who is assigned in each care role
this shift and next; assign, end, copy last shift's assignments, and the conflicts between sources.

Built on the staffing service like ``/api/staffing``: who may change a unit's assignments is its
rule (``check_may_manage``), and its refusals (a bed that already has a primary nurse, a more trusted
source holding the place) come back inline on the form with what was typed kept. The board region
reloads when the unit's assignments change (``staffing.changed``, from any source) and every minute,
for the census and the shift change. Patient names are shown to the roles that read the census.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Conflict, Invalid
from carerelay.directory import service as directory
from carerelay.directory.models import Profession, Role
from carerelay.patients import service as patients
from carerelay.patients.models import Unit
from carerelay.staffing import service as staffing
from carerelay.staffing.models import CareRole
from carerelay.staffing.roles import LABELS
from carerelay.staffing.service import AssignmentView
from carerelay.staffing.shifts import Shift, next_shift
from carerelay.staffing.watch import BOARD_CHANGED
from carerelay.web.common import (
    CARE,
    Viewer,
    back_to,
    form_allow,
    fragment,
    optional_int,
    render,
    viewer_of,
    web_router,
)

router = web_router()

BOARD_USERS = (Role.NURSE, Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)
REFRESH_SECONDS = 60
NURSE_ROLES = (CareRole.PRIMARY_NURSE, CareRole.SECONDARY_NURSE, CareRole.CHARGE_NURSE)
"""Roles only a nurse fills; the picker offers nurses and techs for the others."""
SHIFTS = ("current", "next")
SOURCES = {"manual": "by hand", "file": "from a file", "sync": "from the assignment system", "adt_rol": "from ADT"}
FIELD_OF = {"unit": "target", "room": "target", "bed": "target", "person_id": "person_id", "person": "person_id",
            "role": "role", "starts_at": "shift", "ends_at": "shift"}
"""The service names the field it refuses; the form shows the error beside its own control."""


@dataclass(frozen=True)
class Cell:
    """One shift of one place: who is assigned, and whether a primary nurse is missing there."""

    assignments: list[AssignmentView]
    missing: bool = False


@dataclass(frozen=True)
class BedRow:
    room: str
    bed: str
    label: str
    occupied: bool
    patient: patients.CensusRow | None
    now: Cell
    next: Cell

    @property
    def target(self) -> str:
        return f"{self.room}/{self.bed}"

    @property
    def anchor(self) -> str:
        return f"bed-{self.room}-{self.bed}"


@dataclass(frozen=True)
class RoleRow:
    role: str
    label: str
    now: Cell
    next: Cell


@dataclass
class AssignForm:
    """What the charge nurse typed, kept when the service refuses it."""

    target: str = ""
    role: str = CareRole.PRIMARY_NURSE.value
    person_id: int | None = None
    shift: str = "current"
    replace: bool = False
    error: str | None = None
    error_field: str | None = None


@dataclass
class Notice:
    text: str
    details: list[str] = field(default_factory=list)


# -- reading the board ----------------------------------------------------------------------------

class Named:
    """A board's assignments as people read them, named in one pass (not one query set per bed)."""

    def __init__(self, session: Session, board: staffing.Board) -> None:
        rows = [r for b in board.beds for r in b.assignments] + [r for rs in board.rooms.values() for r in rs]
        self._views = {v.id: v for v in staffing.views(session, rows + board.unit_level)}
        self.board = board

    def __call__(self, rows: list[Any]) -> list[AssignmentView]:
        return [self._views[r.id] for r in rows]

    def cell(self, bed: staffing.BedView) -> Cell:
        """The bed's own assignments, then its room's."""
        return Cell(self(bed.assignments) + self(self.board.rooms.get(bed.room, [])), bed.primary_nurse_missing)


def _bed_rows(now: Named, later: Named, census: dict[tuple[str, str], patients.CensusRow]) -> list[BedRow]:
    next_beds = {b.bed_id: b for b in later.board.beds}
    return [BedRow(room=bed.room, bed=bed.bed, label=bed.label, occupied=bed.occupied,
                   patient=census.get((bed.room, bed.bed)), now=now.cell(bed), next=later.cell(next_beds[bed.bed_id]))
            for bed in now.board.beds]


def _role_rows(now: Named, later: Named) -> list[RoleRow]:
    """The whole unit's people by care role; the charge nurse's row is always there, flagged when empty."""
    now_views, next_views = now(now.board.unit_level), later(later.board.unit_level)
    rows = []
    for role, label in LABELS.items():
        here = [v for v in now_views if v.role == role.value]
        coming = [v for v in next_views if v.role == role.value]
        if here or coming or role == CareRole.CHARGE_NURSE:
            charge = role == CareRole.CHARGE_NURSE
            rows.append(RoleRow(role.value, label, Cell(here, charge and not here),
                                Cell(coming, charge and not coming)))
    return rows


def _candidates(session: Session, unit: Unit, on_board: list[AssignmentView],
                find: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Sensible people to assign, in groups: the unit's own nurses and techs, whoever is already on
    its board (a float), and the nurses and techs a search found; never physicians, operators or
    clerks of the directory at large."""
    department = directory.get_department(session=session, department_id=unit.department_id) \
        if unit.department_id is not None else None
    seen: set[int] = set()
    out: list[tuple[str, list[dict[str, Any]]]] = []

    def add(rows: list[dict[str, Any]], group: str) -> None:
        members = [{"id": r["id"], "name": r["display_name"], "profession": r["profession"]}
                   for r in rows if r["id"] not in seen]
        seen.update(m["id"] for m in members)
        if members:
            out.append((group, members))

    for profession, plural in ((Profession.NURSE, "Nurses"), (Profession.TECH, "Techs")):
        if department is not None:
            add(directory.search_people(session=session, limit=300, query=directory.PersonQuery(
                profession=profession.value, department_id=department.id)), f"{plural} of {department.name}")
    floats = sorted({v.person_id for v in on_board} - seen)
    add([p for p in (_person_row(session, pid) for pid in floats) if p is not None], "Also on this board")
    if find.strip():
        for profession in (Profession.NURSE, Profession.TECH):
            add(directory.search_people(session=session, limit=20, query=directory.PersonQuery(
                q=find, profession=profession.value)), f"Found for “{find.strip()}”")
    return out


def _person_row(session: Session, person_id: int) -> dict[str, Any] | None:
    person = directory.get_person(session=session, person_id=person_id)
    if not person.active:
        return None
    return {"id": person.id, "display_name": person.display_name, "profession": person.profession}


def _shifts(board: staffing.Board) -> tuple[Shift, Shift]:
    tz = board.settings.timezone
    return Shift(board.shift_start, board.shift_end, tz), next_shift(board.settings, board.at)


def _board_context(session: Session, clock: Clock, viewer: Viewer, unit_code: str) -> dict[str, Any]:
    now = clock.now()
    now_board = staffing.board(session=session, clock=clock, actor=viewer.actor, unit=unit_code, at=now)
    current, coming = _shifts(now_board)
    next_board = staffing.board(session=session, clock=clock, actor=viewer.actor, unit=unit_code,
                                at=coming.starts_at)
    names = viewer.has(*CARE)
    census = {(r.room, r.bed): r for r in patients.census(session=session, clock=clock, actor=viewer.actor,
                                                           unit_code=now_board.unit.code)[1]} if names else {}
    now_named, next_named = Named(session, now_board), Named(session, next_board)
    beds = _bed_rows(now_named, next_named, census)
    conflicts = staffing.list_conflicts(session=session, unit=now_board.unit.code)
    return {
        "unit": now_board.unit, "tz": ZoneInfo(now_board.settings.timezone), "zone": now_board.settings.timezone,
        "current": current, "coming": coming, "sources": SOURCES,
        "beds": beds, "roles": _role_rows(now_named, next_named), "conflicts": conflicts,
        "names": names, "may_manage": staffing.may_manage(session=session, actor=viewer.actor, unit=now_board.unit,
                                                           at=now),
        "missing_now": [b for b in beds if b.now.missing], "missing_next": [b for b in beds if b.next.missing],
        "refresh": REFRESH_SECONDS, "event": BOARD_CHANGED,
    }


def _page(request: Request, session: Session, clock: Clock, viewer: Viewer, unit_code: str, *,
          form: AssignForm | None = None, notice: Notice | None = None, error: str | None = None, find: str = "",
          focus: str | None = None, status_code: int = 200) -> Response:
    context = _board_context(session, clock, viewer, unit_code)
    on_board = [v for b in context["beds"] for c in (b.now, b.next) for v in c.assignments] + [
        v for r in context["roles"] for c in (r.now, r.next) for v in c.assignments]
    return render(request, "staffing/board.html", viewer=viewer, session=session, status_code=status_code,
                  form=form or AssignForm(), notice=notice, error=error, find=find, focus=focus,
                  units=patients.list_units(session=session),
                  people=_candidates(session, context["unit"], on_board, find), care_roles=LABELS,
                  nurse_roles=" ".join(r.value for r in NURSE_ROLES), **context)


# -- pages ----------------------------------------------------------------------------------------

@router.get("/staffing", response_class=HTMLResponse)
def units_page(request: Request, session: DbSession, actor: Actor = allow(*BOARD_USERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    return render(request, "staffing/units.html", viewer=viewer, session=session,
                  units=patients.list_units(session=session), mine={u.code for u in viewer.charge_units})


def _notice(session: Session, done: str, item_id: int | None) -> Notice | None:
    if item_id is None or done not in ("assigned", "unchanged", "ended", "resolved"):
        return None
    if done == "resolved":
        return Notice(f"Conflict {item_id} marked as reviewed.")
    [view] = staffing.views(session, [staffing.get_assignment(session=session, assignment_id=item_id)])
    what = f"{view.person_name} as {view.role_label} of {view.target}"
    if done == "ended":
        return Notice(f"Ended {what}." if view.ends_at > view.starts_at else f"Cancelled {what}.")
    return Notice(f"Assigned {what} for {view.window}." if done == "assigned"
                  else f"Already assigned: {what} for {view.window}.")


@router.get("/staffing/{unit}", response_class=HTMLResponse)
def board_page(unit: str, request: Request, session: DbSession, clock: ClockDep, target: str = "",
               shift: str = "current", role: str = "", find: str = "", done: str = "",
               item_id: Annotated[str, Query(alias="id")] = "", actor: Actor = allow(*BOARD_USERS)) -> Response:
    """``done`` and ``id``: what the form just did (after its redirect), said once at the top."""
    viewer = viewer_of(request, session, actor)
    form = AssignForm(target=target, shift=shift if shift in SHIFTS else "current",
                      role=role or CareRole.PRIMARY_NURSE.value)
    focus = "person_id" if "target" in request.query_params or find else None
    return _page(request, session, clock, viewer, unit, form=form, find=find, focus=focus,
                 notice=_notice(session, done, optional_int(item_id)))


@router.get("/staffing/{unit}/fragment", response_class=HTMLResponse)
def board_fragment(unit: str, request: Request, session: DbSession, clock: ClockDep,
                   actor: Actor = allow(*BOARD_USERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    return fragment(request, "staffing/_board.html", viewer=viewer, **_board_context(session, clock, viewer, unit))


def _after(unit: Unit, done: str, item_id: int, anchor: str = "") -> RedirectResponse:
    return back_to(f"/staffing/{unit.code}?done={done}&id={item_id}" + (f"#{anchor}" if anchor else ""))


def _web_words(message: str) -> str:
    """The service speaks to API clients; on the page the same choice is a checkbox."""
    return message.replace("send replace=true", "tick “Replace whoever holds it”")


@router.post("/staffing/{unit}/assign", response_class=HTMLResponse)
def assign(unit: str, request: Request, session: DbSession, clock: ClockDep,
           role: Annotated[str, Form(max_length=40)], target: Annotated[str, Form(max_length=50)] = "",
           person_id: Annotated[str, Form(max_length=20)] = "", shift: Annotated[str, Form(max_length=10)] = "current",
           replace: Annotated[str, Form(max_length=5)] = "", actor: Actor = form_allow(*BOARD_USERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    found = staffing.get_unit(session, unit)
    form = AssignForm(target=target, role=role, shift=shift, replace=replace == "true")
    room, _, bed = target.partition("/")
    try:
        form.person_id = optional_int(person_id)
        if form.person_id is None:
            raise Invalid("choose who to assign", field="person_id")
        if shift not in SHIFTS:
            raise Invalid("choose this shift or the next", field="starts_at")
        coming = next_shift(staffing.settings_of(session, found), clock.now())
        with session.begin_nested():
            change = staffing.assign(session=session, clock=clock, actor=actor, replace=form.replace,
                                     item=staffing.AssignmentIn(
                                         unit=found.code, role=role, person_id=form.person_id, room=room, bed=bed,
                                         starts_at=coming.starts_at if shift == "next" else None))
    except (Invalid, Conflict) as exc:
        form.error, form.error_field = _web_words(exc.message), FIELD_OF.get(exc.field or "", "target")
        return _page(request, session, clock, viewer, found.code, form=form,
                     status_code=409 if isinstance(exc, Conflict) else 422)
    assert change.assignment is not None
    anchor = f"bed-{room}-{bed}" if room and bed else "unit-staff"
    return _after(found, "assigned" if change.outcome == "created" else "unchanged", change.assignment.id, anchor)


@router.post("/staffing/{unit}/end", response_class=HTMLResponse)
def end(unit: str, request: Request, session: DbSession, clock: ClockDep,
        assignment_id: Annotated[int, Form()], actor: Actor = form_allow(*BOARD_USERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    found = staffing.get_unit(session, unit)
    row = staffing.get_assignment(session=session, assignment_id=assignment_id)
    if row.unit_id != found.id:
        raise Invalid(f"assignment {assignment_id} is not on {found.code}", field="assignment_id")
    try:
        with session.begin_nested():
            staffing.end_assignment(session=session, clock=clock, actor=actor, assignment_id=assignment_id,
                                    reason=f"ended on the board by {actor.username}")
    except (Invalid, Conflict) as exc:
        return _page(request, session, clock, viewer, found.code, error=exc.message, status_code=422)
    return _after(found, "ended", assignment_id)


@router.post("/staffing/{unit}/copy-shift", response_class=HTMLResponse)
def copy_shift(unit: str, request: Request, session: DbSession, clock: ClockDep,
               into: Annotated[str, Form(max_length=10)] = "next",
               source_shift: Annotated[str, Form(max_length=20)] = "previous",
               actor: Actor = form_allow(*BOARD_USERS)) -> Response:
    """Answers with the board itself, so the charge nurse sees what could not be copied and why; a
    resubmitted form copies nothing twice (a repeat of an assignment changes nothing)."""
    viewer = viewer_of(request, session, actor)
    found = staffing.get_unit(session, unit)
    try:
        with session.begin_nested():
            report = staffing.copy_shift(session=session, clock=clock, actor=actor, unit=found.code, into=into,
                                         source_shift=source_shift)
    except (Invalid, Conflict) as exc:
        return _page(request, session, clock, viewer, found.code, error=exc.message, status_code=422)
    tz = staffing.settings_of(session, found).timezone
    source, target = Shift(report.source_start, report.source_end, tz), Shift(report.target_start,
                                                                               report.target_end, tz)
    notice = Notice(f"Copied {len(report.copied)} assignment(s) from {source.label} into {target.label}."
                    + (f" {len(report.skipped)} could not be copied:" if report.skipped else ""),
                    [f"{s['target']}: {s['reason']}" for s in report.skipped])
    return _page(request, session, clock, viewer, found.code, notice=notice)


@router.post("/staffing/{unit}/conflicts/{conflict_id}/resolve", response_class=HTMLResponse)
def resolve_conflict(unit: str, conflict_id: int, request: Request, session: DbSession, clock: ClockDep,
                     note: Annotated[str, Form(max_length=500)] = "",
                     actor: Actor = form_allow(*BOARD_USERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    found = staffing.get_unit(session, unit)
    try:
        if not note.strip():
            raise Invalid("say what you did about it", field="note")
        with session.begin_nested():
            row = staffing.resolve_conflict(session=session, clock=clock, actor=actor, conflict_id=conflict_id,
                                            note=note.strip())
            if row.unit_id != found.id:
                raise Invalid(f"it is not a conflict of {found.code}", field="conflict_id")
    except (Invalid, Conflict) as exc:
        return _page(request, session, clock, viewer, found.code, error=f"Conflict {conflict_id}: {exc.message}",
                     status_code=422)
    return _after(found, "resolved", conflict_id, "conflicts")

