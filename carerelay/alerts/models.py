"""Clinical alerts, who each one reached, and its trail (every step, with its time and reason)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    priority: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(200))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    location: Mapped[str | None] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(60))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    readback: Mapped[str | None] = mapped_column(Text)
    readback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # find_by_source: a needs-ack message's alert, an HL7 hand-off's, the auditor's deduplication.
    __table_args__ = (Index("ix_alerts_source_ref", "source", "source_ref"),)


class AlertRecipient(Base):
    """One person an alert reached, at which escalation step, and why; when it reached their device
    (``delivered_at``), when they opened it (``read_at``) and how they answered — what reports measure."""

    __tablename__ = "alert_recipients"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response: Mapped[str | None] = mapped_column(String(40))
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_alert_recipients_person", "person_id", "notified_at"),)


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DigestItem(Base):
    """One event waiting for its digest: a timer sends every waiting item of a key as one alert."""

    __tablename__ = "alert_digest_items"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    digest_key: Mapped[str] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    priority: Mapped[str] = mapped_column(String(10))
    minutes: Mapped[int] = mapped_column(Integer)
    line: Mapped[str] = mapped_column(String(500))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))

    __table_args__ = (Index("ix_alert_digest_items_pending", "digest_key", "sent_at"),)
