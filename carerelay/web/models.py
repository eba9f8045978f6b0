"""Tables of the web client: the EHR launch tokens already used (so a launch link works once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class EmbedLaunch(Base):
    """One accepted /embed launch. The nonce is the key: a replayed token (a URL copied from a
    browser history or a proxy log) is refused. Rows past their expiry are pruned on later launches."""

    __tablename__ = "embed_launches"

    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    ehr_username: Mapped[str] = mapped_column(String(120))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
