"""The HL7 message store: every inbound message, raw bytes first, with its status and ACK."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class MessageStatus(StrEnum):
    RECEIVED = "received"  # stored and ACKed (receipt mode), not yet processed
    PROCESSED = "processed"
    FILTERED = "filtered"  # accepted, nothing to do (an ADT event we do not act on)
    ERROR = "error"  # unreadable, refused, or processing failed: see ``error``


class Hl7Message(Base):
    __tablename__ = "hl7_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    feed: Mapped[str] = mapped_column(String(60))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    peer: Mapped[str | None] = mapped_column(String(100))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    charset: Mapped[str | None] = mapped_column(String(30))
    # MSH-3/MSH-4/MSH-10: the duplicate key. Empty string when absent; control_id NULL when unreadable.
    sending_app: Mapped[str] = mapped_column(String(180), default="")
    sending_facility: Mapped[str] = mapped_column(String(180), default="")
    control_id: Mapped[str | None] = mapped_column(String(199))
    message_type: Mapped[str | None] = mapped_column(String(30), index=True)
    version: Mapped[str | None] = mapped_column(String(20))
    mrn: Mapped[str | None] = mapped_column(String(80), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    ack_code: Mapped[str | None] = mapped_column(String(2))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("sending_app", "sending_facility", "control_id", name="uq_hl7_messages_sender_control"),
        Index("ix_hl7_messages_status_id", "status", "id"),
    )


class Hl7FeedState(Base):
    """Per feed: when it last spoke, and whether it is in a silence finding now."""

    __tablename__ = "hl7_feed_state"

    feed: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    silent_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    silence_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
