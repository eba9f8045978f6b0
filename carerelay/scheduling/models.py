"""Scheduling tables.

Slots store their computed UTC ``starts_at``/``ends_at`` (built from the site's local wall-clock time
by ``timeline.py``) so "who is on at instant T" is an index range scan, not a time-zone calculation
per row. No shift lasts more than ``MAX_SLOT_HOURS``, which bounds the scan to
``starts_at in (T - MAX_SLOT_HOURS, T]``.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Time
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carerelay.core.db import Base, UTCDateTime
from carerelay.directory.models import Department, Person

MAX_SLOT_HOURS = 25
"""A 24 h template on the fall-back night lasts 25 h; nothing longer exists."""


class AssignmentKind(StrEnum):
    SHIFT = "shift"
    CALL = "call"
    ADMIN = "admin"
    OFF = "off"


class ScheduleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class SlotSource(StrEnum):
    MANUAL = "manual"
    CSV = "csv"
    AMION = "amion"
    QGENDA = "qgenda"
    SHIFTADMIN = "shiftadmin"


HAND_ENTERED = (SlotSource.MANUAL.value, SlotSource.CSV.value)
"""Slots a vendor sync never overwrites or removes."""


class Assignment(Base):
    """A shift template. ``end_time <= start_time`` crosses midnight; equal times mean 24 h."""

    __tablename__ = "sched_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    call_order: Mapped[int] = mapped_column(Integer, default=1)
    allow_overlap: Mapped[bool] = mapped_column(Boolean, default=False)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    department: Mapped[Department] = relationship(lazy="joined")

    __table_args__ = (Index("ix_sched_assignments_department", "department_id"),)


class CrossCredential(Base):
    """A person allowed to work in a department other than their home department."""

    __tablename__ = "sched_cross_credentials"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    granted_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_sched_cross_credentials_department", "department_id"),)


class Schedule(Base):
    """One department's schedule for a date range; ``version`` counts publishes (0 = never)."""

    __tablename__ = "sched_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    name: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    department: Mapped[Department] = relationship(lazy="joined")

    __table_args__ = (Index("ix_sched_schedules_department_dates", "department_id", "starts_on"),)


class ScheduleVersion(Base):
    """What a publish contained: a snapshot of every slot, the base for full export files.

    Append-only (database triggers refuse UPDATE and DELETE): an export must be rebuildable.
    """

    __tablename__ = "sched_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("sched_schedules.id"))
    version: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(200))
    published_by_id: Mapped[int | None] = mapped_column(Integer)
    slots: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (Index("ix_sched_versions_schedule_version", "schedule_id", "version", unique=True),)


class ScheduleChange(Base):
    """One change to a published schedule: who, when, what (before/after), for delta export files.

    ``after_version`` is the publish the change came after, so "everything since version N" is
    ``after_version >= N``. Append-only like the versions.
    """

    __tablename__ = "sched_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("sched_schedules.id"))
    after_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    slot_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_sched_changes_schedule_id", "schedule_id", "id"),)


_READ_BY_LOOKUP = ["id", "schedule_id", "person_id", "ends_at", "placeholder_name", "placeholder_contact"]


class Slot(Base):
    """A dated assignment worked by a person, or by a placeholder reachable at a contact number."""

    __tablename__ = "sched_slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("sched_schedules.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("sched_assignments.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    on_date: Mapped[date] = mapped_column(Date)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    placeholder_name: Mapped[str | None] = mapped_column(String(200))
    placeholder_contact: Mapped[str | None] = mapped_column(String(60))
    notes: Mapped[str | None] = mapped_column(String(1000))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(20), default=SlotSource.MANUAL)
    # Bumped on every change of who works the slot; the iCalendar SEQUENCE.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # "<sync source id>:<vendor's key>" for slots a vendor sync wrote; None for hand-entered ones.
    external_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    assignment: Mapped[Assignment] = relationship(lazy="joined")
    person: Mapped[Person | None] = relationship(lazy="joined")

    __table_args__ = (
        # On PostgreSQL the on-call lookup reads a bucket from the index alone (migration 0015).
        Index("ix_sched_slots_assignment_start", "assignment_id", "starts_at",
              postgresql_include=["department_id", *_READ_BY_LOOKUP]),
        Index("ix_sched_slots_department_start", "department_id", "starts_at",
              postgresql_include=["assignment_id", *_READ_BY_LOOKUP]),
        Index("ix_sched_slots_person_start", "person_id", "starts_at"),
        Index("ix_sched_slots_start", "starts_at"),
        Index("ix_sched_slots_schedule_date", "schedule_id", "on_date"),
    )


class SwapRequest(Base):
    """Give a slot to another person, or trade it for one of theirs (``other_slot_id``)."""

    __tablename__ = "sched_swaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("sched_slots.id", ondelete="CASCADE"))
    other_slot_id: Mapped[int | None] = mapped_column(ForeignKey("sched_slots.id", ondelete="CASCADE"))
    # Who worked the slot when the swap was asked for: approval is refused if that changed since.
    from_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    to_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_by_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sched_swaps_status", "status"),)


class TimeOffRequest(Base):
    """Whole days off: once approved, no slot dated ``starts_on``..``ends_on`` (inclusive) may name the person."""

    __tablename__ = "sched_time_off"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12))
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sched_time_off_person", "person_id", "starts_on"),)


class SyncSource(Base):
    """A third-party scheduler pulled into one department (see scheduling/sync/).

    The password is never stored: ``secret_env`` names the environment variable that holds it.
    """

    __tablename__ = "sched_sync_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    base_url: Mapped[str] = mapped_column(String(500))
    account: Mapped[str] = mapped_column(String(200))
    username: Mapped[str | None] = mapped_column(String(200))
    secret_env: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    department: Mapped[Department] = relationship(lazy="joined")


class SyncPersonMap(Base):
    """Admin-managed: the vendor's id for a person → our person."""

    __tablename__ = "sched_sync_person_map"

    source_id: Mapped[int] = mapped_column(ForeignKey("sched_sync_sources.id", ondelete="CASCADE"),
                                           primary_key=True)
    external_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))


class SyncAssignmentMap(Base):
    """Admin-managed: the vendor's id for a shift or task → our assignment."""

    __tablename__ = "sched_sync_assignment_map"

    source_id: Mapped[int] = mapped_column(ForeignKey("sched_sync_sources.id", ondelete="CASCADE"),
                                           primary_key=True)
    external_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("sched_assignments.id", ondelete="CASCADE"))


class SyncRun(Base):
    """One pull: what it changed, what it could not map, what it refused, or why it failed."""

    __tablename__ = "sched_sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sched_sync_sources.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12))
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    unmapped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(1000))

    __table_args__ = (Index("ix_sched_sync_runs_source", "source_id", "started_at"),)


class LookupVersion(Base):
    """One row whose random token database triggers replace, in the changing transaction, whenever a
    slot, schedule or assignment is written: every node reads it (one cheap query) to know whether
    its in-process lookup cache still describes the database it is talking to (lookup.py)."""

    __tablename__ = "sched_lookup_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
