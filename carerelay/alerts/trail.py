"""An alert's trail: what happened to it, in order, for the people who review it later.

Rows are written with one Core insert each, straight away: nothing reads them back in the
transaction that writes them, and as ORM objects each one cost a flush of the unit of work (the
escalation of one alert wrote three), which was a large part of what raising an alert cost.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from carerelay.alerts.models import AlertEvent
from carerelay.core.clock import Clock
from carerelay.core.prepared import PreparedRows, bind_rows

_EVENTS = cast(Table, AlertEvent.__table__)
_COLUMNS = ("alert_id", "at", "kind", "person_id", "detail")
_INSERT = PreparedRows(lambda n: insert(_EVENTS).values(bind_rows(_EVENTS, _COLUMNS, n)), _COLUMNS)


def record_event(session: Session, clock: Clock, alert_id: int, kind: str, person_id: int | None,
                 detail: dict[str, Any]) -> None:
    record_events(session, clock, alert_id, [(kind, person_id, detail)])


def record_events(session: Session, clock: Clock, alert_id: int,
                  events: list[tuple[str, int | None, dict[str, Any]]]) -> None:
    """Several entries of one alert in one statement (everyone a step reached), on the connection:
    a trail row refers only to rows already written, so what the session holds pending (the step's
    recipients) waits for the unit of work's next flush instead of costing one of its own."""
    if events:
        at = clock.now()
        _INSERT.rows(session.connection(), [{"alert_id": alert_id, "at": at, "kind": kind, "person_id": person_id,
                                             "detail": detail} for kind, person_id, detail in events])
