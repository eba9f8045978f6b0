"""Connector tables: the configuration, every run with the exact payload, and what was last sent.

A connector's configuration is JSON checked by pydantic on the way in (``config.py``); the plug-in
named by ``target`` gives its options and its assignment fields their meaning. Secrets are never
stored: a transport names the environment variable that holds its password or client secret.

``export_state`` is what the other side holds after our last successful run, one row per item we
sent (a slot's file row, an Outlook event with its Graph id…). A delta run is the difference between
the schedule now and this state, so a failed run changes nothing here and the next run catches up.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class RunStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    NOTHING = "nothing"
    FAILED = "failed"
    DRY_RUN = "dry_run"


ACTIVE = (RunStatus.QUEUED.value, RunStatus.SENDING.value, RunStatus.RETRYING.value)
"""A connector has at most one run in these states: later triggers fold into it."""


class Connector(Base):
    __tablename__ = "export_connectors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    target: Mapped[str] = mapped_column(String(40))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    person_key: Mapped[str | None] = mapped_column(String(30))
    mapping_key: Mapped[str] = mapped_column(String(60))
    department_ids: Mapped[list[int] | None] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    content: Mapped[str] = mapped_column(String(10))
    transport: Mapped[dict[str, Any]] = mapped_column(JSON)
    file_name: Mapped[str | None] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notify: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    # When the next time-based trigger is due; None for connectors driven by schedule changes.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The scheduling change watermark (last change id, last version id) the last queued run saw.
    seen_watermark: Mapped[list[int] | None] = mapped_column(JSON)
    # The pay period (first day, ISO) the state belongs to; a new period starts from nothing.
    state_period: Mapped[str | None] = mapped_column(String(10))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_export_connectors_due", "enabled", "next_due_at"),)


class ExportRun(Base):
    """One run: why it ran, what it sent (byte for byte), where, how it ended, and every attempt's error."""

    __tablename__ = "export_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("export_connectors.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(200))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12))
    content: Mapped[str | None] = mapped_column(String(10))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destination: Mapped[str | None] = mapped_column(String(500))
    file_name: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    period_start: Mapped[str | None] = mapped_column(String(10))
    # People left out (no value in the key field…) and assignments not sent (no mapping), as lists.
    excluded: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    unmapped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_export_runs_connector", "connector_id", "id"),
        Index("ix_export_runs_due", "status", "next_attempt_at"),
    )


class ExportState(Base):
    """One item the other side holds after our last successful run."""

    __tablename__ = "export_state"

    connector_id: Mapped[int] = mapped_column(ForeignKey("export_connectors.id", ondelete="CASCADE"),
                                              primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The other side's id for the item (a Graph event id), when it gives one.
    remote_id: Mapped[str | None] = mapped_column(String(500))
    # The slot's local date: an item that ages out of the window is forgotten, never deleted remotely.
    on_date: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
