"""Many frames stored in one transaction and many messages processed in one (both databases): every
frame gets its own answer and row, duplicates and resends inside one batch are told apart, and a
message that fails does not undo the others' results or their audit entries."""

from __future__ import annotations

from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.audit.service import verify_chain
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.models import Hl7Message
from carerelay.integrations.hl7.store import Inbound, process_pending, receive_messages
from carerelay.patients.models import Observation
from carerelay.patients.service import ResultPolicy
from tests.hl7support import uniq

FEED = Feed(name="default", port=0)


def oru(mrn: str, control: str, family: str = "DOE") -> bytes:
    return "\r".join([
        f"MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|20261124093000||ORU^R01|{control}|P|2.5.1",
        f"PID|1||{mrn}^^^MAINHOSP^MR||{family}^JANE||19580214|F",
        "OBR|1|ORD1|FIL1|80048^BASIC METABOLIC PANEL^CPT||||||||||||1234567890^HOUSE^GREGORY^^^DR^^^NPI",
        "OBX|1|NM|2951-2^Sodium^LN||139|mmol/L|136-145|N|||F|||20261124092500"]).encode()


def _receive(db: Database, clock: FakeClock, *frames: bytes) -> list[tuple[int | None, str, bool]]:
    with db.unit_of_work() as session:
        items = [Inbound(FEED, f, "10.0.0.1:1") for f in frames]
        receipts = receive_messages(session=session, clock=clock, items=items)
    return [(r.message_id, r.code, r.duplicate) for r in receipts]


def test_one_batch_tells_duplicates_and_resends_apart(db: Database, clock: FakeClock) -> None:
    mrn, a, b, c = uniq("M"), uniq("A"), uniq("B"), uniq("C")
    no_mrn = oru("", b)
    answers = _receive(db, clock, oru(mrn, a), oru(mrn, a), no_mrn, no_mrn, oru(mrn, b), oru(mrn, b), oru(mrn, c))
    (a1, a2, b1, b2, b3, b4, c1) = answers
    assert a1[1:] == ("AA", False) and a2 == (a1[0], "AA", True)
    # a refused message sent again in the same batch, then fixed: one row, which the fixed copy replaces
    assert b1[1] == b2[1] == "AE" and b1[0] == b2[0] == b3[0] == b4[0] and b3[1:] == ("AA", False) and b4[2]
    assert c1[1] == "AA" and a1[0] is not None and b1[0] is not None and c1[0] is not None
    assert a1[0] < b1[0] < c1[0]  # one row each, in arrival order
    with db.unit_of_work() as session:
        rows = {r.control_id: r for r in session.execute(
            select(Hl7Message).where(Hl7Message.control_id.in_([a, b, c]))).scalars()}
    assert {k: (r.status, r.ack_code, r.duplicates) for k, r in rows.items()} == {
        a: ("received", "AA", 1), b: ("received", "AA", 1), c: ("received", "AA", 0)}


def test_a_failing_message_does_not_undo_the_rest_of_its_batch(db: Database, clock: FakeClock) -> None:
    mrns = [uniq("M") for _ in range(3)]
    # PID-5 carries an escape that cannot be read: accepted at receipt (PID-3 is fine), fails when applied
    frames = [oru(mrns[0], uniq("X")), oru(mrns[1], uniq("X"), family="DOE\\.spX\\"), oru(mrns[2], uniq("X"))]
    ids = [i for i, code, _ in _receive(db, clock, *frames) if code == "AA" and i is not None]
    assert len(ids) == 3
    with db.unit_of_work() as session:
        audited = session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    with db.unit_of_work() as session:
        done = process_pending(session=session, clock=clock, feeds={"default": FEED}, policy=ResultPolicy(),
                               stat_priorities=("S",), limit=100)
    assert [(d.message_id, d.status) for d in done if d.message_id in ids] == [
        (ids[0], "processed"), (ids[1], "error"), (ids[2], "processed")]
    with db.unit_of_work() as session:
        rows = {r.id: r for r in session.execute(select(Hl7Message).where(Hl7Message.id.in_(ids))).scalars()}
        assert [(rows[i].attempts, rows[i].processed_at is not None) for i in ids] == [(1, True)] * 3
        assert "ValueError" in (rows[ids[1]].error or "")
        stored = session.execute(select(Observation.source_message_id).where(
            Observation.source_message_id.in_(ids))).scalars().all()
        assert sorted(i or 0 for i in stored) == [ids[0], ids[2]]
        results = session.execute(select(AuditEntry.detail).where(AuditEntry.action == "patient.results")
                                  .order_by(AuditEntry.seq.desc()).limit(2)).scalars().all()
        assert sorted(d["hl7_message_id"] for d in results) == [ids[0], ids[2]]
        assert session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == audited + 2
        assert verify_chain(session=session).ok
