"""The simulated hospital: the demo health system grown to the census a run asks for.

Everything is made through the services an administrator, a scheduler and a charge nurse use, so the
simulation runs on data the platform itself accepted. The demo hospital is loaded a few days before the
simulated day (its own staff assignments are history by then, as after a real hand-over); then come
wards of 40 beds with their departments and nurses' groups, enough synthetic nurses and techs for a
day and a night team on every unit, a nurse-call server for the units beyond 4 West, the published
on-call schedules of every month the run touches, two attendings' personal routing rules (a night hold
and an off-duty forward) and the boards of the shift in progress.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.demo import DEMO_PEOPLE, EMAIL_DOMAIN, UNITS, DemoPerson, load_demo
from carerelay.directory import service as directory
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.demo import DEMO_SECURITY_CODE
from carerelay.jobs import service as jobs
from carerelay.patients import service as patients
from carerelay.routing import service as routing
from carerelay.scheduling.demo import load_demo_schedules
from carerelay.scheduling.timeline import zone
from carerelay.staffing import service as staffing
from carerelay.staffing.shifts import Shift, shift_at

MAIN_SITE = "MAINHOSP"
DEMO_KINDS = {"4W": "ward", "ICU": "icu", "ED": "ed"}
RATIO = {"icu": 2, "ed": 3, "ward": 5}
"""Beds per bedside nurse."""
BEDS_PER_TECH = 20
WARD_ROOMS = 20
DEMO_LEAD = timedelta(days=3)
NURSE_CALL_SENDER = "nursecall-main"
"""4 West has the demo's own nurse-call server; every other unit is on this one."""

GIVEN = ("Alex", "Bianca", "Caleb", "Delia", "Emeka", "Fatima", "Gideon", "Hana", "Ivo", "Jade", "Kofi", "Lucia",
         "Mateo", "Nadia", "Oskar", "Paloma", "Quinn", "Reza", "Selma", "Tobias", "Uma", "Viktor", "Wren", "Ximena",
         "Yara", "Zane", "Amira", "Bruno", "Celeste", "Dmitri", "Esme")
FAMILY = ("Abbott", "Barros", "Castillo", "Dahl", "Ekwueme", "Farouk", "Gallo", "Haines", "Iwu", "Jovanovic",
          "Kaur", "Lindgren", "Mwangi", "Nilsen", "Osei", "Pereira", "Quist", "Rasmussen", "Sokolov", "Tanaka",
          "Ueda", "Varga", "Whelan", "Xu", "Yilmaz", "Zubiri", "Acosta", "Brandt", "Cardenas", "Doyle", "Engel")


@dataclass(frozen=True)
class BedRef:
    unit: str
    room: str
    bed: str
    facility: str
    kind: str  # ward | icu | ed

    @property
    def code(self) -> str:
        """As nurse-call and telemetry servers name it (a WCTP recipient id)."""
        return f"{self.unit}-{self.room}-{self.bed}"


@dataclass(frozen=True)
class Clinician:
    person_id: int
    username: str
    roles: frozenset[str]
    profession: str
    npi: str | None = None
    family: str = ""
    given: str = ""

    @property
    def actor(self) -> Actor:
        return Actor(person_id=self.person_id, username=self.username, roles=self.roles)


@dataclass(frozen=True)
class Team:
    """One unit's shift: the charge nurse, each bedside nurse with their beds, the techs."""

    charge: Clinician
    nurses: tuple[tuple[Clinician, tuple[BedRef, ...]], ...]
    techs: tuple[Clinician, ...]

    def nurse_of(self, bed: BedRef) -> Clinician:
        for nurse, beds in self.nurses:
            if bed in beds:
                return nurse
        return self.charge


@dataclass
class Hospital:
    zone: str
    beds: tuple[BedRef, ...]
    zones: dict[str, str]
    teams: dict[tuple[str, str], Team]
    attendings: dict[str, tuple[Clinician, ...]]
    people: dict[int, Clinician] = field(default_factory=dict)
    operators: frozenset[int] = frozenset()

    @property
    def units(self) -> list[str]:
        return list(dict.fromkeys(b.unit for b in self.beds))

    def team(self, unit: str, shift_kind: str) -> Team:
        return self.teams[(unit, shift_kind)]


def shift_kind(shift: Shift) -> str:
    """Day or night, by the local hour the shift starts (as the demo's charge nurses plan)."""
    return "day" if shift.starts_at.astimezone(zone(shift.timezone)).hour < 12 else "night"


@dataclass(frozen=True)
class _UnitSpec:
    code: str
    kind: str
    facility: str
    beds: tuple[tuple[str, str], ...]


def _ward_specs(count: int) -> list[tuple[str, str, list[str]]]:
    """Wards of 20 two-bed rooms, two per floor from the 5th: 5E (rooms 501–520), 5W (521–540)…"""
    specs = []
    for n in range(count):
        floor, west = 5 + n // 2, n % 2 == 1
        first = 21 if west else 1
        rooms = [f"{floor}{r:02d}" for r in range(first, first + WARD_ROOMS)]
        specs.append((f"{floor}{'W' if west else 'E'}", f"{floor} {'West' if west else 'East'} Medical-Surgical",
                      rooms))
    return specs


def _share(sizes: list[int], wanted: int) -> list[int]:
    """``wanted`` beds spread over units in proportion to their size (largest remainder), so a small
    census still has a ward, an ICU and an emergency department."""
    total = sum(sizes)
    exact = [wanted * s / total for s in sizes]
    taken = [min(s, math.floor(e)) for s, e in zip(sizes, exact, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - taken[i], reverse=True)
    for i in order:
        if sum(taken) >= wanted:
            break
        if taken[i] < sizes[i]:
            taken[i] += 1
    return taken


def _demo_ids(session: Session) -> dict[str, int]:
    ids = {}
    for p in DEMO_PEOPLE:
        person = directory.find_person_by(session=session, field="username", value=p.username)
        if person is not None:
            ids[p.username] = person.id
    return ids


def _clinician(p: DemoPerson, person_id: int) -> Clinician:
    return Clinician(person_id, p.username, frozenset(p.roles), p.profession, p.npi, p.family, p.given)


class _Staffer:
    """Synthetic nurses and techs, numbered per unit, each with an app and a phone contact point."""

    def __init__(self, session: Session, clock: FakeClock, actor: Actor) -> None:
        self.session, self.clock, self.actor = session, clock, actor
        self.made = 0

    def person(self, unit: str, department_id: int, profession: str, n: int) -> Clinician:
        self.made += 1
        given, family = GIVEN[self.made % len(GIVEN)], FAMILY[(self.made * 7) % len(FAMILY)]
        short = "rn" if profession == "nurse" else "pct"
        username = f"sim-{unit.lower()}-{short}{n:02d}"
        roles = ["nurse"] if profession == "nurse" else ["clinician"]
        person = directory.create_person(session=self.session, clock=self.clock, actor=self.actor, data={
            "username": username, "given_name": given, "family_name": family,
            "title": "RN" if profession == "nurse" else None, "profession": profession,
            "department_id": department_id, "email": f"{username}@{EMAIL_DOMAIN}", "roles": roles,
            "unique_id": f"SIM-{unit}-{short.upper()}{n:02d}"})
        for kind, value in (("app", f"app:{username}"), ("phone", f"x{7000 + self.made}")):
            directory.add_contact_point(session=self.session, clock=self.clock, actor=self.actor,
                                        person_id=person.id, kind=kind, value=value)
        return Clinician(person.id, username, frozenset(roles), profession, None, family, given)


def _teams(unit: _UnitSpec, beds: list[BedRef], nurses: list[Clinician],
           techs: list[Clinician]) -> dict[tuple[str, str], Team]:
    ratio = RATIO[unit.kind]
    chunks = [tuple(beds[i:i + ratio]) for i in range(0, len(beds), ratio)]
    per_shift = 1 + len(chunks)
    tech_count = max(1, math.ceil(len(beds) / BEDS_PER_TECH))
    out = {}
    for index, kind in enumerate(("day", "night")):
        crew = nurses[index * per_shift:(index + 1) * per_shift]
        out[(unit.code, kind)] = Team(charge=crew[0], nurses=tuple(zip(crew[1:], chunks, strict=True)),
                                      techs=tuple(techs[index * tech_count:(index + 1) * tech_count]))
    return out


def _units(session: Session, clock: FakeClock, actor: Actor, beds_wanted: int) -> list[_UnitSpec]:
    specs = [_UnitSpec(code, DEMO_KINDS[code], site, tuple((r, b) for r in rooms for b in letters))
             for site, _, code, _, rooms, letters in UNITS]
    short = beds_wanted - sum(len(s.beds) for s in specs)
    site = next(s for s in directory.list_sites(session=session) if s.code == MAIN_SITE)
    for code, name, rooms in _ward_specs(max(0, math.ceil(short / (2 * WARD_ROOMS)))):
        department = directory.create_department(session=session, clock=clock, actor=actor, site_id=site.id,
                                                 code=code, name=name)
        patients.create_unit(session=session, clock=clock, actor=actor, site_id=site.id, department_id=department.id,
                             code=code, name=name, rooms=rooms, beds_per_room=("A", "B"))
        specs.append(_UnitSpec(code, "ward", MAIN_SITE, tuple((r, b) for r in rooms for b in "AB")))
    return specs


def _paging(session: Session, clock: FakeClock, actor: Actor) -> None:
    paging.create_sender(session=session, clock=clock, actor=actor, sender_id=NURSE_CALL_SENDER,
                         security_code=DEMO_SECURITY_CODE, channels=["wctp"], label="Main Hospital nurse call server",
                         timezone="America/Chicago")
    escalation: dict[str, Any] = {"steps": [{"address": "target:", "wait_minutes": 3},
                                            {"address": "location:{unit}/charge_nurse", "wait_minutes": 3}],
                                  "repeat": 1, "fallback": "group:OPERATORS"}
    paging.create_rule(session=session, clock=clock, actor=actor, name="Nurse call (main)", alert_kind="nurse_call",
                       position=61, sender_id=NURSE_CALL_SENDER, tone="nurse-call", escalation=escalation)


PERSONAL_RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    # The README's example: routine pages from nurses after 22:00 wait until 07:00 (STAT never waits).
    ("hpark", {"priorities": ["routine"], "sender_types": ["nurse"], "window_start": "22:00", "window_end": "07:00",
               "action": "hold", "hold_until": "07:00", "rank": 10}),
    # Off the schedule, whatever reaches Dr. Bell goes to the hospitalist on now.
    ("mbell", {"on_duty": False, "action": "forward", "forward_to": "role:Hospitalist", "rank": 10}),
)


def _personal_rules(session: Session, clock: FakeClock, people: dict[int, Clinician], ids: dict[str, int]) -> None:
    """Two attendings set "My rules" as clinicians do, so holds (across the DST night) and forwards run too."""
    for username, data in PERSONAL_RULES:
        person = people[ids[username]]
        routing.create_rule(session=session, clock=clock, actor=person.actor, data=data, person_id=person.person_id)


def _groups(session: Session, clock: FakeClock, actor: Actor, unit: _UnitSpec, department_id: int,
            nurses: list[Clinician]) -> None:
    """Lethal-rhythm alarms go to ``group:<unit>-NURSES`` at their second step: every unit needs one."""
    code = f"{unit.code}-NURSES"
    existing = next((g for g in directory.list_groups(session=session) if g.code == code), None)
    if existing is None:
        directory.create_group(session=session, clock=clock, actor=actor, kind="group", code=code,
                               name=f"{unit.code} Nurses", department_id=department_id,
                               member_ids=[n.person_id for n in nurses])
        return
    members = set(directory.group_member_ids(session=session, group_id=existing.id))
    for nurse in nurses:
        if nurse.person_id not in members:
            directory.add_group_member(session=session, clock=clock, actor=actor, group_id=existing.id,
                                       person_id=nurse.person_id)


def _months(first: datetime, last: datetime) -> list[datetime]:
    out, at = [], first.replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    while at <= last:
        out.append(at)
        at = (at + timedelta(days=32)).replace(day=1)
    return out


def build(*, db: Database, start: datetime, until: datetime, beds: int, actor: Actor) -> Hospital:
    """The hospital for a run from ``start`` to ``until`` (UTC) with a census of ``beds`` beds, and the
    boards of the shift in progress at ``start``."""
    with db.unit_of_work() as session:
        load_demo(session=session, clock=FakeClock(start - DEMO_LEAD), actor=actor)
    # The demo's hand-over timers are days overdue by now: fire them as a node coming back would,
    # just before the day begins, so the day starts with every timer on time.
    jobs.fire_due(db=db, clock=FakeClock(start - timedelta(seconds=1)))
    clock = FakeClock(start)
    with db.unit_of_work() as session:
        ids = _demo_ids(session)
        for month in _months(start - timedelta(days=1), until):
            load_demo_schedules(session=session, clock=FakeClock(month.replace(tzinfo=UTC)), actor=actor,
                                people=ids, count=lambda _: None)
        specs = _units(session, clock, actor, beds)
        shares = _share([len(s.beds) for s in specs], beds)
        staffer = _Staffer(session, clock, actor)
        departments = {d.code: d.id for d in directory.list_departments(session=session)}
        hospital = Hospital(zone=zone_of(session, MAIN_SITE), beds=(), zones={}, teams={}, attendings={})
        all_beds: list[BedRef] = []
        for spec, taken in zip(specs, shares, strict=True):
            if not taken:
                continue
            unit_beds = [BedRef(spec.code, room, bed, spec.facility, spec.kind) for room, bed in spec.beds[:taken]]
            all_beds.extend(unit_beds)
            hospital.zones[spec.code] = zone_of(session, spec.facility)
            chunks = math.ceil(len(unit_beds) / RATIO[spec.kind])
            dept = departments[spec.code]
            nurses = [_clinician(p, ids[p.username]) for p in DEMO_PEOPLE
                      if p.profession == "nurse" and p.department == spec.code]
            nurses += [staffer.person(spec.code, dept, "nurse", n + 1) for n in range(2 * (1 + chunks) - len(nurses))]
            tech_count = 2 * max(1, math.ceil(len(unit_beds) / BEDS_PER_TECH))
            techs = [_clinician(p, ids[p.username]) for p in DEMO_PEOPLE
                     if p.profession == "tech" and p.department == spec.code]
            techs += [staffer.person(spec.code, dept, "tech", n + 1) for n in range(tech_count - len(techs))]
            hospital.teams.update(_teams(spec, unit_beds, nurses, techs))
            _groups(session, clock, actor, spec, dept, nurses)
            for person in nurses + techs:
                hospital.people[person.person_id] = person
        hospital.beds = tuple(all_beds)
        _paging(session, clock, actor)
        for p in DEMO_PEOPLE:
            hospital.people.setdefault(ids[p.username], _clinician(p, ids[p.username]))
        physicians = {dept: tuple(_clinician(p, ids[p.username]) for p in DEMO_PEOPLE
                                  if p.profession == "physician" and p.department == dept)
                      for dept in ("HOSP", "CARD", "ICU", "ED")}
        hospital.attendings = {"ward": physicians["HOSP"] + physicians["CARD"][:2], "icu": physicians["ICU"],
                               "ed": physicians["ED"]}
        hospital.operators = frozenset(ids[p.username] for p in DEMO_PEOPLE if "operator" in p.roles)
        _personal_rules(session, clock, hospital.people, ids)
    for unit in hospital.units:
        post_board(db=db, clock=clock, hospital=hospital, unit=unit, upcoming=False)
    return hospital


def zone_of(session: Session, site_code: str) -> str:
    return next(s.timezone for s in directory.list_sites(session=session) if s.code == site_code)


def post_board(*, db: Database, clock: FakeClock, hospital: Hospital, unit: str, upcoming: bool = True) -> Shift:
    """The charge nurse of the shift posts its whole board (``assign_many``, as the board's PUT does):
    the next shift's by default, or the one in progress."""
    with db.unit_of_work() as session:
        found = staffing.get_unit(session, unit)
        settings = staffing.settings_of(session, found)
        now = clock.now()
        shift = shift_at(settings, shift_at(settings, now).ends_at if upcoming else now)
        team = hospital.team(unit, shift_kind(shift))
        staffing.assign_many(session=session, clock=clock, actor=team.charge.actor,
                             items=board_items(unit, team, shift))
    return shift


def board_items(unit: str, team: Team, shift: Shift) -> Sequence[staffing.AssignmentIn]:
    starts, ends = shift.starts_at, shift.ends_at
    items = [staffing.AssignmentIn(unit=unit, role="charge_nurse", person_id=team.charge.person_id, starts_at=starts,
                                   ends_at=ends)]
    items += [staffing.AssignmentIn(unit=unit, role="primary_nurse", person_id=nurse.person_id, room=bed.room,
                                    bed=bed.bed, starts_at=starts, ends_at=ends)
              for nurse, beds in team.nurses for bed in beds]
    items += [staffing.AssignmentIn(unit=unit, role="tech", person_id=tech.person_id, starts_at=starts, ends_at=ends)
              for tech in team.techs]
    return items
