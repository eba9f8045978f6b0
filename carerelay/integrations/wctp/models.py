"""The WCTP outbox: StatusInfo and MessageReply owed to an originator, written in the transaction
that caused them and sent only after it committed, pushed to the sender's URL or handed out when
it polls. The row id is the ``sequenceNo`` a poller acknowledges.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class WctpOutbound(Base):
    __tablename__ = "wctp_outbound"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    paging_message_id: Mapped[int] = mapped_column(ForeignKey("paging_messages.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(12))  # status | reply
    notification: Mapped[str | None] = mapped_column(String(10))  # QUEUED | DELIVERED | READ
    reply_text: Mapped[str | None] = mapped_column(Text)
    mcr: Mapped[bool] = mapped_column(Boolean, default=False)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    body: Mapped[str] = mapped_column(Text)  # the wctp-StatusInfo / wctp-MessageReply element
    delivery: Mapped[str] = mapped_column(String(6))  # push | poll
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_wctp_outbound_sender_status", "sender_id", "status", "id"),
                      Index("ix_wctp_outbound_due", "status", "next_attempt_at"))
