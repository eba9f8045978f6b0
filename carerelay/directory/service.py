"""Directory logic: people, sites, departments, groups, devices, contact points, pager numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth import service as auth_service
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.core.errors import Conflict, Invalid, NotFound
from carerelay.directory.models import (
    EXTERNAL_ID_FIELDS,
    ContactPoint,
    Department,
    Device,
    Group,
    GroupMember,
    Person,
    PersonRole,
    Site,
    VirtualPager,
)

UNIQUE_PERSON_FIELDS = ("username", *EXTERNAL_ID_FIELDS)
PAGER_TARGET_SCHEMES = ("person", "group", "team", "role")


# -- sites and departments ---------------------------------------------------------------------

def create_site(*, session: Session, clock: Clock, actor: Actor, code: str, name: str, timezone: str) -> Site:
    if session.execute(select(Site.id).where(Site.code == code)).first():
        raise Conflict(f"a site with code {code!r} already exists", field="code")
    site = Site(code=code, name=name, timezone=timezone)
    session.add(site)
    flush_or_conflict(session, f"a site with code {code!r} already exists")
    audit.record(session=session, clock=clock, actor=actor, action="directory.create_site", object_type="site",
                 object_id=site.id, detail={"code": code, "timezone": timezone})
    return site


def list_sites(*, session: Session) -> list[Site]:
    return list(session.execute(select(Site).order_by(Site.code)).scalars())


def create_department(
    *, session: Session, clock: Clock, actor: Actor, site_id: int, code: str, name: str
) -> Department:
    if session.get(Site, site_id) is None:
        raise Invalid(f"no site {site_id}", field="site_id")
    if session.execute(select(Department.id).where(Department.code == code)).first():
        raise Conflict(f"a department with code {code!r} already exists", field="code")
    dept = Department(site_id=site_id, code=code, name=name)
    session.add(dept)
    flush_or_conflict(session, f"a department with code {code!r} already exists")
    audit.record(session=session, clock=clock, actor=actor, action="directory.create_department",
                 object_type="department", object_id=dept.id, detail={"code": code})
    return dept


def list_departments(*, session: Session, site_id: int | None = None) -> list[Department]:
    query = select(Department).order_by(Department.code)
    if site_id is not None:
        query = query.where(Department.site_id == site_id)
    return list(session.execute(query).scalars())


def get_department(*, session: Session, department_id: int) -> Department:
    dept = session.get(Department, department_id)
    if dept is None:
        raise NotFound(f"no department {department_id}")
    return dept


# -- people -------------------------------------------------------------------------------------

def _check_unique_fields(session: Session, values: dict[str, Any], *, exclude_id: int | None = None) -> None:
    for field in UNIQUE_PERSON_FIELDS:
        value = values.get(field)
        if value is None:
            continue
        query = select(Person.id).where(getattr(Person, field) == value)
        if exclude_id is not None:
            query = query.where(Person.id != exclude_id)
        if session.execute(query).first():
            raise Conflict(f"another person already has {field} {value!r}", field=field)


def _check_department(session: Session, department_id: int | None) -> None:
    if department_id is not None and session.get(Department, department_id) is None:
        raise Invalid(f"no department {department_id}", field="department_id")


HONORIFICS = frozenset({"Dr.", "Dr", "Prof.", "Mr.", "Ms.", "Mrs.", "Mx."})


def display_name(given: str, family: str, title: str | None) -> str:
    """Honorifics go before the name (Dr. Gregory House), credentials after (Carol Nurse, RN)."""
    if not title:
        return f"{given} {family}"
    if title in HONORIFICS:
        return f"{title} {given} {family}"
    return f"{given} {family}, {title}"


def _apply_names(person: Person) -> None:
    person.display_name = display_name(person.given_name, person.family_name, person.title)
    person.family_key = person.family_name.lower()
    person.given_key = person.given_name.lower()


def create_person(
    *, session: Session, clock: Clock, actor: Actor, data: dict[str, Any], password: str | None = None
) -> Person:
    values = dict(data)
    values["username"] = str(values["username"]).lower()
    roles = [str(r) for r in values.pop("roles", [])]
    _check_department(session, values.get("department_id"))
    _check_unique_fields(session, values)
    now = clock.now()
    person = Person(**values, active=True, created_at=now, updated_at=now)
    _apply_names(person)
    person.roles = [PersonRole(role=r) for r in sorted(set(roles))]
    session.add(person)
    flush_or_conflict(session, "a person with one of these ids already exists")
    if password is not None:
        auth_service.set_password(session=session, person_id=person.id, password=password, clock=clock)
    audit.record(session=session, clock=clock, actor=actor, action="directory.create_person", object_type="person",
                 object_id=person.id, detail={"username": person.username, "roles": roles})
    return person


def get_person(*, session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    return person


def find_person_by(*, session: Session, field: str, value: str) -> Person | None:
    if field not in UNIQUE_PERSON_FIELDS:
        raise Invalid(f"{field!r} is not an id field; use one of {', '.join(UNIQUE_PERSON_FIELDS)}", field="field")
    return session.execute(select(Person).where(getattr(Person, field) == value)).scalar_one_or_none()


# Built once: matching an HL7 provider id runs for every result and order a feed sends.
_PERSON_ID_BY = {name: select(Person.id).where(getattr(Person, name) == bindparam("value"))
                 for name in UNIQUE_PERSON_FIELDS}


def person_id_by(*, session: Session, field: str, value: str) -> int | None:
    """``find_person_by`` for callers that need only the id (no person, no roles loaded)."""
    statement = _PERSON_ID_BY.get(field)
    if statement is None:
        raise Invalid(f"{field!r} is not an id field; use one of {', '.join(UNIQUE_PERSON_FIELDS)}", field="field")
    found: int | None = session.execute(statement, {"value": value}).scalar_one_or_none()
    return found


def update_person(
    *, session: Session, clock: Clock, actor: Actor, person_id: int, changes: dict[str, Any]
) -> Person:
    person = get_person(session=session, person_id=person_id)
    values = dict(changes)
    roles = values.pop("roles", None)
    _check_department(session, values.get("department_id"))
    _check_unique_fields(session, values, exclude_id=person_id)
    before = {k: getattr(person, k) for k in values}
    for key, value in values.items():
        setattr(person, key, value)
    if roles is not None:
        before["roles"] = sorted(person.role_names)
        person.roles = [PersonRole(role=str(r)) for r in sorted({str(r) for r in roles})]
    _apply_names(person)
    person.updated_at = clock.now()
    flush_or_conflict(session, "another person already has one of these ids")
    ended = 0
    if values.get("active") is False and before.get("active") is True:
        ended = auth_service.revoke_all_sessions(session=session, clock=clock, person_id=person_id,
                                                 reason="deactivated")
    audit.record(
        session=session, clock=clock, actor=actor, action="directory.update_person", object_type="person",
        object_id=person_id,
        detail={"before": before, "after": {**values, **({"roles": roles} if roles is not None else {})},
                "sessions_ended": ended},
    )
    return person


@dataclass(frozen=True)
class PersonQuery:
    q: str | None = None
    role: str | None = None
    profession: str | None = None
    department_id: int | None = None
    id_field: str | None = None
    id_value: str | None = None
    active: bool | None = True


def _prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    """An index range scan on both databases, unlike LIKE which SQLite cannot index case-blind."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper)


def _name_clause(q: str) -> ColumnElement[bool]:
    words = [w for w in q.lower().replace(",", " ").split() if w]
    if len(words) >= 2:
        first, second = words[0], words[1]
        return or_(
            and_(_prefix(Person.family_key, first), _prefix(Person.given_key, second)),
            and_(_prefix(Person.given_key, first), _prefix(Person.family_key, second)),
        )
    word = words[0]
    return or_(_prefix(Person.family_key, word), _prefix(Person.given_key, word))


def roles_of(*, session: Session, person_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {pid: [] for pid in person_ids}
    rows = session.execute(
        select(PersonRole.person_id, PersonRole.role).where(PersonRole.person_id.in_(person_ids))
        .order_by(PersonRole.role)
    )
    for person_id, role in rows:
        found[person_id].append(role)
    return found


def search_people(
    *, session: Session, query: PersonQuery, offset: int = 0, limit: int = 50
) -> list[dict[str, Any]]:
    """Plain rows, not ORM objects: hydrating wide Person objects cost five times the query itself."""
    stmt = select(*Person.__table__.columns)
    if query.q and query.q.strip():
        stmt = stmt.where(_name_clause(query.q))
    if query.role:
        stmt = stmt.where(exists().where(PersonRole.person_id == Person.id, PersonRole.role == query.role))
    if query.profession:
        stmt = stmt.where(Person.profession == query.profession)
    if query.department_id is not None:
        stmt = stmt.where(Person.department_id == query.department_id)
    if query.id_field:
        if query.id_field not in UNIQUE_PERSON_FIELDS:
            raise Invalid(f"{query.id_field!r} is not an id field", field="id_field")
        stmt = stmt.where(getattr(Person, query.id_field) == (query.id_value or ""))
    if query.active is not None:
        stmt = stmt.where(Person.active.is_(query.active))
    stmt = stmt.order_by(Person.family_key, Person.given_key, Person.id).offset(offset).limit(limit)
    rows = [dict(r) for r in session.execute(stmt).mappings()]
    roles = roles_of(session=session, person_ids=[r["id"] for r in rows])
    for row in rows:
        row["roles"] = roles[row["id"]]
    return rows


def count_people(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Person)).scalar_one())


# -- groups and teams --------------------------------------------------------------------------

def _check_people_exist(session: Session, person_ids: list[int]) -> None:
    if not person_ids:
        return
    found = set(session.execute(select(Person.id).where(Person.id.in_(person_ids))).scalars())
    missing = sorted(set(person_ids) - found)
    if missing:
        raise Invalid(f"no person with id {', '.join(map(str, missing))}", field="member_ids")


def create_group(
    *, session: Session, clock: Clock, actor: Actor, kind: str, code: str, name: str,
    department_id: int | None = None, description: str | None = None, member_ids: list[int] | None = None,
) -> Group:
    _check_department(session, department_id)
    if session.execute(select(Group.id).where(Group.code == code)).first():
        raise Conflict(f"a group or team with code {code!r} already exists", field="code")
    members = sorted(set(member_ids or []))
    _check_people_exist(session, members)
    group = Group(kind=kind, code=code, name=name, department_id=department_id, description=description)
    session.add(group)
    flush_or_conflict(session, f"a group or team with code {code!r} already exists")
    session.add_all(GroupMember(group_id=group.id, person_id=pid) for pid in members)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="directory.create_group", object_type="group",
                 object_id=group.id, detail={"code": code, "kind": kind, "members": members})
    return group


def rename_group(*, session: Session, clock: Clock, actor: Actor, group_id: int, name: str) -> Group:
    group = get_group(session=session, group_id=group_id)
    before = group.name
    group.name = name
    audit.record(session=session, clock=clock, actor=actor, action="directory.rename_group", object_type="group",
                 object_id=group_id, detail={"before": before, "after": name})
    return group


def get_group(*, session: Session, group_id: int) -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound(f"no group or team {group_id}")
    return group


def list_groups(*, session: Session, kind: str | None = None) -> list[Group]:
    query = select(Group).order_by(Group.code)
    if kind:
        query = query.where(Group.kind == kind)
    return list(session.execute(query).scalars())


def group_member_ids(*, session: Session, group_id: int) -> list[int]:
    rows = session.execute(
        select(GroupMember.person_id).where(GroupMember.group_id == group_id).order_by(GroupMember.person_id)
    )
    return list(rows.scalars())


def add_group_member(*, session: Session, clock: Clock, actor: Actor, group_id: int, person_id: int) -> None:
    get_group(session=session, group_id=group_id)
    get_person(session=session, person_id=person_id)
    if session.get(GroupMember, (group_id, person_id)) is None:
        session.add(GroupMember(group_id=group_id, person_id=person_id))
        session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="directory.add_group_member",
                 object_type="group", object_id=group_id, detail={"person_id": person_id})


def remove_group_member(*, session: Session, clock: Clock, actor: Actor, group_id: int, person_id: int) -> None:
    get_group(session=session, group_id=group_id)
    result = session.execute(
        delete(GroupMember).where(GroupMember.group_id == group_id, GroupMember.person_id == person_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"person {person_id} is not a member of group {group_id}")
    audit.record(session=session, clock=clock, actor=actor, action="directory.remove_group_member",
                 object_type="group", object_id=group_id, detail={"person_id": person_id})


# -- contact points and devices ----------------------------------------------------------------

def add_contact_point(
    *, session: Session, clock: Clock, actor: Actor, person_id: int, kind: str, value: str,
    label: str | None = None, rank: int = 0,
) -> ContactPoint:
    get_person(session=session, person_id=person_id)
    point = ContactPoint(person_id=person_id, kind=kind, value=value, label=label, rank=rank, active=True)
    session.add(point)
    flush_or_conflict(session, f"person {person_id} already has {kind} {value!r}")
    audit.record(session=session, clock=clock, actor=actor, action="directory.add_contact_point",
                 object_type="person", object_id=person_id, detail={"kind": kind, "value": value})
    return point


def list_contact_points(*, session: Session, person_id: int) -> list[ContactPoint]:
    get_person(session=session, person_id=person_id)
    rows = session.execute(
        select(ContactPoint).where(ContactPoint.person_id == person_id).order_by(ContactPoint.kind, ContactPoint.rank)
    )
    return list(rows.scalars())


def set_contact_point_active(
    *, session: Session, clock: Clock, actor: Actor, person_id: int, contact_point_id: int, active: bool
) -> ContactPoint:
    point = session.get(ContactPoint, contact_point_id)
    if point is None or point.person_id != person_id:
        raise NotFound(f"no contact point {contact_point_id} for person {person_id}")
    point.active = active
    audit.record(session=session, clock=clock, actor=actor, action="directory.set_contact_point_active",
                 object_type="person", object_id=person_id,
                 detail={"contact_point_id": contact_point_id, "active": active})
    return point


def register_device(
    *, session: Session, clock: Clock, actor: Actor, kind: str, identifier: str, label: str | None = None,
    person_id: int | None = None, department_id: int | None = None, shared: bool = False,
) -> Device:
    if person_id is not None:
        get_person(session=session, person_id=person_id)
    _check_department(session, department_id)
    if shared and person_id is not None:
        raise Invalid("a shared device belongs to a unit, not a person", field="person_id")
    if session.execute(select(Device.id).where(Device.identifier == identifier)).first():
        raise Conflict(f"a device {identifier!r} is already registered", field="identifier")
    device = Device(kind=kind, identifier=identifier, label=label, person_id=person_id,
                    department_id=department_id, shared=shared, active=True)
    session.add(device)
    flush_or_conflict(session, f"a device {identifier!r} is already registered")
    audit.record(session=session, clock=clock, actor=actor, action="directory.register_device",
                 object_type="device", object_id=device.id, detail={"identifier": identifier, "shared": shared})
    return device


def find_device(*, session: Session, identifier: str) -> Device:
    device = session.execute(select(Device).where(Device.identifier == identifier)).scalar_one_or_none()
    if device is None:
        raise NotFound(f"no device {identifier!r}")
    return device


def list_devices(*, session: Session, department_id: int | None = None) -> list[Device]:
    query = select(Device).order_by(Device.identifier)
    if department_id is not None:
        query = query.where(Device.department_id == department_id)
    return list(session.execute(query).scalars())


# -- virtual pager numbers ---------------------------------------------------------------------

def check_pager_target(session: Session, target: str) -> str:
    """A pager number maps to an address; people, groups and teams must exist when mapped."""
    scheme, _, ref = target.partition(":")
    if scheme not in PAGER_TARGET_SCHEMES or not ref:
        raise Invalid(f"target must be one of {', '.join(s + ':<id>' for s in PAGER_TARGET_SCHEMES)}",
                      field="target")
    if scheme == "person":
        if not ref.isdigit() or session.get(Person, int(ref)) is None:
            raise Invalid(f"no person {ref}", field="target")
    elif scheme in ("group", "team"):
        group = session.get(Group, int(ref)) if ref.isdigit() else None
        if group is None or group.kind != scheme:
            raise Invalid(f"no {scheme} {ref}", field="target")
    return target


def create_virtual_pager(
    *, session: Session, clock: Clock, actor: Actor, number: str, target: str, label: str | None = None
) -> VirtualPager:
    check_pager_target(session, target)
    if session.execute(select(VirtualPager.id).where(VirtualPager.number == number)).first():
        raise Conflict(f"pager number {number} is already assigned", field="number")
    pager = VirtualPager(number=number, target=target, label=label, active=True)
    session.add(pager)
    flush_or_conflict(session, f"pager number {number} is already assigned")
    audit.record(session=session, clock=clock, actor=actor, action="directory.create_virtual_pager",
                 object_type="virtual_pager", object_id=pager.id, detail={"number": number, "target": target})
    return pager


def list_virtual_pagers(*, session: Session) -> list[VirtualPager]:
    return list(session.execute(select(VirtualPager).order_by(VirtualPager.number)).scalars())


def retarget_virtual_pager(
    *, session: Session, clock: Clock, actor: Actor, number: str, target: str
) -> VirtualPager:
    pager = session.execute(select(VirtualPager).where(VirtualPager.number == number)).scalar_one_or_none()
    if pager is None:
        raise NotFound(f"no pager number {number}")
    check_pager_target(session, target)
    before = pager.target
    pager.target = target
    audit.record(session=session, clock=clock, actor=actor, action="directory.retarget_virtual_pager",
                 object_type="virtual_pager", object_id=pager.id, detail={"before": before, "after": target})
    return pager
