"""Events for many people at once: every person gets their next number and their event, whatever the
fan-out's size. On PostgreSQL the NOTIFY that wakes other nodes goes with each chunk of people, so a
large fan-out never exceeds NOTIFY's 8000-byte payload (which would fail the sender's transaction)."""

from __future__ import annotations

from sqlalchemy import select

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.realtime import service as realtime
from carerelay.realtime.models import Event
from tests.crowd import crowd
from tests.querycount import statements

CROWD = 2000  # "person:seq," for 2,000 people is more than one NOTIFY can carry


def test_a_fan_out_to_thousands_numbers_and_stores_every_event(db: Database, clock: FakeClock) -> None:
    ids = crowd(db, clock, CROWD)
    with db.unit_of_work() as session:
        first = realtime.emit(session=session, clock=clock, person_ids=ids, kind="test.crowd", payload={"n": 1})
    with db.unit_of_work() as session, statements(db.engine) as seen:
        second = realtime.emit(session=session, clock=clock, person_ids=[*ids, ids[0]], kind="test.crowd",
                               payload={"n": 2})
    assert first == dict.fromkeys(ids, 1)
    assert second == dict.fromkeys(ids, 2)
    chunks = -(-CROWD // 50)
    assert len(seen) == (chunks if db.dialect == "postgresql" else 2 * chunks), "\n".join(seen)
    with db.unit_of_work() as session:
        stored = session.execute(select(Event.person_id, Event.seq, Event.payload)
                                 .where(Event.person_id.in_(ids))).all()
    assert sorted((p, q, d["n"]) for p, q, d in stored) == sorted((p, n, n) for p in ids for n in (1, 2))


def test_the_events_of_a_rolled_back_savepoint_are_not_handed_over(db: Database, clock: FakeClock) -> None:
    ids = crowd(db, clock, 3)
    with db.unit_of_work() as session:
        realtime.emit(session=session, clock=clock, person_ids=ids[:1], kind="test.kept", payload={})
        nested = session.begin_nested()
        realtime.emit(session=session, clock=clock, person_ids=ids, kind="test.dropped", payload={})
        nested.rollback()
        assert [(p, q, k) for p, q, k, _ in realtime.committed_events(session)] == [(ids[0], 1, "test.kept")]


def test_every_event_stores_its_payload_and_time_as_the_orm_would(db: Database, clock: FakeClock) -> None:
    """On SQLite a fan-out gives its payload once, as JSON text: what is stored and read back must be what
    the JSON and time columns make of the values themselves (the ORM's own insert, for comparison)."""
    from sqlalchemy import text

    ids = crowd(db, clock, 3)
    payload = {"text": "Zimmer 4 – Schmerz 8/10, bitte kommen ✅", "nested": {"list": [1, 2.5, None, True]}}
    with db.unit_of_work() as session:
        realtime.emit(session=session, clock=clock, person_ids=ids, kind="test.shared", payload=payload)
        session.add(Event(person_id=ids[0], seq=99, kind="test.orm", payload=payload, created_at=clock.now()))
    with db.unit_of_work() as session:
        rows = session.execute(select(Event.person_id, Event.kind, Event.payload, Event.created_at)
                               .where(Event.kind.in_(("test.shared", "test.orm")))).all()
        raw = {str(t) for t in session.execute(text(
            "SELECT CAST(payload AS TEXT) FROM events WHERE kind IN ('test.shared', 'test.orm')")).scalars()}
    assert sorted(p for p, k, _, _ in rows if k == "test.shared") == sorted(ids)
    assert all(d == payload and at == clock.now() for _, _, d, at in rows)
    assert len(raw) == 1  # the shared text is byte for byte the ORM's
