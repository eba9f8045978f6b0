"""Device alerts and pages coming in: who may send (senders), what their recipient ids mean
(recipient maps), how each event is routed (rules), and every inbound message with its outcome
(the feed monitor: accepted or refused, always with the reason).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class Channel(StrEnum):
    WCTP = "wctp"
    TAP = "tap"
    SNPP = "snpp"
    EMAIL = "email"
    WEB = "web"


class MessageStatus(StrEnum):
    ACCEPTED = "accepted"  # routed: an alert was raised
    SCHEDULED = "scheduled"  # deliveryAfter in the future: routed when it comes
    DUPLICATE = "duplicate"  # same sender and messageID as an accepted one: answered again, not routed again
    REFUSED = "refused"  # see error_code / error_text


class PagingSender(Base):
    """A system allowed to send: a nurse-call server, a telemetry central station, a paging host.

    The security code is kept as a salted SHA-256 (it is checked on every request, so a slow hash
    would cost each alert its latency). ``reply_url`` set: StatusInfo and MessageReply are pushed
    there; empty: they wait for the sender's PollForMessages.
    """

    __tablename__ = "paging_senders"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    code_salt: Mapped[str | None] = mapped_column(String(32))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    reply_url: Mapped[str | None] = mapped_column(String(500))
    reply_security_code: Mapped[str | None] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PagingRecipient(Base):
    """What a recipient id means: an address, and for beds and units the location (so rules can say
    "the tech of this bed" or "this unit's charge nurse")."""

    __tablename__ = "paging_recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(128))
    recipient_key: Mapped[str] = mapped_column(String(128), unique=True)
    address: Mapped[str] = mapped_column(String(500))
    unit: Mapped[str | None] = mapped_column(String(40))
    room: Mapped[str | None] = mapped_column(String(20))
    bed: Mapped[str | None] = mapped_column(String(20))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    label: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PagingRule(Base):
    """First active rule (by position) whose conditions all hold decides how an event is routed."""

    __tablename__ = "paging_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=100)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sender_id: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(10))
    recipient_pattern: Mapped[str | None] = mapped_column(String(200))
    text_pattern: Mapped[str | None] = mapped_column(String(200))
    alert_kind: Mapped[str] = mapped_column(String(40))
    priority: Mapped[str | None] = mapped_column(String(10))
    tone: Mapped[str | None] = mapped_column(String(40))
    choices: Mapped[list[str] | None] = mapped_column(JSON)
    target: Mapped[str | None] = mapped_column(String(500))
    escalation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PagingMessage(Base):
    """Every inbound page or device alert, accepted or not: the feed monitor of nurse call and paging."""

    __tablename__ = "paging_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    peer: Mapped[str | None] = mapped_column(String(100))
    operation: Mapped[str | None] = mapped_column(String(40))
    sender_id: Mapped[str | None] = mapped_column(String(128))
    recipient_id: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[str | None] = mapped_column(String(32))
    transaction_id: Mapped[str | None] = mapped_column(String(128))
    tracking_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    text: Mapped[str] = mapped_column(Text, default="")
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority_in: Mapped[str | None] = mapped_column(String(10))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deliver_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deliver_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    allow_response: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_queued: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_read: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), index=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_text: Mapped[str | None] = mapped_column(Text)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("paging_rules.id"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(500))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_paging_messages_sender_message", "sender_id", "message_id"),)
