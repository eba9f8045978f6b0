"""Scenario 1: critical potassium at 09:30, escalated until the covering cardiologist acknowledges.

The shared ADT sample admits a patient to 4W-412-B with the attending (NPI 1234567890); the lab's ORU
reports K+ 6.8 (HH). The attending gets a critical-result alert with the value and range; nobody
acknowledges, so after the demo policy's wait ("Critical lab results") it goes to cardiology on
call, call order 2, who
acknowledges and records the read-back. The trail and the audit log show every step, its time and the
reason; the time-to-acknowledge report shows the 2 minutes the resident took and the 7 from result
to acknowledgement on 4 West.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from carerelay.alerts.intake import take_handoffs
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.processor import process_message
from carerelay.jobs import service as jobs
from carerelay.patients.service import ResultPolicy
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import user
from tests.hl7support import SAMPLES

RESULT_AT = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)  # 09:30 in Chicago
FEED = Feed(name="lab", port=0, timezone="America/Chicago")


def _apply(db: Database, clock: FakeClock, sample: str, mrn: str) -> None:
    text = (SAMPLES / sample).read_bytes().replace(b"MRN1001", mrn.encode())
    with db.unit_of_work() as session:
        process_message(session=session, clock=clock, actor=Actor(person_id=None, username="hl7:lab"),
                        parsed=parse(text), feed=FEED, policy=ResultPolicy(), stat_priorities=("S", "STAT"),
                        message_id=None)


def test_critical_potassium_reaches_the_attending_then_the_covering_cardiologist(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    admin = user(client, "iadmin")
    [policy] = [p for p in client.get("/api/escalation/policies", headers=admin.headers).json()
                if p["alert_kind"] == "critical_result" and p["active"]]
    assert [s["address"] for s in policy["steps"]] == ["target:", "role:Cardiology On Call#2"]
    clock.set(RESULT_AT)
    _apply(db, clock, "adt_a01_admit.hl7", "MRN-SCEN1")
    _apply(db, clock, "oru_r01_critical_potassium.hl7", "MRN-SCEN1")
    assert take_handoffs(db=db, clock=clock) >= 1
    take_handoffs(db=db, clock=clock)  # a second pass must not alert twice for the same result

    house = user(client, "ghouse")
    # Other tests commit alerts for Dr. House through real servers; this patient's is the one to follow.
    [alert] = [a for a in client.get("/api/alerts", headers=house.headers).json() if "MRN-SCEN1" in a["title"]]
    assert alert["kind"] == "critical_result" and alert["priority"] == "critical"
    assert "6.8" in alert["title"] and "3.5-5.1" in alert["title"] and "MRN-SCEN1" in alert["title"]
    assert alert["location"].startswith("4W") and alert["choices"] == ["Accept", "Call back"]

    with db.unit_of_work() as session:
        [covering] = resolve(session, "role:Cardiology On Call#2", RESULT_AT).recipients
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)  # real-server tests may have left timers of their own: count nothing
    resident = user(client, client.get(f"/api/people/{covering.person_id}",
                                       headers=admin.headers).json()["username"])
    assert alert["id"] in [a["id"] for a in client.get("/api/alerts", headers=resident.headers).json()]

    clock.advance(minutes=2)
    accepted = client.post(f"/api/alerts/{alert['id']}/respond", headers=resident.headers,
                           json={"choice": "Call back"})
    assert accepted.json()["status"] == "acknowledged"
    readback = client.post(f"/api/alerts/{alert['id']}/readback", headers=resident.headers,
                           json={"text": "Potassium 6.8 mmol/L read back to the lab; 10 units insulin IV ordered"})
    assert readback.json()["status"] == "closed"
    clock.advance(hours=1)
    jobs.fire_due(db=db, clock=clock)

    trail = client.get(f"/api/alerts/{alert['id']}", headers=user(client, "ccompliance").headers).json()["events"]
    kinds = [e["kind"] for e in trail]
    assert kinds[:2] == ["raised", "escalation_started"]
    assert [k for k in kinds if k in ("acknowledged", "readback")] == ["acknowledged", "readback"]
    notified = [e for e in trail if e["kind"] == "notified"]
    assert [e["person_id"] for e in notified] == [house.id, covering.person_id]
    assert "call order 2" in notified[1]["detail"]["reason"]
    assert notified[1]["at"] > notified[0]["at"]

    # The audit log tells the same story: every step, with its time and why each person was chosen.
    compliance = user(client, "ccompliance")
    entries = client.get("/api/audit", headers=compliance.headers,
                         params={"object_type": "alert", "object_id": str(alert["id"])}).json()
    actions = [e["action"] for e in entries]
    assert actions[:3] == ["alert.raise", "alert.escalation_started", "alert.notify"]
    assert {"alert.acknowledge", "alert.escalation_stopped", "alert.readback"} <= set(actions)
    steps = [e for e in entries if e["action"] == "alert.notify"]
    assert [s["detail"]["step"] for s in steps] == [0, 1]
    assert [s["at"] for s in steps] == [e["at"] for e in notified]
    assert "call order 2" in steps[1]["detail"]["reached"][0][1]

    # Time to acknowledge: the resident answered 2 minutes after being reached, 7 after the result.
    window = {"since": RESULT_AT.isoformat(), "until": (RESULT_AT + timedelta(hours=1)).isoformat(),
              "kind": "critical_result"}
    by_person = {r["key"]: r for r in client.get("/api/reports/alerts", headers=compliance.headers,
                                                 params={**window, "group_by": "person"}).json()["rows"]}
    assert by_person[str(covering.person_id)]["acknowledge_p50_seconds"] == 120.0
    assert by_person[str(house.id)]["escalated_past"] == 1
    [unit] = client.get("/api/reports/alerts", headers=compliance.headers,
                        params={**window, "group_by": "unit"}).json()["rows"]
    assert (unit["key"], unit["result_to_ack_p50_seconds"], unit["escalated"]) == ("4W", 420.0, 1)
