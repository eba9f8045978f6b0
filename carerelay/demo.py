"""The demo hospital: synthetic, deterministic, and consistent with ../shared/samples.

Loaded through the same services an administrator uses, so the demo exercises real code paths
and its changes are audited. Every item is found by its natural key first, so loading twice
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.auth.service import hash_password, set_password_hash
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.directory import service as directory
from carerelay.directory.models import (
    ContactPoint,
    Department,
    Device,
    Group,
    Person,
    Site,
    VirtualPager,
)
from carerelay.escalation.demo import load_demo_policies
from carerelay.integrations.exports.demo import load_demo_connectors
from carerelay.integrations.paging.demo import load_demo_paging
from carerelay.patients.models import Bed, Unit
from carerelay.scheduling.demo import load_demo_schedules
from carerelay.staffing.demo import load_demo_assignments

DEMO_PASSWORD = "carerelay-demo"
EMAIL_DOMAIN = "demo-health.example"

SITES = [
    ("MAINHOSP", "Main Hospital", "America/Chicago"),
    ("EASTCAMPUS", "East Campus", "America/New_York"),
]

DEPARTMENTS = [
    ("CARD", "Cardiology", "MAINHOSP"),
    ("HOSP", "Hospital Medicine", "MAINHOSP"),
    ("4W", "4 West Medical-Surgical", "MAINHOSP"),
    ("ICU", "Intensive Care Unit", "MAINHOSP"),
    ("NEURO", "Neurology", "EASTCAMPUS"),
    ("ED", "Emergency Department", "EASTCAMPUS"),
]

UNITS = [
    # site, department, unit code, name, rooms, beds per room
    ("MAINHOSP", "4W", "4W", "4 West", [f"4{n:02d}" for n in range(1, 21)], ["A", "B"]),
    ("MAINHOSP", "ICU", "ICU", "Intensive Care Unit", [str(n) for n in range(1, 13)], ["A"]),
    ("EASTCAMPUS", "ED", "ED", "Emergency Department", [f"E{n}" for n in range(1, 11)], ["A"]),
]


@dataclass(frozen=True)
class DemoPerson:
    username: str
    given: str
    family: str
    profession: str
    department: str | None
    roles: tuple[str, ...]
    title: str | None = None
    npi: str | None = None
    unique_id: str | None = None
    ehr_username: str | None = None
    personnel_type: str = "non_exempt"
    extra: dict[str, str] = field(default_factory=dict)


def _people() -> list[DemoPerson]:
    people = [
        # Named by the shared HL7 samples: attending (PV1-7), referring, consulting, and the ROL nurse.
        DemoPerson("ghouse", "Gregory", "House", "physician", "HOSP", ("clinician",), "Dr.", npi="1234567890",
                   ehr_username="GHOUSE", personnel_type="exempt"),
        DemoPerson("jwilson", "James", "Wilson", "physician", "CARD", ("clinician",), "Dr.", npi="2345678901",
                   ehr_username="JWILSON", personnel_type="exempt"),
        DemoPerson("lcuddy", "Lisa", "Cuddy", "physician", "HOSP", ("clinician",), "Dr.", npi="3456789012",
                   ehr_username="LCUDDY", personnel_type="exempt"),
        DemoPerson("cnurse", "Carol", "Nurse", "nurse", "4W", ("nurse",), "RN", unique_id="N777",
                   ehr_username="CNURSE"),
    ]
    physicians = {
        "CARD": [("Amara", "Okafor"), ("Daniel", "Reyes"), ("Priya", "Natarajan"), ("Tomas", "Lindqvist")],
        "HOSP": [("Helen", "Park"), ("Marcus", "Bell"), ("Sofia", "Marchetti"), ("Owen", "Fitzgerald")],
        "NEURO": [("Ingrid", "Halvorsen"), ("Samuel", "Adeyemi"), ("Lena", "Kowalski"), ("Rafael", "Ortiz")],
        "ED": [("Grace", "Whitfield"), ("Yusuf", "Demir"), ("Nora", "Brennan")],
        "ICU": [("Victor", "Almeida"), ("Chloe", "Dubois")],
    }
    npi = 1000000100
    for dept, names in physicians.items():
        for given, family in names:
            npi += 7
            people.append(DemoPerson(f"{given[0]}{family}".lower(), given, family, "physician", dept,
                                     ("clinician",), "Dr.", npi=str(npi), ehr_username=f"{given[0]}{family}".upper(),
                                     personnel_type="exempt"))
    residents = [("CARD", "Ethan", "Cole"), ("HOSP", "Mia", "Santos"), ("NEURO", "Jonah", "Weiss")]
    for dept, given, family in residents:
        npi += 7
        people.append(DemoPerson(f"{given[0]}{family}".lower(), given, family, "resident", dept, ("clinician",),
                                 "Dr.", npi=str(npi), ehr_username=f"{given[0]}{family}".upper()))
    nurses = {
        "4W": [("Dana", "Whitaker"), ("Luis", "Ferreira"), ("Beth", "Morrow"), ("Kwame", "Asante"),
               ("Rosa", "Jimenez"), ("Tara", "Quinn"), ("Felix", "Baptiste"), ("Greta", "Olsen")],
        "ICU": [("Hannah", "Lee"), ("Peter", "Novak"), ("Aisha", "Rahman"), ("Colin", "Murphy"),
                ("Elena", "Petrova"), ("Omar", "Haddad")],
        "ED": [("Jamal", "Greene"), ("Kira", "Sato"), ("Martin", "Vogel"), ("Ines", "Duarte"), ("Paul", "Renner")],
    }
    nurse_no = 800
    for dept, names in nurses.items():
        for given, family in names:
            nurse_no += 1
            people.append(DemoPerson(f"{given[0]}{family}".lower(), given, family, "nurse", dept, ("nurse",), "RN",
                                     unique_id=f"N{nurse_no}", ehr_username=f"{given[0]}{family}".upper()))
    techs = [("4W", "Leo", "Hartmann"), ("4W", "Maya", "Singh"), ("ICU", "Noah", "Fischer"),
             ("ED", "Zoe", "Carter"), ("ICU", "Ruth", "Abrams"),
             ("4W", "Ada", "Mercer"), ("ED", "Ben", "Ochoa"), ("NEURO", "Lila", "Grant")]
    for dept, given, family in techs:
        people.append(DemoPerson(f"{given[0]}{family}".lower(), given, family, "tech", dept, ("clinician",),
                                 unique_id=f"T{len(people):03d}"))
    staff: list[tuple[str, str, str, str, str | None, tuple[str, ...]]] = [
        ("ooperator", "Olive", "Operator", "operator", None, ("operator",)),
        ("tmoreno", "Teresa", "Moreno", "operator", None, ("operator",)),
        ("bkim", "Brian", "Kim", "operator", None, ("operator",)),
        ("sscheduler", "Sam", "Scheduler", "scheduler", "CARD", ("scheduler",)),
        ("jpatel", "Jaya", "Patel", "scheduler", "HOSP", ("scheduler",)),
        ("rnguyen", "Ravi", "Nguyen", "scheduler", "NEURO", ("scheduler",)),
        ("iadmin", "Ivan", "Integration", "admin", None, ("integration_admin",)),
        ("admin", "Ada", "Admin", "admin", None, ("system_admin",)),
        ("ccompliance", "Clara", "Compliance", "compliance", None, ("compliance_officer",)),
    ]
    for username, given, family, profession, home, roles in staff:
        people.append(DemoPerson(username, given, family, profession, home, roles, personnel_type="exempt"))
    return people


DEMO_PEOPLE = _people()

GROUPS = [
    # kind, code, name, department, member usernames (None: every person of the department)
    ("group", "CARD-PHYS", "Cardiology Physicians", "CARD", None),
    ("group", "HOSP-PHYS", "Hospitalists", "HOSP", None),
    ("group", "NEURO-PHYS", "Neurology Physicians", "NEURO", None),
    ("group", "4W-NURSES", "4 West Nurses", "4W", None),
    ("group", "ICU-NURSES", "ICU Nurses", "ICU", None),
    # Every unit with telemetry needs its <unit>-NURSES: the "Lethal rhythm" rule's second step is that group.
    ("group", "ED-NURSES", "Emergency Department Nurses", "ED", ["jgreene", "ksato", "mvogel", "iduarte", "prenner"]),
    ("group", "OPERATORS", "Hospital Operators", None, ["ooperator", "tmoreno", "bkim"]),
    ("group", "INTEGRATION-ADMINS", "Integration Administrators", None, ["iadmin", "admin"]),
    ("team", "CODE-BLUE", "Code Blue Team", "ICU", ["valmeida", "hlee", "pnovak", "gwhitfield", "nfischer"]),
    ("team", "RAPID-RESPONSE", "Rapid Response Team", "ICU", ["cdubois", "arahman", "cmurphy"]),
    ("team", "STROKE", "Stroke Team", "NEURO", ["ihalvorsen", "sadeyemi", "jgreene"]),
    # Charge nurses and unit techs, for nurse-call routing (until staff assignments name them per shift).
    ("group", "4W-CHARGE", "4 West Charge Nurse", "4W", ["dwhitaker"]),
    ("group", "ICU-CHARGE", "ICU Charge Nurse", "ICU", ["pnovak"]),
    ("group", "4W-TECHS", "4 West Techs", "4W", ["lhartmann", "msingh", "amercer"]),
    ("group", "ICU-TECHS", "ICU Techs", "ICU", ["nfischer", "rabrams"]),
]

PAGERS = [
    # number, target address (a group or team code is looked up), label
    ("5551234", "role:Neurology On Call", "Neurology on call (legacy pager)"),
    ("5552000", "role:Cardiology On Call", "Cardiology on call (legacy pager)"),
    ("5553333", "CODE-BLUE", "Code Blue"),
]


@dataclass
class LoadReport:
    created: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        self.created[kind] = self.created.get(kind, 0) + 1


def load_demo(*, session: Session, clock: Clock, actor: Actor) -> LoadReport:
    report = LoadReport()
    sites: dict[str, int] = {}
    for code, name, tz in SITES:
        site = session.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
        if site is None:
            site = directory.create_site(session=session, clock=clock, actor=actor, code=code, name=name, timezone=tz)
            report.add("sites")
        sites[code] = site.id
    depts: dict[str, int] = {}
    for code, name, site_code in DEPARTMENTS:
        dept = session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
        if dept is None:
            dept = directory.create_department(session=session, clock=clock, actor=actor, site_id=sites[site_code],
                                               code=code, name=name)
            report.add("departments")
        depts[code] = dept.id
    _load_locations(session, sites, depts, report)
    people = _load_people(session, clock, actor, depts, report)
    _load_groups(session, clock, actor, depts, people, report)
    _load_devices(session, clock, actor, depts, people, report)
    load_demo_schedules(session=session, clock=clock, actor=actor, people=people, count=report.add)
    load_demo_connectors(session=session, clock=clock, actor=actor, count=report.add)
    load_demo_assignments(session=session, clock=clock, actor=actor, count=report.add)
    load_demo_paging(session=session, clock=clock, actor=actor, count=report.add)
    load_demo_policies(session=session, clock=clock, actor=actor, count=report.add)
    return report


def _load_locations(session: Session, sites: dict[str, int], depts: dict[str, int], report: LoadReport) -> None:
    for site_code, dept_code, unit_code, name, rooms, beds in UNITS:
        unit = session.execute(
            select(Unit).where(Unit.site_id == sites[site_code], Unit.code == unit_code)
        ).scalar_one_or_none()
        if unit is None:
            unit = Unit(site_id=sites[site_code], department_id=depts[dept_code], code=unit_code, name=name)
            session.add(unit)
            session.flush()
            session.add_all(Bed(unit_id=unit.id, room=room, bed=bed) for room in rooms for bed in beds)
            session.flush()
            report.add("units")


def _load_people(
    session: Session, clock: Clock, actor: Actor, depts: dict[str, int], report: LoadReport
) -> dict[str, int]:
    ids: dict[str, int] = {}
    shared_hash = hash_password(DEMO_PASSWORD)
    for n, p in enumerate(DEMO_PEOPLE):
        existing = session.execute(select(Person).where(Person.username == p.username)).scalar_one_or_none()
        if existing is not None:
            ids[p.username] = existing.id
            continue
        data: dict[str, object] = {
            "username": p.username, "given_name": p.given, "family_name": p.family, "title": p.title,
            "profession": p.profession, "department_id": depts[p.department] if p.department else None,
            "email": f"{p.username}@{EMAIL_DOMAIN}", "roles": list(p.roles), "npi": p.npi,
            "unique_id": p.unique_id or f"U{10000 + n}", "ehr_username": p.ehr_username,
            "personnel_type": p.personnel_type, "kronos_id": f"K{50000 + n}",
            "ms_upn": f"{p.username}@{EMAIL_DOMAIN}", "home_cost_center": f"CC-{p.department or 'ADMIN'}",
        }
        if p.profession == "physician":
            data["epic_ser_id"] = f"SER{700 + n}"
        person = directory.create_person(session=session, clock=clock, actor=actor, data=data)
        set_password_hash(session=session, person_id=person.id, password_hash=shared_hash, clock=clock)
        ids[p.username] = person.id
        report.add("people")
        _add_contacts(session, clock, actor, person, n, report)
    return ids


def _add_contacts(session: Session, clock: Clock, actor: Actor, person: Person, n: int, report: LoadReport) -> None:
    points: list[tuple[str, str, str]] = [
        ("app", f"app:{person.username}", "carerelay app"),
        ("email", person.email or f"{person.username}@{EMAIL_DOMAIN}", "work e-mail"),
        ("phone", f"x{4000 + n}", "desk extension"),
    ]
    if person.profession in ("physician", "resident"):
        points.append(("sms", f"+1555010{n:04d}", "mobile"))
        points.append(("pager", f"555{7000 + n}", "personal pager"))
    for kind, value, label in points:
        exists = session.execute(select(ContactPoint.id).where(
            ContactPoint.person_id == person.id, ContactPoint.kind == kind, ContactPoint.value == value)).first()
        if not exists:
            directory.add_contact_point(session=session, clock=clock, actor=actor, person_id=person.id, kind=kind,
                                        value=value, label=label)
            report.add("contact_points")


def _load_groups(
    session: Session, clock: Clock, actor: Actor, depts: dict[str, int], people: dict[str, int], report: LoadReport
) -> None:
    groups: dict[str, Group] = {}
    for kind, code, name, dept, members in GROUPS:
        group = session.execute(select(Group).where(Group.code == code)).scalar_one_or_none()
        if group is None:
            if members is None:
                member_ids = [people[p.username] for p in DEMO_PEOPLE
                              if p.department == dept and p.profession in ("physician", "resident", "nurse")]
            else:
                member_ids = [people[u] for u in members]
            group = directory.create_group(session=session, clock=clock, actor=actor, kind=kind, code=code,
                                           name=name, department_id=depts[dept] if dept else None,
                                           member_ids=member_ids)
            report.add("groups" if kind == "group" else "teams")
        groups[code] = group
    for number, target, label in PAGERS:
        if session.execute(select(VirtualPager.id).where(VirtualPager.number == number)).first():
            continue
        if ":" not in target:
            target = f"{groups[target].kind}:{groups[target].id}"
        directory.create_virtual_pager(session=session, clock=clock, actor=actor, number=number, target=target,
                                       label=label)
        report.add("virtual_pagers")


def _load_devices(
    session: Session, clock: Clock, actor: Actor, depts: dict[str, int], people: dict[str, int], report: LoadReport
) -> None:
    devices: list[tuple[str, str, str, str | None, str | None, bool]] = [
        ("smartphone", "4W-SHARED-01", "4 West shared phone 1", None, "4W", True),
        ("smartphone", "4W-SHARED-02", "4 West shared phone 2", None, "4W", True),
        ("smartphone", "ICU-SHARED-01", "ICU shared phone 1", None, "ICU", True),
        ("badge", "BADGE-CNURSE", "Vocera-style badge", "cnurse", "4W", False),
        ("smartphone", "PHONE-GHOUSE", "Personal phone", "ghouse", "HOSP", False),
        ("pager", "PAGER-JWILSON", "Alphanumeric pager", "jwilson", "CARD", False),
        ("workstation", "WS-OPERATOR-1", "Switchboard console", "ooperator", None, False),
    ]
    for kind, identifier, label, owner, dept, shared in devices:
        if session.execute(select(Device.id).where(Device.identifier == identifier)).first():
            continue
        directory.register_device(session=session, clock=clock, actor=actor, kind=kind, identifier=identifier,
                                  label=label, person_id=people[owner] if owner else None,
                                  department_id=depts[dept] if dept else None, shared=shared)
        report.add("devices")
