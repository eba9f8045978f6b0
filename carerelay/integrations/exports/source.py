"""The published schedule as a connector sees it: mapped assignments, keyed people, and what was left out.

Reads go through the scheduling and directory services. Three lists come back besides the items:
people without a value in the connector's key field (left out, listed), assignments without a
mapping for this connector (not sent, listed), and mappings that do not validate (problems: the run
fails, because sending a file that silently lacks an assignment is worse than sending none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from carerelay.directory import service as directory
from carerelay.directory.models import EXTERNAL_ID_FIELDS, Person
from carerelay.integrations.exports.base import PersonInfo, Scheduled, Target
from carerelay.scheduling import service as scheduling
from carerelay.scheduling.models import Slot


@dataclass
class Gathered:
    items: list[Scheduled] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "mapping"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)


def _contacts(session: Session, person_id: int) -> dict[str, str]:
    found: dict[str, str] = {}
    for point in directory.list_contact_points(session=session, person_id=person_id):
        if point.active and point.kind not in found:
            found[point.kind] = point.value
    return found


def person_info(session: Session, person: Person, key: str | None) -> PersonInfo:
    ids: dict[str, str | None] = {name: getattr(person, name) for name in EXTERNAL_ID_FIELDS}
    ids["username"] = person.username
    return PersonInfo(id=person.id, username=person.username, display_name=person.display_name,
                      given_name=person.given_name, family_name=person.family_name, title=person.title,
                      key=ids.get(key) if key else None, ids=ids, email=person.email,
                      personnel_type=person.personnel_type, department_id=person.department_id,
                      home_cost_center=person.home_cost_center, away_cost_center=person.away_cost_center,
                      contacts=_contacts(session, person.id))


def gather(
    *, session: Session, target: Target, mapping_key: str, person_key: str | None,
    department_ids: list[int] | None, from_date: date, to_date: date,
) -> Gathered:
    out = Gathered()
    people: dict[int, PersonInfo] = {}
    excluded: set[int] = set()
    unmapped: set[int] = set()
    invalid: set[int] = set()
    slots = scheduling.list_published_slots(session=session, from_date=from_date, to_date=to_date,
                                            department_ids=department_ids)
    for slot in slots:
        mapping = _mapping(target, slot, mapping_key, out, unmapped, invalid)
        if mapping is None:
            continue
        info = None
        if slot.person is not None:
            info = people.get(slot.person.id)
            if info is None:
                info = people[slot.person.id] = person_info(session, slot.person, person_key)
            if target.needs_person and person_key and not info.key:
                if info.id not in excluded:
                    excluded.add(info.id)
                    out.excluded.append({"person_id": info.id, "username": info.username,
                                         "name": info.display_name, "reason": f"no {person_key}"})
                continue
        dept = slot.assignment.department
        out.items.append(Scheduled(
            slot_id=slot.id, on_date=slot.on_date, starts_at=slot.starts_at, ends_at=slot.ends_at,
            timezone=dept.site.timezone, notes=slot.notes, assignment_id=slot.assignment_id,
            assignment_code=slot.assignment.code, assignment_name=slot.assignment.name,
            assignment_kind=slot.assignment.kind, call_order=slot.assignment.call_order, department_id=dept.id,
            department_code=dept.code, department_name=dept.name, site_code=dept.site.code, mapping=mapping,
            person=info, placeholder_name=slot.placeholder_name, placeholder_contact=slot.placeholder_contact))
    return out


def _mapping(target: Target, slot: Slot, mapping_key: str, out: Gathered, unmapped: set[int],
             invalid: set[int]) -> dict[str, Any] | None:
    assignment = slot.assignment
    if target.mapping_model is None:
        return {}
    raw = (assignment.mapping or {}).get(mapping_key)
    if raw is None:
        if assignment.id not in unmapped:
            unmapped.add(assignment.id)
            out.unmapped.append({"assignment_id": assignment.id, "code": assignment.code,
                                 "reason": f"no {mapping_key} mapping"})
        return None
    try:
        if not isinstance(raw, dict):
            raise TypeError(f"the {mapping_key} mapping must be an object of fields")
        fields = target.mapping_model.model_validate(raw).model_dump()
    except (ValidationError, TypeError) as exc:
        if assignment.id not in invalid:
            invalid.add(assignment.id)
            text = validation_text(exc) if isinstance(exc, ValidationError) else str(exc)
            out.problems.append({"assignment_id": assignment.id, "code": assignment.code,
                                 "problem": f"{mapping_key} mapping: {text}"})
        return None
    if target.send_flag is not None and fields.get(target.send_flag) is False:
        if assignment.id not in unmapped:
            unmapped.add(assignment.id)
            out.unmapped.append({"assignment_id": assignment.id, "code": assignment.code,
                                 "reason": f"{mapping_key} mapping says not to send"})
        return None
    return fields
