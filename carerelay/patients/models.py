"""Patients, where they lie (units, rooms, beds), their encounters and care teams — fed by ADT —
and the results and orders the lab and the EHR send about them.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("site_id", "code", name="uq_units_site_code"),)


class Bed(Base):
    """A bed, named as HL7 PV1-3 names it: point of care (unit) ^ room ^ bed."""

    __tablename__ = "beds"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    room: Mapped[str] = mapped_column(String(20))
    bed: Mapped[str] = mapped_column(String(20))

    __table_args__ = (UniqueConstraint("unit_id", "room", "bed", name="uq_beds_unit_room_bed"),)


class Patient(Base):
    """A patient as ADT describes them; ``merged_into_id`` set after an A40 merge names the survivor."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(80), unique=True)
    family_name: Mapped[str] = mapped_column(String(120), default="")
    given_name: Mapped[str] = mapped_column(String(120), default="")
    middle_name: Mapped[str] = mapped_column(String(120), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(10), default="")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EncounterStatus(StrEnum):
    PREADMIT = "preadmit"
    ACTIVE = "active"  # admitted / registered: on the census of its unit
    DISCHARGED = "discharged"
    CANCELLED = "cancelled"


class Encounter(Base):
    """One visit. The previous location and status are kept so A12/A13 can really undo."""

    __tablename__ = "encounters"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    visit_number: Mapped[str | None] = mapped_column(String(80), index=True)
    patient_class: Mapped[str] = mapped_column(String(10), default="")
    status: Mapped[str] = mapped_column(String(12))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    bed_id: Mapped[int | None] = mapped_column(ForeignKey("beds.id"))
    location: Mapped[str] = mapped_column(String(120), default="")  # PV1-3 as sent: unit^room^bed
    prior_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    prior_bed_id: Mapped[int | None] = mapped_column(ForeignKey("beds.id"))
    prior_location: Mapped[str] = mapped_column(String(120), default="")
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CareTeamMember(Base):
    """Who is on a patient's care team for an encounter; unmatched providers keep their id and name."""

    __tablename__ = "care_team_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    role: Mapped[str] = mapped_column(String(60))  # attending, referring, consulting, admitting, or ROL-3 code
    role_text: Mapped[str] = mapped_column(String(120), default="")
    source: Mapped[str] = mapped_column(String(10))  # PV1-7, PV1-8, PV1-9, PV1-17, ROL
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(80), default="")
    provider_id_type: Mapped[str] = mapped_column(String(40), default="")
    provider_name: Mapped[str] = mapped_column(String(250), default="")
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Observation(Base):
    """One OBX of a result report (ORU^R01), with its order context (OBR) and critical marking."""

    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"))
    source_message_id: Mapped[int | None] = mapped_column(Integer)  # hl7_messages.id (no FK: purge keeps results)
    placer_order: Mapped[str] = mapped_column(String(80), default="")
    filler_order: Mapped[str] = mapped_column(String(80), default="")
    panel_code: Mapped[str] = mapped_column(String(80), default="")
    panel_text: Mapped[str] = mapped_column(String(200), default="")
    set_id: Mapped[str] = mapped_column(String(10), default="")
    value_type: Mapped[str] = mapped_column(String(10), default="")
    code: Mapped[str] = mapped_column(String(80), default="", index=True)
    text: Mapped[str] = mapped_column(String(200), default="")
    coding_system: Mapped[str] = mapped_column(String(40), default="")
    value: Mapped[str] = mapped_column(Text, default="")
    units: Mapped[str] = mapped_column(String(60), default="")
    reference_range: Mapped[str] = mapped_column(String(60), default="")
    abnormal_flags: Mapped[str] = mapped_column(String(40), default="")
    result_status: Mapped[str] = mapped_column(String(4), default="")
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ordering_provider_id: Mapped[str] = mapped_column(String(80), default="")
    ordering_provider_name: Mapped[str] = mapped_column(String(250), default="")
    ordering_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    notes: Mapped[str] = mapped_column(Text, default="")
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    critical_reason: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Order(Base):
    """An order (ORM^O01): what, how urgent, who ordered it."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"))
    source_message_id: Mapped[int | None] = mapped_column(Integer)
    control: Mapped[str] = mapped_column(String(4), default="")  # ORC-1: NW, CA, XO…
    placer_order: Mapped[str] = mapped_column(String(80), default="", index=True)
    filler_order: Mapped[str] = mapped_column(String(80), default="")
    code: Mapped[str] = mapped_column(String(80), default="")
    text: Mapped[str] = mapped_column(String(200), default="")
    priority: Mapped[str] = mapped_column(String(20), default="")
    stat: Mapped[bool] = mapped_column(Boolean, default=False)
    ordering_provider_id: Mapped[str] = mapped_column(String(80), default="")
    ordering_provider_name: Mapped[str] = mapped_column(String(250), default="")
    ordering_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    ordered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HandoffKind(StrEnum):
    CRITICAL_RESULT = "critical_result"
    STAT_ORDER = "stat_order"
    CONSULT_ORDER = "consult_order"
    PRESENTING_PATIENT = "presenting_patient"


class ClinicalHandoff(Base):
    """A clinical event waiting for the alerts domain: written in the same transaction as its result
    or order, claimed later (``patients.service.claim_handoffs``) when alerts exist."""

    __tablename__ = "clinical_handoffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"))
    subject_type: Mapped[str] = mapped_column(String(20))  # observation | order
    subject_id: Mapped[int] = mapped_column(Integer)
    recipient_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    recipient_provider_id: Mapped[str] = mapped_column(String(80), default="")
    summary: Mapped[str] = mapped_column(String(500))
    # Who is to hear of it: "ordering", "careteam:<role>" or a routing address; commas list fallbacks.
    target: Mapped[str] = mapped_column(String(300), default="ordering")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(60))
