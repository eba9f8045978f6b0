"""Patient routes (reads and writes audited in the service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.patients import service
from carerelay.patients.schemas import PatientIn, PatientOut

router = APIRouter(prefix="/api/patients", tags=["patients"])

CARE_TEAM = (Role.CLINICIAN, Role.NURSE, Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)


@router.post("", response_model=PatientOut, status_code=status.HTTP_201_CREATED)
def create_patient(
    body: PatientIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*CARE_TEAM)
) -> PatientOut:
    return PatientOut.model_validate(service.create_patient(session=session, clock=clock, actor=actor,
                                                            **body.model_dump()))


@router.get("", response_model=PatientOut)
def find_patient(session: DbSession, clock: ClockDep, mrn: Annotated[str, Query(min_length=1, max_length=60)],
                 actor: Actor = signed_in()) -> PatientOut:
    return PatientOut.model_validate(service.find_by_mrn(session=session, clock=clock, actor=actor, mrn=mrn))


@router.get("/{patient_id}", response_model=PatientOut)
def read_patient(patient_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> PatientOut:
    return PatientOut.model_validate(service.read_patient(session=session, clock=clock, actor=actor,
                                                          patient_id=patient_id))
