"""Issue 5's "done when": a STAT message to "Cardiology On Call" reaches first call only, goes to
call order 2 after the wait when nobody acknowledges, and stops once acknowledged.

Runs on the demo hospital as loaded (its published cardiology schedule and its "Cardiology on
call" policy), at 09:00 in Chicago on a weekday.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import User, user

SENT_AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 09:00 in Chicago


def _login(client: TestClient, person_id: int) -> User:
    username = client.get(f"/api/people/{person_id}", headers=user(client, "admin").headers).json()["username"]
    return user(client, username)


def _open_ids(client: TestClient, who: User) -> list[int]:
    return [a["id"] for a in client.get("/api/alerts", headers=who.headers).json()]


def test_stat_message_to_cardiology_on_call_walks_the_call_orders(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    with db.unit_of_work() as session:
        everyone = resolve(session, "role:Cardiology On Call#all", SENT_AT)
        first = resolve(session, "role:Cardiology On Call", SENT_AT)
        second = resolve(session, "role:Cardiology On Call#2", SENT_AT)
    assert len(everyone.recipients) == 2
    [first_call], [second_call] = first.recipients, second.recipients
    assert first_call.person_id != second_call.person_id
    assert "call order 1" in first_call.reason and "call order 2" in second_call.reason

    clock.set(SENT_AT)
    nurse = user(client, "cnurse")
    conversation = client.post("/api/conversations", headers=nurse.headers,
                               json={"kind": "address", "address": "role:Cardiology On Call"}).json()
    assert sorted(conversation["member_ids"]) == sorted([nurse.id, first_call.person_id])
    assert "call order 1" in conversation["resolution"]["recipients"][0]["reason"]
    sent = client.post(f"/api/conversations/{conversation['id']}/messages", headers=nurse.headers,
                       json={"text": "BP 78/40 in 4W-412-B, please come now", "priority": "stat",
                             "needs_ack": True})
    assert sent.status_code == 201, sent.text
    receipts = client.get(f"/api/messages/{sent.json()['id']}/receipts", headers=nurse.headers).json()
    assert [(r["person_id"], "call order 1" in (r["reason"] or "")) for r in receipts] == [
        (first_call.person_id, True)]

    # Real-server tests commit alerts for demo cardiologists too: follow this message's alert only.
    cardiologist, backup = _login(client, first_call.person_id), _login(client, second_call.person_id)
    [alert] = [a for a in client.get("/api/alerts", headers=cardiologist.headers).json()
               if a["kind"] == "message" and "BP 78/40" in a["title"]]
    assert alert["id"] not in _open_ids(client, backup)

    clock.advance(minutes=4, seconds=59)
    jobs.fire_due(db=db, clock=clock)  # real-server tests may have left timers of their own: count nothing
    assert alert["id"] not in _open_ids(client, _login(client, second_call.person_id))
    clock.advance(seconds=1)
    jobs.fire_due(db=db, clock=clock)
    backup = _login(client, second_call.person_id)
    assert alert["id"] in _open_ids(client, backup)
    assert backup.id in client.get(f"/api/conversations/{conversation['id']}",
                                   headers=backup.headers).json()["member_ids"]

    receipts = {r["person_id"]: r["reason"] for r in client.get(f"/api/messages/{sent.json()['id']}/receipts",
                                                               headers=user(client, "cnurse").headers).json()}
    assert receipts[backup.id].startswith("escalation: not acknowledged within 5 minutes")
    assert "call order 2" in receipts[backup.id]
    acked = client.post(f"/api/messages/{sent.json()['id']}/acknowledge", headers=backup.headers)
    assert acked.status_code == 200, acked.text
    clock.advance(hours=1)
    jobs.fire_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        assert [t for t in jobs.pending(session=session) if t.key and t.key.startswith(f"alert:{alert['id']}:")] == []

    operator = user(client, "ooperator")
    trail = client.get(f"/api/alerts/{alert['id']}", headers=operator.headers).json()
    assert trail["alert"]["status"] == "acknowledged" and trail["alert"]["acknowledged_by"] == backup.id
    events = trail["events"]
    started = next(e for e in events if e["kind"] == "escalation_started")
    assert started["detail"]["policy"] == "Cardiology on call"
    notified = [(e["person_id"], e["detail"]["reason"]) for e in events if e["kind"] == "notified"]
    assert [p for p, _ in notified] == [first_call.person_id, second_call.person_id]
    assert "call order 1" in notified[0][1]
    assert "call order 2" in notified[1][1] and "not acknowledged within 5 minutes" in notified[1][1]
    assert [e["kind"] for e in events][-2:] == ["escalation_stopped", "acknowledged"]
