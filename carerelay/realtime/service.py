"""Emitting and reading per-person events.

``emit`` writes events inside the caller's transaction and notes whom to wake; nothing is
pushed until the unit of work commits (the app's after-commit hook and, on PostgreSQL, NOTIFY,
which the database itself delivers only on commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from carerelay.core.clock import Clock
from carerelay.realtime.models import Event, EventCursor

WAKE_KEY = "realtime_wake"
NOTIFY_CHANNEL = "carerelay_events"


def _next_seq(session: Session, person_id: int) -> int:
    """One statement takes the next number and holds the row lock until commit.

    A person's first cursor row is created with ON CONFLICT DO NOTHING: two transactions fanning out
    to the same new person must not collide on its creation (a 409 under load on PostgreSQL).
    """
    dialect = session.get_bind().dialect.name
    create = (pg_insert if dialect == "postgresql" else sqlite_insert)(EventCursor)
    session.execute(create.values(person_id=person_id, last_seq=0).on_conflict_do_nothing())
    seq = session.execute(
        update(EventCursor).where(EventCursor.person_id == person_id)
        .values(last_seq=EventCursor.last_seq + 1).returning(EventCursor.last_seq)
    ).scalar_one()
    return int(seq)


def emit(
    *, session: Session, clock: Clock, person_ids: Iterable[int], kind: str, payload: dict[str, Any]
) -> dict[int, int]:
    """One event per person; returns each person's new sequence number."""
    now = clock.now()
    seqs: dict[int, int] = {}
    # Lock cursors in id order so two transactions fanning out to overlapping people cannot deadlock.
    for person_id in sorted(set(person_ids)):
        seqs[person_id] = _next_seq(session, person_id)
    if not seqs:
        return seqs
    session.execute(insert(Event), [{"person_id": p, "seq": q, "kind": kind, "payload": payload, "created_at": now}
                                    for p, q in seqs.items()])
    wake: set[int] = session.info.setdefault(WAKE_KEY, set())
    wake.update(seqs)
    if session.get_bind().dialect.name == "postgresql":
        # One channel per schema: installations (or test runs) sharing a database never hear each other.
        session.execute(text("SELECT pg_notify(:channel || '_' || current_schema(), :payload)"),
                        {"channel": NOTIFY_CHANNEL, "payload": ",".join(map(str, sorted(seqs)))})
    return seqs


def events_after(*, session: Session, person_id: int, after_seq: int, limit: int = 500) -> list[Event]:
    rows = session.execute(
        select(Event).where(Event.person_id == person_id, Event.seq > after_seq).order_by(Event.seq).limit(limit)
    )
    return list(rows.scalars())


def last_seq(*, session: Session, person_id: int) -> int:
    cursor = session.get(EventCursor, person_id)
    return cursor.last_seq if cursor is not None else 0


def prune_events(*, session: Session, clock: Clock, older_than: timedelta) -> int:
    """Events are transport, not the record: the messages themselves are kept for retention."""
    cutoff: datetime = clock.now() - older_than
    result = session.execute(delete(Event).where(Event.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
