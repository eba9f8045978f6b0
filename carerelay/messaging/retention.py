"""The daily retention purge, run by the platform's durable timers rather than by someone remembering cron.

One pending timer (key ``messaging:retention``) exists at a time. Each node makes sure of it when its
worker starts; firing it applies the organization's retention period (``compliance.purge_expired``:
conversations on an active legal hold are skipped, and the delete trigger refuses them again) and
schedules the next run a day later. The timer commits with the purge, so a crash mid-purge leaves the
timer due and the next pass (on any node) runs it again; a failing purge is retried with back-off like
every timer, and shows as the timer's ``last_error``.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from carerelay.core import locks
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.messaging.compliance import purge_expired

PURGE_TIMER = "messaging.retention_purge"
PURGE_KEY = "messaging:retention"
EVERY = timedelta(days=1)
RETENTION_ACTOR = Actor(person_id=None, username="retention-timer", roles=frozenset({"system"}))


def _serialize(session: Session) -> None:
    """Nodes starting together must not each plan a purge (SQLite: BEGIN IMMEDIATE already serializes)."""
    locks.hold(session, PURGE_KEY)


def ensure_scheduled(*, session: Session, clock: Clock) -> Timer:
    """The pending purge timer, planned now (due at once) if there is none."""
    _serialize(session)
    pending = jobs.pending(session=session, key=PURGE_KEY)
    if pending:
        return pending[0]
    return jobs.schedule(session=session, clock=clock, kind=PURGE_TIMER, key=PURGE_KEY, due_at=clock.now(),
                         params={})


def schedule_daily_purge(db: Database, clock: Clock) -> None:
    """Called as a node's worker starts."""
    with db.unit_of_work() as session:
        ensure_scheduled(session=session, clock=clock)


@jobs.HANDLERS.register(PURGE_TIMER)
def on_purge_due(session: Session, clock: Clock, timer: Timer) -> None:
    purge_expired(session=session, clock=clock, actor=RETENTION_ACTOR)
    _serialize(session)
    for duplicate in jobs.pending(session=session, key=PURGE_KEY):
        if duplicate.id != timer.id:
            duplicate.cancelled_at = clock.now()
    jobs.schedule(session=session, clock=clock, kind=PURGE_TIMER, key=PURGE_KEY, due_at=clock.now() + EVERY,
                  params={})
