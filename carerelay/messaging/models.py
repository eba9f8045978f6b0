"""Conversations, immutable messages, receipts, attachments, legal holds and the organization's policy.

A message row is never updated: database triggers refuse UPDATE always, and DELETE unless the row
is older than the retention cut-off and its conversation is on no legal hold. Everything that
changes after sending (receipts, attachment binding, the conversation's activity) lives in other
tables.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"
    CRITICAL = "critical"


class ConversationKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"
    ADDRESS = "address"


class MessageKind(StrEnum):
    TEXT = "text"
    FORWARD = "forward"


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    title: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(200))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # An address conversation: who the address reached when it was made, and why; people an
    # escalation brings in later are added with their reason.
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ConversationMember(Base):
    __tablename__ = "conversation_members"

    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))

    __table_args__ = (Index("ix_conversation_members_person", "person_id"),)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(10))
    needs_ack: Mapped[bool] = mapped_column(Boolean)
    silent: Mapped[bool] = mapped_column(Boolean)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    original_author_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    original_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    forwarded_from_id: Mapped[int | None] = mapped_column(BigInteger)
    warnings_confirmed: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Why each recipient got it ({"address", "default", "reasons": {person id: reason}}; the recipients
    # are its receipts), written with the row: "sent to Dr. A because Cardiology On Call, call order 1".
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),)


class Receipt(Base):
    """One row per recipient of a message: when it was sent, delivered, read, acknowledged."""

    __tablename__ = "receipts"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_receipts_person", "person_id", "message_id"),)


class AttachmentBlob(Base):
    """Encrypted bytes; immutable, shared by a message and the messages that forward it."""

    __tablename__ = "attachment_blobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce_id: Mapped[str] = mapped_column(String(40), unique=True)
    key_id: Mapped[str] = mapped_column(String(40))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("people.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Attachment(Base):
    """An attachment as used by one message; unbound (message_id empty) between upload and send."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("attachment_blobs.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LegalHold(Base):
    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    placed_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RetentionState(Base):
    """The purge cut-off the delete trigger checks: no message younger than this can be deleted."""

    __tablename__ = "retention_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purge_before: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrgPolicy(Base):
    """The organization's messaging policy (one row). Defaults follow the hospital's pocket guide."""

    __tablename__ = "org_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visible_hours: Mapped[int] = mapped_column(Integer, default=24)
    search_hours: Mapped[int] = mapped_column(Integer, default=72)
    retention_years: Mapped[int] = mapped_column(Integer, default=18)
    orders_in_text: Mapped[str] = mapped_column(String(10), default="warn")
    critical_results_in_text: Mapped[str] = mapped_column(String(10), default="warn")
    courtesy_replies_silent: Mapped[bool] = mapped_column(Boolean, default=True)
    attachment_max_bytes: Mapped[int] = mapped_column(Integer, default=10 * 1024 * 1024)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
