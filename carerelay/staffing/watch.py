"""Telling the people who run a unit's board that it changed, once per transaction.

Whatever changes a unit's staffing — the charge nurse, a file, an assignment system, ADT's ROL
segments, a conflict, the shift change — calls ``board_changed``; when the transaction commits, each
person who may change that unit's assignments (``check_may_manage``'s set: administrators, the
unit's own nurses, its charge nurses now and next shift) gets one ``staffing.changed`` event naming
the unit, however many rows changed. Their open boards reload their HTML from the server; the event
carries no names. A note made inside a savepoint that later rolls back still sends its event: one
reload too many, never one missed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Session

from carerelay.core.clock import Clock
from carerelay.directory import service as directory
from carerelay.directory.models import Role
from carerelay.patients.models import Unit
from carerelay.realtime import service as realtime
from carerelay.staffing import lookup
from carerelay.staffing.shifts import next_shift, settings_for

BOARD_CHANGED = "staffing.changed"
_NOTED = "staffing_boards_changed"
_AUDIENCE_LIMIT = 2000


def board_changed(*, session: Session, clock: Clock, unit_id: int) -> None:
    """Note that this unit's board changed; its audience hears it when the transaction commits."""
    noted: dict[int, Clock] = session.info.setdefault(_NOTED, {})
    noted[unit_id] = clock


def board_audience(session: Session, unit: Unit, at: datetime) -> list[int]:
    """Who may change the unit's assignments at ``at``: the people whose boards act on the change."""
    people: set[int] = set()
    queries = [directory.PersonQuery(role=Role.SYSTEM_ADMIN.value),
               directory.PersonQuery(role=Role.INTEGRATION_ADMIN.value)]
    if unit.department_id is not None:
        queries.append(directory.PersonQuery(role=Role.NURSE.value, department_id=unit.department_id))
    for query in queries:
        people.update(row["id"] for row in directory.search_people(session=session, query=query,
                                                                   limit=_AUDIENCE_LIMIT))
    settings = settings_for(session, unit)
    for instant in (at, next_shift(settings, at).starts_at):
        people.update(a.person_id for a in lookup.charge_nurses(session, unit_id=unit.id, at=instant))
    return sorted(people)


@event.listens_for(Session, "before_commit", insert=True)
def _tell_boards(session: Session) -> None:
    """At the outermost commit only (a savepoint's release runs this hook too), and before the audit
    chain's hook, so the chain's head is not held while the events are written."""
    if session.get_nested_transaction() is not None:
        return
    noted: dict[int, Clock] | None = session.info.pop(_NOTED, None)
    if not noted:
        return
    for unit_id, clock in sorted(noted.items()):
        unit = session.get(Unit, unit_id)
        if unit is None:
            continue
        realtime.emit(session=session, clock=clock, person_ids=board_audience(session, unit, clock.now()),
                      kind=BOARD_CHANGED, payload={"unit": unit.code})
