"""Scenario 2: a STAT message to "hospitalist on call" escalates across the 07:00 shift change.

Sent at 06:58 to the night hospitalist, not acknowledged; the night slot ends at 07:00; the
escalation step at 07:03 resolves the role again and reaches the day hospitalist, not the one who
just went home. Runs on the demo hospital's published schedule (America/Chicago).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import user

SENT_AT = datetime(2026, 11, 24, 12, 58, tzinfo=UTC)  # 06:58 in Chicago
STEP_AT = datetime(2026, 11, 24, 13, 3, tzinfo=UTC)  # 07:03 in Chicago


def test_stat_message_reaches_the_day_hospitalist_after_the_shift_change(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    with db.unit_of_work() as session:
        night = resolve(session, "role:Hospitalist", SENT_AT)
        day = resolve(session, "role:Hospitalist", STEP_AT)
    assert len(night.recipients) == 1 and len(day.recipients) == 1
    night_id, day_id = night.person_ids[0], day.person_ids[0]
    assert night_id != day_id and "19:00" in night.recipients[0].reason and "07:00–19:00" in day.recipients[0].reason

    admin = user(client, "iadmin")
    policy = client.post("/api/escalation/policies", headers=admin.headers, json={
        "name": "STAT messages", "alert_kind": "message", "priority": "stat",
        "steps": [{"address": "target:", "wait_minutes": 5}], "repeat": 3})
    assert policy.status_code == 201, policy.text

    clock.set(SENT_AT)
    nurse = user(client, "cnurse")
    conversation = client.post("/api/conversations", headers=nurse.headers,
                               json={"kind": "address", "address": "role:Hospitalist"}).json()
    assert night_id in conversation["member_ids"] and day_id not in conversation["member_ids"]
    sent = client.post(f"/api/conversations/{conversation['id']}/messages", headers=nurse.headers,
                       json={"text": "BP 78/40 in 4W-412-B, please come now", "priority": "stat",
                             "needs_ack": True})
    assert sent.status_code == 201, sent.text

    clock.set(STEP_AT)
    jobs.fire_due(db=db, clock=clock)  # real-server tests may have left timers of their own: count nothing

    operator = user(client, "ooperator")
    day_alerts = client.get("/api/alerts", headers=_headers_for(client, day_id)).json()
    assert [a["title"][:30] for a in day_alerts] == ["Carol Nurse, RN: BP 78/40 in 4"]
    trail = client.get(f"/api/alerts/{day_alerts[0]['id']}", headers=operator.headers).json()["events"]
    notified = [(e["person_id"], e["at"], e["detail"]["reason"]) for e in trail if e["kind"] == "notified"]
    assert [n[0] for n in notified] == [night_id, day_id]
    assert "07:00–19:00" in notified[1][2] and "not acknowledged within 5 minutes" in notified[1][2]
    members = client.get(f"/api/conversations/{conversation['id']}", headers=nurse.headers).json()["member_ids"]
    assert day_id in members


def _headers_for(client: TestClient, person_id: int) -> dict[str, str]:
    username = client.get(f"/api/people/{person_id}", headers=user(client, "admin").headers).json()["username"]
    return user(client, username).headers
