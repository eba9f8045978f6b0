"""Turning an address into the people to reach now, the contact points to use, and why.

``resolve(address, at)`` never returns silence: it returns recipients *and* the chain of reasons
("group Cardiology Physicians → Dr. Amara Okafor"; "skipped Dana Whitaker: inactive"), so an empty
result can be explained, routed to a fallback and audited (style habit 9). Schemes are registered:
person, group, team, pager, role (the published schedule: first call, ``#2`` one call order,
``#all`` everyone on), scheduler (a department's schedulers), careteam (the ADT care team) and
location (staff assignments for care roles, the ADT care team for others) here; others register
themselves from their own domains (conversation from messaging).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from carerelay.core.db import driver_rows, flushed_connection, parameter_mark
from carerelay.core.errors import Invalid
from carerelay.directory.models import (
    Department,
    Group,
    GroupMember,
    Person,
    PersonRole,
    VirtualPager,
)
from carerelay.patients import service as patients
from carerelay.scheduling import lookup
from carerelay.scheduling.models import Assignment
from carerelay.staffing import lookup as staffing

MAX_DEPTH = 4
CONTACT_ORDER = {"app": 0, "sms": 1, "pager": 2, "phone": 3, "email": 4}


@dataclass(frozen=True)
class Contact:
    kind: str
    value: str


@dataclass(frozen=True)
class Recipient:
    person_id: int
    name: str
    reason: str
    contacts: tuple[Contact, ...] = ()


@dataclass
class Resolution:
    address: str
    at: datetime
    recipients: list[Recipient] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.recipients

    @property
    def person_ids(self) -> list[int]:
        return [r.person_id for r in self.recipients]

    def explain(self) -> str:
        parts = [f"{r.name}: {r.reason}" for r in self.recipients] + self.notes
        return "; ".join(parts) if parts else f"{self.address} resolved to no one"

    def as_json(self) -> dict[str, object]:
        return {"address": self.address, "at": self.at.isoformat(),
                "recipients": [{"person_id": r.person_id, "name": r.name, "reason": r.reason,
                                "contacts": [c.__dict__ for c in r.contacts]} for r in self.recipients],
                "notes": self.notes}


Scheme = Callable[[Session, str, datetime, int], Resolution]
SCHEMES: dict[str, Scheme] = {}


def scheme(name: str) -> Callable[[Scheme], Scheme]:
    def register(fn: Scheme) -> Scheme:
        SCHEMES[name] = fn
        return fn

    return register


def check_address(address: str) -> tuple[str, str]:
    name, _, ref = address.partition(":")
    if not ref or name not in SCHEMES:
        known = ", ".join(f"{s}:…" for s in sorted(SCHEMES))
        raise Invalid(f"unknown address {address!r}; use one of {known}", field="address")
    return name, ref


def resolve(session: Session, address: str, at: datetime, depth: int = 0) -> Resolution:
    if depth > MAX_DEPTH:
        return Resolution(address, at, notes=[f"{address}: pager numbers point at each other too deeply"])
    name, ref = check_address(address)
    return SCHEMES[name](session, ref, at, depth)


_PEOPLE_SQL: dict[tuple[str, int], str] = {}


def _people_sql(mark: str, count: int) -> str:
    """Name and active flag of ``count`` people with their active contact points, in one statement
    (built once per size: resolve() runs at every send and escalation step)."""
    sql = _PEOPLE_SQL.get((mark, count))
    if sql is None:
        active = "1" if mark == "?" else "true"
        sql = _PEOPLE_SQL[(mark, count)] = (
            "SELECT p.id, p.display_name, p.active, c.kind, c.value, c.rank, c.id FROM people p "
            f"LEFT JOIN contact_points c ON c.person_id = p.id AND c.active = {active} "
            f"WHERE p.id IN ({', '.join([mark] * count)})")
    return sql


def people_recipients(
    session: Session, address: str, at: datetime, reasons: list[tuple[int, str]]
) -> Resolution:
    """Active people with their contact points, in the given order; inactive ones become notes."""
    result = Resolution(address, at)
    ids = [pid for pid, _ in reasons]
    if not ids:
        return result
    # One statement straight through the driver: the people's columns (not Person objects with
    # their roles) and their active contact points, ordered here by kind, then rank.
    conn = flushed_connection(session)
    unique = tuple(set(ids))
    people: dict[int, tuple[str, bool]] = {}
    found: dict[int, list[tuple[int, int, int, Contact]]] = {}
    for pid, display_name, active, kind, value, rank, contact_id in driver_rows(
            conn, _people_sql(parameter_mark(conn), len(unique)), unique):
        people[pid] = (display_name, bool(active))
        if kind is not None:
            found.setdefault(pid, []).append((CONTACT_ORDER.get(kind, 9), rank, contact_id, Contact(kind, value)))
    seen: set[int] = set()
    for pid, reason in reasons:
        person = people.get(pid)
        if person is None or pid in seen:
            continue
        seen.add(pid)
        name, active = person
        if not active:
            result.notes.append(f"skipped {name}: inactive")
            continue
        contacts = tuple(c for *_, c in sorted(found.get(pid, ()), key=lambda t: t[:3]))
        result.recipients.append(Recipient(pid, name, reason, contacts))
    return result


@scheme("person")
def _person(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    if not ref.isdigit():
        raise Invalid(f"person:{ref} is not a person id", field="address")
    return people_recipients(session, f"person:{ref}", at, [(int(ref), "addressed directly")])


def _group(kind: str) -> Scheme:
    def resolve_group(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
        # The group and its members in one statement (a group without members gives one row).
        clause = Group.id == int(ref) if ref.isdigit() else Group.code == ref
        rows = session.execute(select(Group.kind, Group.name, GroupMember.person_id)
                               .outerjoin(GroupMember, GroupMember.group_id == Group.id).where(clause)
                               .order_by(GroupMember.person_id)).all()
        if not rows or rows[0].kind != kind:
            raise Invalid(f"no {kind} {ref}", field="address")
        name = rows[0].name
        return people_recipients(session, f"{kind}:{ref}", at, [
            (row.person_id, f"member of {kind} {name}") for row in rows if row.person_id is not None])

    return resolve_group


SCHEMES["group"] = _group("group")
SCHEMES["team"] = _group("team")


@scheme("pager")
def _pager(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    pager = session.execute(select(VirtualPager.target, VirtualPager.label, VirtualPager.active)
                            .where(VirtualPager.number == ref)).first()
    if pager is None or not pager.active:
        raise Invalid(f"no active pager number {ref}", field="address")
    inner = resolve(session, pager.target, at, depth + 1)
    label = pager.label or pager.target
    return Resolution(f"pager:{ref}", at, [
        Recipient(r.person_id, r.name, f"pager {ref} ({label}) → {r.reason}", r.contacts) for r in inner.recipients
    ], [f"pager {ref} → {n}" for n in inner.notes])


ALL_CALL_ORDERS = "all"


def _call_order(spec: str, address: str) -> int | None:
    """``#2`` → 2; ``#all`` → 0 (every call order); no ``#`` → None (the first call on now)."""
    if not spec:
        return None
    if spec.lower() == ALL_CALL_ORDERS:
        return 0
    if spec.isdigit() and int(spec) >= 1:
        return int(spec)
    raise Invalid(f"{address}: after # give a call order (1, 2, …) or 'all'", field="address")


def _on_for(session: Session, ref: str, at: datetime) -> list[lookup.OnCall]:
    """By assignment code, department code (its whole clinical coverage) or assignment name (every
    template of that name: "Cardiology On Call" day and night, first and second call)."""
    on = lookup.who_is_on_named(session=session, at=at, name=ref)
    if on is None:
        raise Invalid(f"no assignment or department {ref!r} to resolve role:{ref}", field="address")
    return on


@scheme("role")
def _role(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    """Who the published schedule has on now. ``role:<name>`` is the first call: the lowest call order
    with someone reachable on it (a hospital pages first call; second call is the back-up the
    escalation reaches). ``role:<name>#2`` is exactly call order 2; ``role:<name>#all`` is everyone
    on now, in call order."""
    name, _, spec = ref.partition("#")
    address = f"role:{ref}"
    wanted = _call_order(spec, address)
    on = _on_for(session, name, at)
    if wanted:
        on = [o for o in on if o.call_order == wanted]
    everyone = people_recipients(session, address, at, [(o.person_id, o.reason) for o in on if o.person_id is not None])
    result = Resolution(address, at, notes=everyone.notes)
    orders = {o.person_id: o.call_order for o in reversed(on) if o.person_id is not None}
    first = min((orders[r.person_id] for r in everyone.recipients), default=None)
    if wanted is None and first is not None:
        result.recipients = [r for r in everyone.recipients if orders[r.person_id] == first]
        if first > min(o.call_order for o in on):
            result.notes.append(f"{name}: no one reachable on call order {min(o.call_order for o in on)}; "
                                f"first call now is call order {first}")
        on = [o for o in on if o.call_order <= first]
    else:
        result.recipients = everyone.recipients
    result.notes.extend(f"{o.name} ({o.reason}): no person to page; call {o.contact or 'no number given'}"
                        for o in on if o.person_id is None)
    if not on:
        which = f"call order {wanted} of {name}" if wanted else address
        result.notes.append(f"{which}: no one on the published schedule at {at:%Y-%m-%d %H:%M} UTC")
    return result


# A role's department: by assignment code, else department code, else assignment name (built once:
# every alert to a role asks).
_ROLE_DEPARTMENT = (select(Assignment.department_id).where(Assignment.code == bindparam("ref")),
                    select(Department.id).where(Department.code == bindparam("ref")),
                    select(Assignment.department_id).where(func.lower(Assignment.name) == bindparam("lowered"))
                    .order_by(Assignment.call_order, Assignment.id).limit(1))


def department_of(session: Session, address: str, depth: int = 0) -> int | None:
    """The department an address belongs to (a role's, a group's), so policies can be chosen by it."""
    name, _, ref = address.partition(":")
    if name == "role":
        ref = ref.partition("#")[0]
        found = None
        params = {"ref": ref, "lowered": ref.lower()}
        for query in _ROLE_DEPARTMENT:
            found = session.execute(query, params).scalar_one_or_none()
            if found is not None:
                break
        return found
    if name in ("group", "team"):
        clause = Group.id == int(ref) if ref.isdigit() else Group.code == ref
        return session.execute(select(Group.department_id).where(clause)).scalar_one_or_none()
    if name == "pager" and depth < MAX_DEPTH:
        target = session.execute(select(VirtualPager.target).where(VirtualPager.number == ref)).scalar_one_or_none()
        return department_of(session, target, depth + 1) if target else None
    return None


@scheme("scheduler")
def _scheduler(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    """scheduler:<department code>: the people with the scheduler role in that department."""
    department = session.execute(select(Department.id, Department.name).where(Department.code == ref)).first()
    if department is None:
        raise Invalid(f"no department {ref!r} to resolve scheduler:{ref}", field="address")
    ids = session.execute(select(Person.id).join(PersonRole, PersonRole.person_id == Person.id)
                          .where(Person.department_id == department.id, PersonRole.role == "scheduler")
                          .order_by(Person.id)).scalars().all()
    return people_recipients(session, f"scheduler:{ref}", at,
                             [(pid, f"scheduler of {department.name}") for pid in ids])


def _care_team(session: Session, address: str, at: datetime, patient_ref: str, role: str) -> Resolution:
    patient = patients.find_patient(session=session, ref=patient_ref)
    if patient is None:
        raise Invalid(f"no patient {patient_ref}", field="address")
    who = f"{patient.family_name}, {patient.given_name} (MRN {patient.mrn})"
    members = patients.current_care_team(session=session, patient_id=patient.id, role=role)
    result = people_recipients(session, address, at, [
        (m.person_id, f"{m.role_text or m.role} of {who} ({m.source})") for m in members if m.person_id is not None])
    result.notes.extend(f"{m.provider_name or m.provider_id} ({m.role_text or m.role} of {who}) is not in the "
                        f"directory" for m in members if m.person_id is None)
    if not members:
        result.notes.append(f"no {role} on the current care team of {who}")
    return result


@scheme("careteam")
def _careteam(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    """careteam:<patient id or MRN>/<role>, from the ADT care team: attending, consulting, nurse…"""
    patient_ref, _, role = ref.rpartition("/")
    if not patient_ref or not role:
        raise Invalid("write careteam:<patient id or MRN>/<role>, e.g. careteam:MRN1001/attending", field="address")
    return _care_team(session, f"careteam:{ref}", at, patient_ref, role)


@scheme("location")
def _location(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    """location:<unit>/<room>/<bed>/<role> or location:<unit>/<role>. A care role (nurse, tech,
    charge_nurse…) resolves from the staff assignments in effect at ``at``, falling back to the unit's
    charge nurse; any other role (attending, consulting…) is that of the ADT care team of the patient
    in the bed now."""
    parts = ref.split("/")
    if len(parts) not in (2, 4) or not all(parts):
        raise Invalid("write location:<unit>/<room>/<bed>/<role> (e.g. location:4W/412/B/nurse) or "
                      "location:<unit>/<role> (e.g. location:4W/charge_nurse)", field="address")
    unit, role = parts[0], parts[-1]
    room, bed = (parts[1], parts[2]) if len(parts) == 4 else ("", "")
    care_role = staffing.find_role(role)
    if care_role is not None:
        answer = staffing.resolve_location(session, unit_code=unit, room=room, bed=bed, role=care_role, at=at)
        result = people_recipients(session, f"location:{ref}", at, answer.recipients)
        result.notes.extend(answer.notes)
        return result
    if len(parts) == 2:
        raise Invalid(f"{role!r} is not a care role of a unit; name a bed (location:{unit}/<room>/<bed>/{role})",
                      field="address")
    patient = patients.patient_in_bed(session=session, unit_code=unit, room=room, bed=bed)
    if patient is None:
        return Resolution(f"location:{ref}", at, notes=[f"no patient in {unit}-{room}-{bed} on the census now"])
    result = _care_team(session, f"location:{ref}", at, str(patient.id), role)
    result.recipients = [Recipient(r.person_id, r.name, f"{r.reason}, in {unit}-{room}-{bed}", r.contacts)
                         for r in result.recipients]
    return result


@scheme("all")
def _all(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    """all:<address>|<address>…: everyone each address reaches now, in order, each person once — a
    telemetry alarm to the bedside nurse and the charge nurse together."""
    parts = [p.strip() for p in ref.split("|") if p.strip()]
    if not parts:
        raise Invalid("write all:<address>|<address>, e.g. all:location:ICU/2/A/nurse|group:ICU-CHARGE",
                      field="address")
    result = Resolution(f"all:{ref}", at)
    seen: set[int] = set()
    for part in parts:
        inner = resolve(session, part, at, depth + 1)
        for recipient in inner.recipients:
            if recipient.person_id not in seen:
                seen.add(recipient.person_id)
                result.recipients.append(recipient)
        result.notes.extend(inner.notes)
        if inner.empty:
            result.notes.append(f"{part} reached no one")
    return result
