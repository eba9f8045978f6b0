"""Patients: created by hand until the ADT feed fills the census. Every read and write is audited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.core.errors import Conflict, NotFound
from carerelay.patients.models import Patient


def create_patient(
    *, session: Session, clock: Clock, actor: Actor, mrn: str, family_name: str, given_name: str,
    birth_date: str | None = None,
) -> Patient:
    if session.execute(select(Patient.id).where(Patient.mrn == mrn)).first():
        raise Conflict(f"a patient with MRN {mrn} already exists", field="mrn")
    patient = Patient(mrn=mrn, family_name=family_name, given_name=given_name, birth_date=birth_date,
                      created_at=clock.now())
    session.add(patient)
    flush_or_conflict(session, f"a patient with MRN {mrn} already exists")
    audit.record(session=session, clock=clock, actor=actor, action="patient.create", object_type="patient",
                 object_id=patient.id, detail={"mrn": mrn})
    return patient


def read_patient(*, session: Session, clock: Clock, actor: Actor, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient {patient_id}")
    audit.record(session=session, clock=clock, actor=actor, action="patient.read", object_type="patient",
                 object_id=patient_id)
    return patient


def find_by_mrn(*, session: Session, clock: Clock, actor: Actor, mrn: str) -> Patient:
    patient = session.execute(select(Patient).where(Patient.mrn == mrn)).scalar_one_or_none()
    if patient is None:
        raise NotFound(f"no patient with MRN {mrn}")
    audit.record(session=session, clock=clock, actor=actor, action="patient.read", object_type="patient",
                 object_id=patient.id, detail={"by": "mrn"})
    return patient
