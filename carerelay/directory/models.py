"""People and the structures that reach them: sites, departments, groups, devices, contact points.

External ids live as columns on ``Person`` (not a key/value table) because exports and feeds
match on them constantly and each needs its own unique index.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carerelay.core.db import Base, UTCDateTime


class Role(StrEnum):
    """What a signed-in person may do (RBAC); distinct from their profession."""

    CLINICIAN = "clinician"
    NURSE = "nurse"
    OPERATOR = "operator"
    SCHEDULER = "scheduler"
    INTEGRATION_ADMIN = "integration_admin"
    COMPLIANCE_OFFICER = "compliance_officer"
    SYSTEM_ADMIN = "system_admin"


class Profession(StrEnum):
    PHYSICIAN = "physician"
    APP = "app"
    RESIDENT = "resident"
    NURSE = "nurse"
    TECH = "tech"
    OPERATOR = "operator"
    SCHEDULER = "scheduler"
    ADMIN = "admin"
    COMPLIANCE = "compliance"


class PersonnelType(StrEnum):
    EXEMPT = "exempt"
    NON_EXEMPT = "non_exempt"


class GroupKind(StrEnum):
    GROUP = "group"
    TEAM = "team"


class ContactKind(StrEnum):
    APP = "app"
    SMS = "sms"
    PAGER = "pager"
    PHONE = "phone"
    EMAIL = "email"


class DeviceKind(StrEnum):
    SMARTPHONE = "smartphone"
    PAGER = "pager"
    BADGE = "badge"
    WORKSTATION = "workstation"


EXTERNAL_ID_FIELDS = (
    "unique_id",
    "custom1",
    "custom2",
    "custom3",
    "custom4",
    "ehr_username",
    "npi",
    "epic_ser_id",
    "ms_upn",
    "kronos_id",
)
"""Columns that identify a person in another system; each is unique when present."""


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    site: Mapped[Site] = relationship(lazy="joined")


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    given_name: Mapped[str] = mapped_column(String(120))
    family_name: Mapped[str] = mapped_column(String(120))
    display_name: Mapped[str] = mapped_column(String(250))
    title: Mapped[str | None] = mapped_column(String(60))
    profession: Mapped[str] = mapped_column(String(30))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lower-cased copies that make prefix search an index range scan on both databases.
    family_key: Mapped[str] = mapped_column(String(120), index=True)
    given_key: Mapped[str] = mapped_column(String(120), index=True)

    unique_id: Mapped[str | None] = mapped_column(String(120), unique=True)
    custom1: Mapped[str | None] = mapped_column(String(120), unique=True)
    custom2: Mapped[str | None] = mapped_column(String(120), unique=True)
    custom3: Mapped[str | None] = mapped_column(String(120), unique=True)
    custom4: Mapped[str | None] = mapped_column(String(120), unique=True)
    ehr_username: Mapped[str | None] = mapped_column(String(120), unique=True)
    npi: Mapped[str | None] = mapped_column(String(10), unique=True)
    epic_ser_id: Mapped[str | None] = mapped_column(String(120), unique=True)
    ms_upn: Mapped[str | None] = mapped_column(String(254), unique=True)
    kronos_id: Mapped[str | None] = mapped_column(String(120), unique=True)
    home_cost_center: Mapped[str | None] = mapped_column(String(60))
    away_cost_center: Mapped[str | None] = mapped_column(String(60))
    personnel_type: Mapped[str | None] = mapped_column(String(20))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    department: Mapped[Department | None] = relationship()
    roles: Mapped[list[PersonRole]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="PersonRole.role"
    )

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)


class PersonRole(Base):
    __tablename__ = "person_roles"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_person_roles_role", "role"),)


class Group(Base):
    """A group (people addressed together) or a team (a standing response team, e.g. Code Blue)."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    description: Mapped[str | None] = mapped_column(String(500))


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_group_members_person", "person_id"),)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ContactPoint(Base):
    """One way to reach a person; ``rank`` orders them within a kind (lower first)."""

    __tablename__ = "contact_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(254))
    label: Mapped[str | None] = mapped_column(String(120))
    rank: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("person_id", "kind", "value", name="uq_contact_points_person_kind_value"),)


class VirtualPager(Base):
    """A pager number a department keeps, mapped to whatever should answer it (an address)."""

    __tablename__ = "virtual_pagers"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    target: Mapped[str] = mapped_column(String(200))
    label: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
