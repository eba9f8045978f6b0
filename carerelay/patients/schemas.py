"""API shapes of patients: census, patient, care team, results."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import StringConstraints

from carerelay.core.schemas import Input, Output


class CensusRowOut(Output):
    patient_id: int
    mrn: str
    name: str
    encounter_id: int
    patient_class: str
    room: str
    bed: str
    location: str
    admitted_at: datetime | None
    attending: str


class CensusOut(Output):
    unit: str
    unit_name: str
    patients: list[CensusRowOut]


class EncounterOut(Output):
    id: int
    visit_number: str | None
    patient_class: str
    status: str
    location: str
    unit_id: int | None
    bed_id: int | None
    admitted_at: datetime | None
    discharged_at: datetime | None


class PatientOut(Output):
    id: int
    mrn: str
    family_name: str
    given_name: str
    middle_name: str
    birth_date: date | None
    sex: str
    merged_into_id: int | None
    encounter: EncounterOut | None = None


class CareTeamMemberOut(Output):
    role: str
    role_text: str
    source: str
    person_id: int | None
    person_name: str | None
    provider_id: str
    provider_name: str
    starts_at: datetime | None
    ends_at: datetime | None


class ObservationOut(Output):
    id: int
    code: str
    text: str
    value: str
    units: str
    reference_range: str
    abnormal_flags: str
    result_status: str
    observed_at: datetime | None
    panel_code: str
    panel_text: str
    placer_order: str
    filler_order: str
    ordering_provider_id: str
    ordering_provider_name: str
    ordering_person_id: int | None
    critical: bool
    critical_reason: str
    notes: str


class PatientIn(Input):
    """A patient entered by hand until the ADT feed knows them."""

    mrn: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9\-_.]+$")]
    family_name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    given_name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    birth_date: date | None = None
    sex: Annotated[str, StringConstraints(max_length=10)] = ""
