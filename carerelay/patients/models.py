"""Patients and where they lie: sites' units, rooms and beds.

Encounters and care teams arrive with the HL7 interfaces; until then a patient is created through
the API so a conversation can carry its context.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(60), unique=True)
    family_name: Mapped[str] = mapped_column(String(120))
    given_name: Mapped[str] = mapped_column(String(120))
    birth_date: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


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
