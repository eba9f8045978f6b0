"""Finding a patient to talk about: by MRN or by name, and the units whose census can be shown.

Clients need a patient picker ("which patient is this message about?"); the census needs the list
of units. A search returns patient data, so it is audited like any read of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from carerelay.audit.service import record
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.patients.models import Encounter, EncounterStatus, Patient, Unit


@dataclass(frozen=True)
class Found:
    patient_id: int
    mrn: str
    name: str
    birth_date: str
    location: str


def list_units(*, session: Session) -> list[Unit]:
    return list(session.execute(select(Unit).order_by(Unit.code, Unit.id)).scalars())


def search_patients(*, session: Session, clock: Clock, actor: Actor, query: str, limit: int = 20) -> list[Found]:
    """An exact MRN, or name prefixes ("doe", "doe ja", "jane doe"); merged records lead nowhere
    (their survivor is found instead)."""
    words = [w for w in query.lower().replace(",", " ").split() if w]
    if not words:
        raise Invalid("type an MRN or a name", field="q")
    family, given = func.lower(Patient.family_name), func.lower(Patient.given_name)
    if len(words) == 1:
        condition = or_(Patient.mrn == query.strip(), family.startswith(words[0], autoescape=True),
                        given.startswith(words[0], autoescape=True))
    else:
        a, b = words[0], words[1]
        condition = or_((family.startswith(a, autoescape=True) & given.startswith(b, autoescape=True)),
                        (given.startswith(a, autoescape=True) & family.startswith(b, autoescape=True)))
    patients = list(session.execute(
        select(Patient).where(condition, Patient.merged_into_id.is_(None))
        .order_by(Patient.family_name, Patient.given_name, Patient.id).limit(limit)).scalars())
    locations: dict[int, str] = {}
    if patients:
        for enc in session.execute(select(Encounter).where(
                Encounter.patient_id.in_([p.id for p in patients]), Encounter.status == EncounterStatus.ACTIVE)
                .order_by(Encounter.id)).scalars():
            locations[enc.patient_id] = enc.location
    found = [Found(patient_id=p.id, mrn=p.mrn, name=f"{p.family_name}, {p.given_name}".strip(", "),
                   birth_date=p.birth_date.isoformat() if p.birth_date else "", location=locations.get(p.id, ""))
             for p in patients]
    record(session=session, clock=clock, actor=actor, action="patient.search", object_type="patient",
           detail={"query": query, "results": len(found)})
    return found
