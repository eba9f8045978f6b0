"""Per-person event streams: what each signed-in client must receive, in order.

Events are rows, numbered per person without gaps: the person's cursor row is locked while the
sequence is taken, so on PostgreSQL commit order equals sequence order and a client that resumes
after event N can never skip one that commits late.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class EventCursor(Base):
    __tablename__ = "event_cursors"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class Event(Base):
    __tablename__ = "events"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    session_id: Mapped[int | None] = mapped_column(Integer)
