"""The audit chain: intact on the demo, and each kind of tampering named by verify_chain."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.audit.models import AuditChainHead, AuditEntry
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database


def _drop_guards(conn: Connection) -> None:
    """What an attacker with database access would do first; rolled back with the test."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER audit_entries_refuse_update"))
        conn.execute(text("DROP TRIGGER audit_entries_refuse_delete"))
    else:
        conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))


def _append(db: Database, clock: FakeClock, n: int) -> None:
    with db.unit_of_work() as session:
        for i in range(n):
            audit.record(session=session, clock=clock, actor=cli_actor(), action="test.event",
                         object_type="thing", object_id=i, detail={"i": i, "text": "naïve ✓"})


def test_demo_chain_is_intact(db: Database, clock: FakeClock) -> None:
    _append(db, clock, 3)
    with db.unit_of_work() as session:
        report = audit.verify_chain(session=session)
    assert report.ok, report.problem
    assert report.entries >= 3


def test_triggers_refuse_update_and_delete(db: Database) -> None:
    with db.unit_of_work() as session:
        conn = session.connection()
        for statement in ("UPDATE audit_entries SET outcome = 'x' WHERE seq = 1",
                          "DELETE FROM audit_entries WHERE seq = 1"):
            with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
                conn.execute(text(statement))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE audit_entries SET outcome = 'failure' WHERE seq = 2", "entry 2 was altered"),
        ("DELETE FROM audit_entries WHERE seq = 3", "entries 3..3 were removed"),
        ("DELETE FROM audit_entries WHERE seq = (SELECT MAX(seq) FROM audit_entries)", "removed from the end"),
        ("UPDATE audit_entries SET prev_hash = hash WHERE seq = 4", "entry 4 was altered"),
    ],
)
def test_tampering_is_found(db: Database, clock: FakeClock, tamper: str, expected: str) -> None:
    _append(db, clock, 2)
    with db.unit_of_work() as session:
        conn = session.connection()
        _drop_guards(conn)
        conn.execute(text(tamper))
        report = audit.verify_chain(session=session)
    assert not report.ok
    assert expected in (report.problem or "")


def test_forged_insertion_is_found(db: Database, clock: FakeClock) -> None:
    """An entry slipped in with a valid hash of its own still breaks the link of the one after it."""
    _append(db, clock, 2)
    with db.unit_of_work() as session:
        conn = session.connection()
        _drop_guards(conn)
        conn.execute(text("UPDATE audit_entries SET seq = seq + 1000000 WHERE seq >= 3"))
        conn.execute(text("UPDATE audit_entries SET seq = seq - 999999 WHERE seq >= 1000000"))
        prev = conn.execute(text("SELECT hash FROM audit_entries WHERE seq = 2")).scalar_one()
        at = clock.now()
        fields = {"seq": 3, "at": at, "actor_id": None, "actor_name": "mallory", "action": "forged",
                  "object_type": "thing", "object_id": None, "outcome": "success", "ip": None, "detail": {},
                  "prev_hash": prev}
        session.add(AuditEntry(**fields, hash=audit._entry_hash(**fields)))
        session.flush()
        report = audit.verify_chain(session=session)
    assert not report.ok
    assert report.seq == 4
    assert "inserted" in (report.problem or "")


def test_savepoints_keep_their_entries_until_the_commit_and_drop_them_when_rolled_back(
        db: Database, clock: FakeClock) -> None:
    def record(session: Session, what: str) -> None:
        audit.record(session=session, clock=clock, actor=cli_actor(), action="test.savepoint", object_type="thing",
                     object_id=what)

    with db.unit_of_work() as session:
        before = session.execute(select(func.max(AuditEntry.seq))).scalar_one()
        record(session, "outer")
        with session.begin_nested():
            record(session, "kept")
        assert audit.pending_entries(session) == 2  # a released savepoint does not chain (or lock) yet
        with pytest.raises(RuntimeError), session.begin_nested():
            with session.begin_nested():
                record(session, "inner of a rolled-back savepoint")
            raise RuntimeError("undo")
        record(session, "last")
    with db.unit_of_work() as session:
        rows = session.execute(select(AuditEntry.seq, AuditEntry.object_id).where(AuditEntry.seq > before)
                               .order_by(AuditEntry.seq)).all()
        assert [(seq - before, obj) for seq, obj in rows] == [(1, "outer"), (2, "kept"), (3, "last")]
        assert audit.verify_chain(session=session).ok


@pytest.mark.parametrize("n", [50, 51, 120])
def test_a_commit_of_more_entries_than_one_statement_holds_chains_them_all(
        db: Database, clock: FakeClock, n: int) -> None:
    """Entries go in 50 to a statement (on PostgreSQL the last ones with the tip's move): none is lost or
    repeated at a chunk's edge, and the tip is the last entry."""
    with db.unit_of_work() as session:
        before = session.execute(select(func.max(AuditEntry.seq))).scalar_one() or 0
    _append(db, clock, n)
    with db.unit_of_work() as session:
        added = session.execute(select(AuditEntry.seq, AuditEntry.object_id).where(AuditEntry.seq > before)
                                .order_by(AuditEntry.seq)).all()
        head = session.get_one(AuditChainHead, 1)
        report = audit.verify_chain(session=session)
        tip = session.execute(select(AuditEntry.hash).where(AuditEntry.seq == head.last_seq)).scalar_one()
    assert [tuple(row) for row in added] == [(before + 1 + i, str(i)) for i in range(n)]
    assert (head.last_seq, head.last_hash) == (before + n, tip)
    assert report.ok, report.problem
