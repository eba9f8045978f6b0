"""The demo hospital's staff assignments: the shift in progress and the next one on 4W, the ICU and the ED.

Made as each unit's charge nurse would make them, through ``service.apply`` (validated, audited,
hand-over timers armed), relative to the clock so the demo always has someone at the bedside now.
4W-412-B has Carol Nurse (N777) on days and Luis Ferreira on nights; ICU-2-A has Hannah Lee on days.
Beds nobody is assigned to are on purpose: their calls go to the charge nurse. Loading again in the
same shift changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.directory.models import Person
from carerelay.scheduling.timeline import zone
from carerelay.staffing import service
from carerelay.staffing.models import CareRole, Source
from carerelay.staffing.shifts import Shift, next_shift, shift_at

Beds = list[tuple[str, str]]


def _beds(rooms: list[str], letters: str = "AB") -> Beds:
    return [(room, bed) for room in rooms for bed in letters]


# unit: {"day" | "night": (charge nurse, [(nurse, beds)], [techs])}
PLAN: dict[str, dict[str, tuple[str, list[tuple[str, Beds]], list[str]]]] = {
    "4W": {
        "day": ("dwhitaker", [("cnurse", _beds(["411", "412"])), ("bmorrow", _beds(["413", "414"])),
                              ("rjimenez", _beds(["415", "416"]))], ["lhartmann", "msingh"]),
        "night": ("golsen", [("lferreira", _beds(["411", "412"])), ("tquinn", _beds(["413", "414"])),
                             ("fbaptiste", _beds(["415", "416"]))], ["amercer"]),
    },
    "ICU": {
        "day": ("pnovak", [("hlee", _beds(["1", "2"], "A")), ("arahman", _beds(["3", "4"], "A"))], ["nfischer"]),
        "night": ("cmurphy", [("epetrova", _beds(["1", "2"], "A")), ("ohaddad", _beds(["3", "4"], "A"))],
                  ["rabrams"]),
    },
    "ED": {
        "day": ("jgreene", [("ksato", _beds(["E1", "E2", "E3"], "A"))], ["zcarter"]),
        "night": ("prenner", [("mvogel", _beds(["E1", "E2", "E3"], "A"))], ["bochoa"]),
    },
}


def _kind(shift: Shift) -> str:
    return "day" if shift.starts_at.astimezone(zone(shift.timezone)).hour < 12 else "night"


def load_demo_assignments(*, session: Session, clock: Clock, actor: Actor, count: Callable[[str], None]) -> None:
    people = {p.username: p for p in session.execute(select(Person)).scalars()}
    now = clock.now()
    for unit_code, shifts in PLAN.items():
        unit = service.get_unit(session, unit_code)
        settings = service.settings_of(session, unit)
        current = shift_at(settings, now)
        for shift in (current, next_shift(settings, now)):
            charge, nurses, techs = shifts[_kind(shift)]
            boss = people[charge]
            batch = service.new_batch("demo")
            plan: list[tuple[str, CareRole, str, str]] = [(charge, CareRole.CHARGE_NURSE, "", "")]
            plan += [(nurse, CareRole.PRIMARY_NURSE, room, bed) for nurse, beds in nurses for room, bed in beds]
            plan += [(tech, CareRole.TECH, "", "") for tech in techs]
            for username, role, room, bed in plan:
                target = service.check_target(session, unit=unit_code, room=room, bed=bed, role=role)
                proposal = service.Proposal(
                    target=target, person=people[username], role=role, starts_at=shift.starts_at,
                    ends_at=shift.ends_at, source=Source.MANUAL.value,
                    origin=f"assigned by charge nurse {boss.display_name}" if username != charge
                    else "assigned by the nursing supervisor", batch=batch, assigned_by_id=boss.id)
                change = service.apply(session=session, clock=clock, actor=actor, proposal=proposal,
                                       settings=settings)
                if change.outcome == "created":
                    count("staff_assignments")
