"""Personal routing rules ("how I want to be reached") and department defaults."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base


class RoutingRule(Base):
    """First matching rule by rank wins: the person's own rules, then their department's defaults.

    Empty ``priorities`` / ``sender_types`` match any; ``window_start``/``window_end`` are local
    "HH:MM" in the person's site time zone and may cross midnight. ``on_duty`` true matches only while
    the published schedule has the person working, false only while it does not, empty always.
    """

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer, default=100)
    priorities: Mapped[list[str]] = mapped_column(JSON, default=list)
    sender_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    window_start: Mapped[str | None] = mapped_column(String(5))
    window_end: Mapped[str | None] = mapped_column(String(5))
    action: Mapped[str] = mapped_column(String(12))
    hold_until: Mapped[str | None] = mapped_column(String(5))
    forward_to: Mapped[str | None] = mapped_column(String(200))
    contact_kind: Mapped[str | None] = mapped_column(String(10))
    after_minutes: Mapped[float | None] = mapped_column()
    on_duty: Mapped[bool | None] = mapped_column(Boolean)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
