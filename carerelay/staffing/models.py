"""Staffing tables: assignments, the conflicts between their sources, unit shift settings, hand-overs,
and the feeds (flat files over SFTP, assignment systems) that bring assignments in.

An assignment stores its UTC ``starts_at``/``ends_at``; ending one early moves ``ends_at`` and keeps
the planned end in ``planned_ends_at``, so "who is assigned at T" is always the same range test
(``starts_at <= T < ends_at``) and a row whose end equals its start was cancelled before it began.
No assignment lasts longer than ``MAX_ASSIGNMENT_HOURS``, which bounds that scan.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime

MAX_ASSIGNMENT_HOURS = 7 * 24


class CareRole(StrEnum):
    PRIMARY_NURSE = "primary_nurse"
    SECONDARY_NURSE = "secondary_nurse"
    CHARGE_NURSE = "charge_nurse"
    TECH = "tech"
    UNIT_CLERK = "unit_clerk"
    RESPIRATORY_THERAPIST = "respiratory_therapist"
    SITTER = "sitter"


class Source(StrEnum):
    MANUAL = "manual"
    FILE = "file"
    SYNC = "sync"
    ADT_ROL = "adt_rol"


DEFAULT_PRECEDENCE = (Source.MANUAL.value, Source.SYNC.value, Source.FILE.value, Source.ADT_ROL.value)
"""Highest first: the charge nurse's own entry beats an assignment system, which beats a flat file,
which beats what ADT's ROL segments say."""


class FeedKind(StrEnum):
    SFTP_CSV = "sftp_csv"
    REST = "rest"
    PUSH = "push"


class StaffingUnit(Base):
    """A unit's staffing settings; a unit without a row uses the defaults (07:00 and 19:00)."""

    __tablename__ = "staffing_units"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    shift_changes: Mapped[list[str]] = mapped_column(JSON)  # local "HH:MM", sorted
    flag_minutes_before: Mapped[int] = mapped_column(Integer, default=30)
    precedence: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaffAssignment(Base):
    __tablename__ = "staff_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    room: Mapped[str] = mapped_column(String(20), default="")  # "" for a unit-level assignment
    bed_id: Mapped[int | None] = mapped_column(ForeignKey("beds.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    care_role: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    planned_ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(10))
    origin: Mapped[str] = mapped_column(String(300))  # "assigned by charge nurse Dana Whitaker", "from file x row 3"
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("staffing_feeds.id"))
    batch: Mapped[str | None] = mapped_column(String(60))  # one file, one sync run, one push, one request
    external_key: Mapped[str | None] = mapped_column(String(200), index=True)
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), index=True)
    copied_from_id: Mapped[int | None] = mapped_column(ForeignKey("staff_assignments.id"))
    end_reason: Mapped[str | None] = mapped_column(String(300))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_assignments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_staff_assignments_unit_time", "unit_id", "starts_at", "ends_at"),
        Index("ix_staff_assignments_person_time", "person_id", "starts_at"),
        Index("ix_staff_assignments_bed_role", "bed_id", "care_role"),
    )


class StaffingConflict(Base):
    """Two sources disagreed; precedence decided (``outcome``) and this row says so until someone
    resolves it. ``kind``: ``slot`` (two people for one bed's primary nurse or one unit's charge
    nurse) or ``person`` (one person placed on two units at once)."""

    __tablename__ = "staffing_conflicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    care_role: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(80))  # "4W-412-B", "4W"
    existing_id: Mapped[int] = mapped_column(ForeignKey("staff_assignments.id"))
    applied_id: Mapped[int | None] = mapped_column(ForeignKey("staff_assignments.id"))
    incoming: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(20))  # incoming_applied | existing_kept
    message: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen: Mapped[int] = mapped_column(Integer, default=1)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    resolution_note: Mapped[str | None] = mapped_column(String(500))


class StaffingHandover(Base):
    """One shift change of one unit, as the hand-over timer found it."""

    __tablename__ = "staffing_handovers"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    change_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended: Mapped[int] = mapped_column(Integer)
    renewed: Mapped[int] = mapped_column(Integer)
    continuing: Mapped[int] = mapped_column(Integer)
    unassigned_beds: Mapped[list[str]] = mapped_column(JSON)


class StaffingFeed(Base):
    """Where assignments come from besides the charge nurse: an SFTP folder of CSV files, an
    assignment system's REST API polled on an interval, or a system that pushes to us."""

    __tablename__ = "staffing_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    adapter: Mapped[str | None] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    column_map: Mapped[dict[str, str]] = mapped_column(JSON)
    role_map: Mapped[dict[str, str]] = mapped_column(JSON)
    id_field: Mapped[str] = mapped_column(String(20))
    apply_valid_rows: Mapped[bool] = mapped_column(Boolean, default=False)
    interval_minutes: Mapped[int] = mapped_column(Integer, default=30)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(120))


class StaffingFeedRun(Base):
    """One file, one poll or one push: what it carried, what was applied, and every row refused."""

    __tablename__ = "staffing_feed_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("staffing_feeds.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10))  # ok | partial | failed | rejected
    file_name: Mapped[str | None] = mapped_column(String(300))
    file_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    ended: Mapped[int] = mapped_column(Integer, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
