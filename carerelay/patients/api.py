"""Patient routes: census per unit, a patient, their care team and results (every read audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.core.errors import Invalid
from carerelay.directory.models import Role
from carerelay.patients import service
from carerelay.patients.schemas import (
    CareTeamMemberOut,
    CensusOut,
    CensusRowOut,
    EncounterOut,
    ObservationOut,
    PatientIn,
    PatientOut,
)

router = APIRouter(prefix="/api", tags=["patients"])

CARE = (Role.CLINICIAN, Role.NURSE, Role.OPERATOR, Role.SYSTEM_ADMIN)
REGISTRARS = (Role.CLINICIAN, Role.NURSE, Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)


@router.post("/patients", response_model=PatientOut, status_code=status.HTTP_201_CREATED)
def register_patient(body: PatientIn, session: DbSession, clock: ClockDep,
                     actor: Actor = allow(*REGISTRARS)) -> PatientOut:
    demographics = service.Demographics(mrn=body.mrn, family=body.family_name, given=body.given_name,
                                        birth_date=body.birth_date, sex=body.sex)
    return PatientOut.model_validate(service.register_patient(session=session, clock=clock, actor=actor,
                                                              demographics=demographics))


@router.get("/units/{unit_code}/census", response_model=CensusOut)
def census(unit_code: str, session: DbSession, clock: ClockDep, actor: Actor = allow(*CARE)) -> CensusOut:
    unit, rows = service.census(session=session, clock=clock, actor=actor, unit_code=unit_code)
    return CensusOut(unit=unit.code, unit_name=unit.name,
                     patients=[CensusRowOut.model_validate(r.__dict__) for r in rows])


def _patient_out(session: DbSession, clock: ClockDep, actor: Actor, *, patient_id: int | None,
                 mrn: str | None) -> PatientOut:
    patient, enc = service.access_patient(session=session, clock=clock, actor=actor, patient_id=patient_id, mrn=mrn)
    out = PatientOut.model_validate(patient)
    out.encounter = EncounterOut.model_validate(enc) if enc else None
    return out


@router.get("/patients", response_model=PatientOut)
def find_patient(session: DbSession, clock: ClockDep, mrn: Annotated[str, Query(min_length=1, max_length=80)] = "",
                 actor: Actor = allow(*CARE)) -> PatientOut:
    if not mrn:
        raise Invalid("give mrn=", field="mrn")
    return _patient_out(session, clock, actor, patient_id=None, mrn=mrn)


@router.get("/patients/{patient_id}", response_model=PatientOut)
def get_patient(patient_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*CARE)) -> PatientOut:
    return _patient_out(session, clock, actor, patient_id=patient_id, mrn=None)


@router.get("/patients/{patient_id}/care-team", response_model=list[CareTeamMemberOut])
def care_team(patient_id: int, session: DbSession, clock: ClockDep,
              actor: Actor = allow(*CARE)) -> list[CareTeamMemberOut]:
    rows = service.care_team(session=session, clock=clock, actor=actor, patient_id=patient_id)
    return [CareTeamMemberOut.model_validate(r.__dict__) for r in rows]


@router.get("/patients/{patient_id}/results", response_model=list[ObservationOut])
def results(patient_id: int, session: DbSession, clock: ClockDep, critical: Annotated[bool, Query()] = False,
            limit: Annotated[int, Query(ge=1, le=1000)] = 200, actor: Actor = allow(*CARE)) -> list[ObservationOut]:
    rows = service.list_observations(session=session, clock=clock, actor=actor, patient_id=patient_id,
                                     critical_only=critical, limit=limit)
    return [ObservationOut.model_validate(r) for r in rows]
