"""Scenario 3: bathroom call, then V-tach — the shared WCTP samples, exactly as they are.

The nurse-call sample (bed 4W-412-B, choices Accept / Reject / Call back) rings the assigned nurse's
device; she rejects it on the WebSocket and the charge nurse gets it at once; the nurse-call server,
polling, receives StatusInfo (delivered, read) and the MessageReply with each choice. The telemetry
sample (ICU-2-A, V-tach) reaches the ICU nurse and the charge nurse together, at critical priority.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from carerelay.alerts import service as alerts
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from tests.api.messaging.helpers import user
from tests.wctpsupport import drain, occupy, post, submit, wctp_sample


def until(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(30):
        frame: dict[str, Any] = ws.receive_json()
        if frame.get("kind") == kind or frame.get("type") == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def test_bathroom_call_reject_escalates_at_once_and_the_nurse_call_server_hears_back(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    occupy(db, clock, unit="4W", room="412", bed="B", nurse_unique_id="N777")
    nurse, charge = user(client, "cnurse"), user(client, "dwhitaker")
    drain(client)  # whatever other tests left for this poller
    with client.websocket_connect("/api/ws", headers=nurse.headers) as ws:
        assert ws.receive_json()["type"] == "hello"
        answer = post(client, wctp_sample("submit_nursecall_bathroom.xml"))
        assert answer.name == "wctp-Confirmation" and answer.outcome()[:2] == ("Success", 200)
        ringing = until(ws, "alert.new")["data"]
        assert ringing["title"] == "BATHROOM CALL 4W 412-B" and ringing["location"] == "4W-412-B"
        assert ringing["choices"] == ["Accept", "Reject", "Call back"] and ringing["kind"] == "nurse_call"
        assert ringing["priority"] == "stat" and ringing["data"]["tone"] == "nurse-call"
        assert "4W-412-B primary nurse" in ringing["reasons"][str(nurse.id)]
        ws.send_json({"type": "alert.receipt", "state": "delivered", "alert_ids": [ringing["id"]]})
        ws.send_json({"type": "alert.receipt", "state": "read", "alert_ids": [ringing["id"]]})
        ws.send_json({"type": "alert.respond", "alert_id": ringing["id"], "choice": "Reject"})
        assert until(ws, "alert.responded")["status"] == "open"
    # the charge nurse has it now, without waiting out the step
    assert ringing["id"] in [a["id"] for a in client.get("/api/alerts", headers=charge.headers).json()]
    trail = client.get(f"/api/alerts/{ringing['id']}", headers=charge.headers).json()["events"]
    notified = [e for e in trail if e["kind"] == "notified"]
    assert [e["person_id"] for e in notified] == [nurse.id, charge.id]
    assert "rejected by cnurse" in notified[1]["detail"]["reason"]

    heard = drain(client)
    assert [(p.kind, p.notification or p.text) for p in heard] == [
        ("StatusInfo", "DELIVERED"), ("StatusInfo", "READ"), ("MessageReply", "Reject")]
    assert {p.response_to for p in heard} == {"NC4W-000123"}
    assert {(p.originator, p.recipient) for p in heard} == {("4W-412-B", "nursecall-4w")}
    assert drain(client) == []  # acknowledged: not handed out again

    accepted = client.post(f"/api/alerts/{ringing['id']}/respond", headers=charge.headers, json={"choice": "Accept"})
    assert accepted.json()["status"] == "acknowledged"
    [reply] = drain(client)
    assert (reply.kind, reply.text, reply.response_to) == ("MessageReply", "Accept", "NC4W-000123")


def test_vtach_reaches_the_icu_nurse_and_the_charge_nurse_together_at_critical(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    icu_nurse, charge = user(client, "hlee"), user(client, "pnovak")
    occupy(db, clock, unit="ICU", room="2", bed="A", nurse_unique_id="N809")
    answer = post(client, wctp_sample("submit_telemetry_vtach.xml"))
    assert answer.outcome()[:2] == ("Success", 200)
    for who in (icu_nurse, charge):
        [alert] = [a for a in client.get("/api/alerts", headers=who.headers).json() if a["title"].startswith("V-TACH")]
        assert alert["priority"] == "critical" and alert["kind"] == "telemetry" and alert["location"] == "ICU-2-A"
    trail = client.get(f"/api/alerts/{alert['id']}", headers=charge.headers).json()["events"]
    first = [e for e in trail if e["kind"] == "notified" and e["detail"]["step"] == 0]
    assert {e["person_id"] for e in first} == {icu_nurse.id, charge.id}


def test_the_device_is_told_what_is_wrong_with_its_alert_frames(client: TestClient, db: Database,
                                                                clock: FakeClock) -> None:
    occupy(db, clock, unit="4W", room="412", bed="B", nurse_unique_id="N777")
    nurse = user(client, "cnurse")
    with client.websocket_connect("/api/ws", headers=nurse.headers) as ws:
        ws.receive_json()
        post(client, wctp_sample("submit_nursecall_bathroom.xml"))
        alert = until(ws, "alert.new")["data"]
        ws.send_json({"type": "alert.receipt", "state": "sideways", "alert_ids": [alert["id"]]})
        assert "delivered" in until(ws, "error")["detail"]
        ws.send_json({"type": "alert.respond", "alert_id": alert["id"], "choice": "maybe later"})
        assert "accept, reject or call back" in until(ws, "error")["detail"]
        ws.send_json({"type": "alert.respond", "alert_id": 999_999_999, "choice": "Accept"})
        assert "no alert" in until(ws, "error")["detail"]
        ws.send_json({"type": "alert.respond", "alert_id": alert["id"], "choice": "Call back"})
        assert until(ws, "alert.responded")["status"] == "acknowledged"
    drain(client)


def test_an_unanswered_lethal_rhythm_in_the_ed_goes_on_to_the_ed_nurses(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    """Found by the hospital-day simulation: the "Lethal rhythm" rule's second step is
    ``group:{unit}-NURSES``, and the demo's emergency department had no such group, so a V-tach
    nobody answered within a minute reached no one at that step (fallback, "no one to reach" page)."""
    ed_nurse, charge = user(client, "ksato"), user(client, "jgreene")
    occupy(db, clock, unit="ED", room="E1", bed="A", nurse_unique_id="N816")
    answer = post(client, submit(sender="telemetry-central", recipient="ED-E1-A", text="V-TACH ED E1-A HR 176"))
    assert answer.outcome()[:2] == ("Success", 200)
    [alert] = [a for a in client.get("/api/alerts", headers=ed_nurse.headers).json() if "ED E1-A" in a["title"]]
    clock.advance(minutes=1)
    jobs.fire_due(db=db, clock=clock)
    trail = client.get(f"/api/alerts/{alert['id']}", headers=charge.headers).json()["events"]
    assert "no_one" not in [e["kind"] for e in trail]
    second = {e["person_id"] for e in trail if e["kind"] == "notified" and e["detail"]["step"] == 1}
    assert {ed_nurse.id, charge.id} <= second
    with db.read_only() as session:
        assert alerts.find_by_source(session=session, source="carerelay", source_ref=f"alert:{alert['id']}") is None
