"""Scheduling, cancelling and firing durable timers.

``fire_due`` takes one due timer at a time in its own transaction: the row is locked
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so nodes never take the same one; ``BEGIN IMMEDIATE`` on
SQLite), the handler runs, and the timer is marked fired, all in one commit. A crash in between rolls
everything back and the timer stays due, so each timer's effects are committed exactly once.
Handlers write to the database only; anything sent out goes through an outbox after commit.

A handler that raises is recorded (attempts, last error) and retried with back-off, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.core.prepared import PreparedInsert
from carerelay.jobs.models import Timer
from carerelay.ops.metrics import TIMER_LAG, TIMERS_FIRED

log = logging.getLogger("carerelay.jobs")

Handler = Callable[[Session, Clock, Timer], None]


@dataclass
class Registry:
    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(self, kind: str) -> Callable[[Handler], Handler]:
        def wrap(fn: Handler) -> Handler:
            self.handlers[kind] = fn
            return fn

        return wrap


HANDLERS = Registry()
_INSERT_TIMER = PreparedInsert(Timer)


def schedule(
    *, session: Session, clock: Clock, kind: str, due_at: datetime, params: dict[str, Any], key: str | None = None
) -> Timer:
    timer = Timer(kind=kind, key=key, params=params, due_at=due_at, created_at=clock.now(), attempts=0)
    return _INSERT_TIMER.add(session, timer)


def cancel(*, session: Session, clock: Clock, key: str) -> int:
    """Cancel every pending timer with this key (e.g. everything still pending for one alert)."""
    result = session.execute(
        update(Timer).where(Timer.key == key, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_prefix(*, session: Session, clock: Clock, prefix: str) -> int:
    result = session.execute(
        update(Timer).where(Timer.key.startswith(prefix, autoescape=True), Timer.fired_at.is_(None),
                            Timer.cancelled_at.is_(None))
        .values(cancelled_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def pending(*, session: Session, key: str | None = None, lock: bool = False) -> list[Timer]:
    """Timers not yet fired or cancelled. ``lock`` holds them (FOR UPDATE on PostgreSQL) until the
    caller commits, so a worker cannot fire one while the caller counts on it still being pending."""
    query = select(Timer).where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None)).order_by(Timer.due_at)
    if key is not None:
        query = query.where(Timer.key == key)
    if lock:
        query = query.with_for_update()
    return list(session.execute(query).scalars())


def next_due(*, session: Session) -> datetime | None:
    row = session.execute(
        select(Timer.due_at).where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .order_by(Timer.due_at).limit(1)
    ).scalar_one_or_none()
    return row


def _claim(session: Session, now: datetime) -> Timer | None:
    query = (select(Timer).where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(1))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).scalar_one_or_none()


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** min(attempts, 8)))


def fire_one(*, db: Database, clock: Clock, registry: Registry = HANDLERS) -> bool:
    """Fire the earliest due timer, if any. Returns whether one was taken."""
    failure: tuple[int, str] | None = None
    with db.unit_of_work() as session:
        now = clock.now()
        timer = _claim(session, now)
        if timer is None:
            return False
        handler = registry.handlers.get(timer.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for timer kind {timer.kind!r}")
            with session.begin_nested():
                handler(session, clock, timer)
        except Exception as exc:
            failure = (timer.id, f"{type(exc).__name__}: {exc}")
            timer.attempts += 1
            timer.last_error = failure[1][:2000]
            timer.due_at = now + _retry_delay(timer.attempts)
            log.error("timer failed; will retry", extra={"timer_id": timer.id, "kind": timer.kind,
                                                         "error": failure[1]})
            return True
        timer.fired_at = now
        timer.attempts += 1
        lag = (now - timer.due_at).total_seconds()
    TIMERS_FIRED.labels(timer.kind).inc()
    TIMER_LAG.observe(max(lag, 0.0))
    return True


def firing_threads(db: Database, wanted: int) -> int:
    """How many threads of a node fire timers side by side: ``wanted`` on PostgreSQL, where SKIP LOCKED
    keeps them apart exactly as it keeps nodes apart (a step is mostly client CPU with a few waits on
    the server, so on two cores a second thread fires about 1.5 times as many steps a second;
    bench/escalation.py); SQLite has one writer, so one."""
    return max(1, wanted) if db.dialect == "postgresql" else 1


def fire_due(*, db: Database, clock: Clock, registry: Registry = HANDLERS, limit: int = 10_000) -> int:
    """Fire every timer due now (tests call this after advancing the clock)."""
    fired = 0
    while fired < limit and fire_one(db=db, clock=clock, registry=registry):
        fired += 1
    return fired
