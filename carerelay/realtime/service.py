"""Emitting and reading per-person events.

``emit`` writes events inside the caller's transaction and notes whom to wake; nothing is
pushed until the unit of work commits (the app's after-commit hook and, on PostgreSQL, NOTIFY,
which the database itself delivers only on commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, String, Table, bindparam, delete, event, func, insert, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from carerelay.core.clock import Clock
from carerelay.core.prepared import PreparedRows, bind_rows
from carerelay.realtime.models import Event, EventCursor

WAKE_KEY = "realtime_wake"
EVENTS_KEY = "realtime_events"
NOTIFY_CHANNEL = "carerelay_events"
# Every person of a fan-out gets an event of their own, so a payload that lists all of them costs N²:
# past this many people an event leaves its lists (members, reasons) to the object's own GET and says
# it is ``partial`` (800 people addressed as one group: 58 MB of events in one transaction; a step to
# a group of 2,000: 200 MB).
PEOPLE_LISTED_MAX = 100


_CURSORS = cast(Table, EventCursor.__table__)
_EVENTS = cast(Table, Event.__table__)


def _cursor_upsert(insert_for: Any, n: int) -> Any:
    return (insert_for(_CURSORS).values([{**row, "last_seq": 1} for row in bind_rows(_CURSORS, ("person_id",), n)])
            .on_conflict_do_update(index_elements=[_CURSORS.c.person_id], set_={"last_seq": _CURSORS.c.last_seq + 1})
            .returning(_CURSORS.c.person_id, _CURSORS.c.last_seq))


# Every message fans out through these: compiled once per row count, run through the driver. A new
# cursor row starts at 1, an existing one moves on by one. PostgreSQL runs the same upsert inside
# _emit_in_one.
_UPSERT_CURSORS = PreparedRows(lambda n: _cursor_upsert(sqlite_insert, n), ("person_id",))
_EVENT_COLUMNS = ("person_id", "seq", "kind", "payload", "created_at")
# SQLite: what every event of a fan-out shares is one bind parameter in every row, so its payload is
# serialized once a fan-out, not once a recipient (a prepared statement processes a shared value once).
_SHARED_EVENT_VALUES = {"kind": bindparam("event_kind", type_=_EVENTS.c.kind.type),
                        "payload": bindparam("event_payload", type_=_EVENTS.c.payload.type),
                        "created_at": bindparam("event_at", type_=_EVENTS.c.created_at.type)}
_INSERT_EVENTS = PreparedRows(lambda n: insert(_EVENTS).values(
    [{**row, **_SHARED_EVENT_VALUES} for row in bind_rows(_EVENTS, ("person_id", "seq"), n)]), ("person_id", "seq"))


def _emit_in_one(n: int) -> Any:
    """PostgreSQL: the cursor upsert, the events and the NOTIFY as one statement (three round trips
    were a quarter of a send's cost there). It returns the NOTIFY's own payload, ``person:seq,…``,
    which is also how the caller learns each person's number. A chunk of ``PreparedRows`` (at most 50
    people, 31 characters each at most) stays well inside NOTIFY's 8000-byte payload limit, which a
    single NOTIFY for a large fan-out would exceed, failing the whole transaction."""
    taken = _cursor_upsert(pg_insert, n).cte("taken")
    written = insert(_EVENTS).from_select(_EVENT_COLUMNS, select(
        taken.c.person_id, taken.c.last_seq, bindparam("kind", type_=_EVENTS.c.kind.type),
        bindparam("payload", type_=_EVENTS.c.payload.type),
        bindparam("created_at", type_=_EVENTS.c.created_at.type))).cte("written")
    item = func.concat(taken.c.person_id, ":", taken.c.last_seq)
    noted = select(func.string_agg(item, literal_column("','")).label("note")).select_from(taken).subquery("noted")
    channel = func.concat(bindparam("channel", type_=String), "_", func.current_schema())
    return select(noted.c.note, func.pg_notify(channel, noted.c.note)).add_cte(written)


_EMIT_IN_ONE = PreparedRows(_emit_in_one, ("person_id",))


def _next_seqs(conn: Connection, person_ids: list[int]) -> dict[int, int]:
    """One statement takes every person's next number and holds their cursor rows until commit (SQLite;
    on PostgreSQL the same upsert is the first part of ``_emit_in_one``).

    An upsert: a person's first cursor row is created by the same statement, so two transactions
    fanning out to the same new person cannot collide on its creation (ON CONFLICT waits for the
    other's row instead of failing). Rows are taken in the order given (sorted ids; the rows of one
    multi-row statement), so two transactions fanning out to overlapping people cannot deadlock.
    """
    rows = _UPSERT_CURSORS.rows(conn, [{"person_id": p} for p in person_ids])
    return {int(p): int(q) for p, q in rows}


def emit(
    *, session: Session, clock: Clock, person_ids: Iterable[int], kind: str, payload: dict[str, Any]
) -> dict[int, int]:
    """One event per person; returns each person's new sequence number."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    now = clock.now()
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # person:seq, so a node whose connections already have the event does not read for it again;
        # one channel per schema: installations (or test runs) sharing a database never hear each other.
        notes = _EMIT_IN_ONE.rows(conn, [{"person_id": p} for p in ids], {
            "kind": kind, "payload": payload, "created_at": now, "channel": NOTIFY_CHANNEL})
        seqs = {int(p): int(q) for note, _ in notes for p, _, q in (item.partition(":") for item in note.split(","))}
    else:
        seqs = _next_seqs(conn, ids)
        _INSERT_EVENTS.rows(conn, [{"person_id": p, "seq": seqs[p]} for p in ids],
                            {"event_kind": kind, "event_payload": payload, "event_at": now})
    wake: set[int] = session.info.setdefault(WAKE_KEY, set())
    wake.update(ids)
    savepoint = session.get_nested_transaction()
    session.info.setdefault(EVENTS_KEY, []).extend((p, seqs[p], kind, payload, savepoint) for p in ids)
    return seqs


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    """Events written inside a savepoint that rolled back never existed: they must not be handed over."""
    emitted = session.info.get(EVENTS_KEY)
    if not emitted:
        return
    if not rolled_back.nested:
        emitted.clear()
        return

    def inside(savepoint: SessionTransaction | None) -> bool:
        while savepoint is not None:
            if savepoint is rolled_back:
                return True
            savepoint = savepoint.parent
        return False

    emitted[:] = [e for e in emitted if not inside(e[4])]


def committed_events(session: Session) -> list[tuple[int, int, str, dict[str, Any]]]:
    """What this (committed) unit of work emitted: (person id, seq, kind, payload)."""
    return [(p, q, k, d) for p, q, k, d, _ in session.info.get(EVENTS_KEY, ())]


def events_after(*, session: Session, person_id: int, after_seq: int, limit: int = 500) -> list[Event]:
    rows = session.execute(
        select(Event).where(Event.person_id == person_id, Event.seq > after_seq).order_by(Event.seq).limit(limit)
    )
    return list(rows.scalars())


def newest_seqs(*, session: Session, person_ids: Iterable[int], batch: int = 500) -> dict[int, int]:
    """Each person's newest event number (people without events are left out)."""
    ids = sorted(set(person_ids))
    newest: dict[int, int] = {}
    for start in range(0, len(ids), batch):
        rows = session.execute(select(EventCursor.person_id, EventCursor.last_seq)
                               .where(EventCursor.person_id.in_(ids[start:start + batch])))
        newest.update((int(p), int(q)) for p, q in rows)
    return newest


def last_seq(*, session: Session, person_id: int) -> int:
    cursor = session.get(EventCursor, person_id)
    return cursor.last_seq if cursor is not None else 0


def prune_events(*, session: Session, clock: Clock, older_than: timedelta) -> int:
    """Events are transport, not the record: the messages themselves are kept for retention."""
    cutoff: datetime = clock.now() - older_than
    result = session.execute(delete(Event).where(Event.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
