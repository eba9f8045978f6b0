"""Shift hand-over on durable timers: each unit that uses staff assignments has two pending timers.

- ``staffing.preshift_check``, ``flag_minutes_before`` (default 30) before each shift change: occupied
  beds (the ADT census) with no primary nurse for the coming shift, and a coming shift with no charge
  nurse, are flagged to the unit's charge nurse in one alert (``location:<unit>/charge_nurse``, so an
  unstaffed unit still reaches the escalation fallback).
- ``staffing.shift_change`` at each change: assignments made for the shift that ends (their end is the
  change) are over unless renewed for the next one; the hand-over is recorded (ended, renewed,
  continuing, beds still without a primary nurse) and audited.

Each handler re-arms its own next timer, so a unit's chain never breaks; a node that was down fires
the overdue ones once on restart and re-arms from now. Timers are keyed per unit
(``staffing:unit:<id>:change|check``) and ``ensure_timers`` (called whenever an assignment is made)
adds whichever is missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.audit import service as audit
from carerelay.core.actor import SYSTEM
from carerelay.core.clock import Clock
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.patients import service as patients
from carerelay.patients.models import Unit
from carerelay.staffing import lookup, watch
from carerelay.staffing.models import CareRole, StaffAssignment, StaffingHandover
from carerelay.staffing.shifts import UnitSettings, next_change, settings_for, shift_at

CHANGE_TIMER = "staffing.shift_change"
CHECK_TIMER = "staffing.preshift_check"


def timer_key(unit_id: int, kind: str) -> str:
    return f"staffing:unit:{unit_id}:{kind}"


def _schedule_change(session: Session, clock: Clock, settings: UnitSettings, after: datetime) -> None:
    change_at = next_change(settings, after)
    jobs.schedule(session=session, clock=clock, kind=CHANGE_TIMER, due_at=change_at,
                  params={"unit_id": settings.unit_id, "change_at": change_at.isoformat()},
                  key=timer_key(settings.unit_id, "change"))


def _schedule_check(session: Session, clock: Clock, settings: UnitSettings, after: datetime) -> None:
    """The check before the first change whose check time is still ahead."""
    lead = timedelta(minutes=settings.flag_minutes_before)
    change_at = next_change(settings, after)
    while change_at - lead <= after:
        change_at = next_change(settings, change_at)
    jobs.schedule(session=session, clock=clock, kind=CHECK_TIMER, due_at=change_at - lead,
                  params={"unit_id": settings.unit_id, "change_at": change_at.isoformat()},
                  key=timer_key(settings.unit_id, "check"))


def ensure_timers(*, session: Session, clock: Clock, unit: Unit) -> None:
    settings = settings_for(session, unit)
    now = clock.now()
    if not jobs.pending(session=session, key=timer_key(unit.id, "change")):
        _schedule_change(session, clock, settings, now)
    if not jobs.pending(session=session, key=timer_key(unit.id, "check")):
        _schedule_check(session, clock, settings, now)


def reschedule(*, session: Session, clock: Clock, unit: Unit) -> None:
    """New shift times: the pending timers follow them."""
    jobs.cancel(session=session, clock=clock, key=timer_key(unit.id, "change"))
    jobs.cancel(session=session, clock=clock, key=timer_key(unit.id, "check"))
    ensure_timers(session=session, clock=clock, unit=unit)


def unassigned_beds(session: Session, unit: Unit, at: datetime) -> list[str]:
    """Occupied beds with no primary nurse (bed, room or unit level) at ``at``."""
    occupied = patients.occupied_beds(session=session, unit_id=unit.id)
    if not occupied:
        return []
    nurses = lookup.active_at(session, at=at, unit_id=unit.id, role=CareRole.PRIMARY_NURSE.value)
    if any(n.bed_id is None and not n.room for n in nurses):
        return []
    rooms = {n.room for n in nurses if n.bed_id is None}
    beds = {n.bed_id for n in nurses if n.bed_id is not None}
    return [lookup.place(unit.code, b.room, b.bed) for b in patients.unit_beds(session=session, unit_id=unit.id)
            if b.id in occupied and b.id not in beds and b.room not in rooms]


@jobs.HANDLERS.register(CHECK_TIMER)
def on_preshift_check(session: Session, clock: Clock, timer: Timer) -> None:
    unit = session.get(Unit, timer.params["unit_id"])
    if unit is None:
        return
    settings = settings_for(session, unit)
    change_at = datetime.fromisoformat(timer.params["change_at"])
    now = clock.now()
    coming = shift_at(settings, change_at)
    missing = unassigned_beds(session, unit, change_at)
    no_charge = not lookup.charge_nurses(session, unit_id=unit.id, at=change_at)
    if (missing or no_charge) and change_at > now:
        ref = f"preshift:{unit.code}:{change_at.isoformat()}"
        if alerts.find_by_source(session=session, source="staffing", source_ref=ref) is None:
            lines = []
            if missing:
                lines.append(f"{len(missing)} occupied bed(s) have no primary nurse for {coming.label}: "
                             + ", ".join(missing))
            if no_charge:
                lines.append(f"No charge nurse is assigned for {coming.label}.")
            lines.append(f"Assign them on the board, or copy last shift's assignments "
                         f"(POST /api/staffing/units/{unit.code}/copy-shift).")
            alerts.raise_alert(
                session=session, clock=clock, actor=SYSTEM, kind="staffing_unassigned", priority="urgent",
                title=f"{unit.code} {coming.label}: {len(missing)} unassigned occupied bed(s)"
                      + (", no charge nurse" if no_charge else ""),
                body="\n".join(lines), address=f"location:{unit.code}/charge_nurse", source="staffing",
                source_ref=ref, department_id=unit.department_id,
                data={"unit": unit.code, "beds": missing, "no_charge_nurse": no_charge,
                      "shift_start": change_at.isoformat()})
    audit.record(session=session, clock=clock, actor=SYSTEM, action="staffing.preshift_check", object_type="unit",
                 object_id=unit.id, detail={"unit": unit.code, "shift": coming.describe(), "unassigned": missing,
                                            "no_charge_nurse": no_charge})
    _schedule_check(session, clock, settings, max(now, change_at - timedelta(minutes=settings.flag_minutes_before)))


@jobs.HANDLERS.register(CHANGE_TIMER)
def on_shift_change(session: Session, clock: Clock, timer: Timer) -> None:
    unit = session.get(Unit, timer.params["unit_id"])
    if unit is None:
        return
    settings = settings_for(session, unit)
    change_at = datetime.fromisoformat(timer.params["change_at"])
    now = clock.now()
    ended = list(session.execute(select(StaffAssignment).where(
        StaffAssignment.unit_id == unit.id, StaffAssignment.ends_at == change_at,
        StaffAssignment.starts_at < change_at)).scalars())
    current = lookup.active_at(session, at=max(change_at, now), unit_id=unit.id)
    starting = {(r.person_id, r.bed_id, r.room, r.care_role) for r in current if r.starts_at >= change_at}
    renewed = sum(1 for r in ended if (r.person_id, r.bed_id, r.room, r.care_role) in starting)
    continuing = sum(1 for r in current if r.starts_at < change_at)
    missing = unassigned_beds(session, unit, max(change_at, now))
    row = StaffingHandover(unit_id=unit.id, change_at=change_at, fired_at=now, ended=len(ended) - renewed,
                           renewed=renewed, continuing=continuing, unassigned_beds=missing)
    session.add(row)
    session.flush()
    watch.board_changed(session=session, clock=clock, unit_id=unit.id)
    audit.record(session=session, clock=clock, actor=SYSTEM, action="staffing.handover", object_type="unit",
                 object_id=unit.id, detail={"unit": unit.code, "change_at": change_at.isoformat(),
                                            "ended": row.ended, "renewed": renewed, "continuing": continuing,
                                            "unassigned": missing, "handover_id": row.id})
    _schedule_change(session, clock, settings, max(now, change_at))


def list_handovers(*, session: Session, unit_id: int, limit: int = 50) -> list[StaffingHandover]:
    return list(session.execute(select(StaffingHandover).where(StaffingHandover.unit_id == unit_id)
                                .order_by(StaffingHandover.change_at.desc()).limit(limit)).scalars())
