"""Issue 12's "done when": bed calls follow the charge nurse's assignments across the 19:00 hand-over,
and a flat file moving a tech between units moves the next tech-level call with it.

The nurse-call intake (WCTP) routes a bed call to ``location:<unit>/<room>/<bed>/nurse``; here the
call is raised through the alerts API with the sample's text, as that intake will. The demo's 4W has
Dana Whitaker in charge by day with Carol Nurse on 411–412, Greta Olsen in charge by night.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from tests.api.messaging.helpers import User, user
from tests.scenarios.test_critical_potassium import _apply
from tests.staffing_support import NIGHT_START, arm, csv_bytes

CALL_AT = datetime(2026, 11, 24, 20, 5, tzinfo=UTC)  # 14:05 in Chicago, the sample's submitTimestamp
BED = "location:4W/412/B/nurse"


def _call(client: TestClient, raiser: User, text: str, address: str = BED, kind: str = "nurse_call") -> int:
    raised = client.post("/api/alerts", headers=raiser.headers, json={
        "kind": kind, "priority": "urgent", "title": text, "address": address,
        "location": "4W-412-B", "choices": ["Accept", "Reject", "Call back"]})
    assert raised.status_code == 201, raised.text
    alert_id: int = raised.json()["id"]
    return alert_id


def _notified(client: TestClient, alert_id: int) -> list[tuple[int, str]]:
    events: list[dict[str, Any]] = client.get(f"/api/alerts/{alert_id}",
                                              headers=user(client, "ooperator").headers).json()["events"]
    return [(e["person_id"], e["detail"]["reason"]) for e in events if e["kind"] == "notified"]


def _person(client: TestClient, query: str) -> int:
    found: int = client.get("/api/people", params={"q": query},
                            headers=user(client, "admin").headers).json()["items"][0]["id"]
    return found


def test_bed_calls_follow_the_assignments_across_the_hand_over(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    integration, carol = user(client, "iadmin"), user(client, "cnurse")
    policy = client.post("/api/escalation/policies", headers=integration.headers, json={
        "name": "nurse calls", "alert_kind": "nurse_call",
        "steps": [{"address": "target:", "wait_minutes": 3}], "repeat": 3})
    assert policy.status_code == 201, policy.text
    _apply(db, clock, "adt_a01_admit.hl7", "MRN-NC1")  # Jane Doe in 4W-412-B
    arm(db, clock, "4W")

    # 14:05: the bathroom call rings the nurse the charge nurse assigned to the bed.
    clock.set(CALL_AT)
    first = _call(client, integration, "BATHROOM CALL 4W 412-B")
    assert _notified(client, first) == [(carol.id, "alert raised: 4W-412-B primary nurse, assigned by charge nurse "
                                                   "Dana Whitaker, RN for 07:00–19:00")]
    assert client.post(f"/api/alerts/{first}/respond", headers=carol.headers,
                       json={"choice": "Accept"}).json()["status"] == "acknowledged"

    # 18:45: the night charge nurse changes tonight's assignment for the bed.
    clock.set(NIGHT_START - timedelta(minutes=15))
    greta, tara = user(client, "golsen"), _person(client, "quinn")
    made = client.post("/api/staffing/assignments", headers=greta.headers, json={
        "unit": "4W", "room": "412", "bed": "B", "role": "primary_nurse", "person_id": tara,
        "starts_at": NIGHT_START.isoformat(), "replace": True})
    assert made.status_code == 201, made.text

    # 18:58: a call nobody answers; its 19:01 step resolves the bed again and reaches the night nurse.
    clock.set(NIGHT_START - timedelta(minutes=2))
    second = _call(client, integration, "BATHROOM CALL 4W 412-B")
    clock.set(NIGHT_START)
    jobs.fire_due(db=db, clock=clock)  # the hand-over (and whatever else is due)
    clock.set(NIGHT_START + timedelta(minutes=1))
    jobs.fire_due(db=db, clock=clock)
    steps = _notified(client, second)
    assert [pid for pid, _ in steps] == [carol.id, tara]
    assert "not acknowledged within 3 minutes: 4W-412-B primary nurse, assigned by charge nurse Greta Olsen, RN " \
           "for 19:00–07:00" in steps[1][1]
    handovers = client.get("/api/staffing/units/4W/handovers", headers=greta.headers).json()
    [done] = [h for h in handovers if h["fired_at"].startswith("2026-11-25T01:00")]
    assert done["change_at"].startswith("2026-11-25T01:00") and done["ended"] >= 14

    # 19:10: the same address now rings the night nurse from the first step.
    clock.set(NIGHT_START + timedelta(minutes=10))
    third = _call(client, integration, "BATHROOM CALL 4W 412-B")
    assert [pid for pid, _ in _notified(client, third)] == [tara]


def test_a_flat_file_moves_a_tech_and_the_next_tech_call_follows(client: TestClient, clock: FakeClock) -> None:
    integration = user(client, "iadmin")
    feed = client.post("/api/staffing/feeds", headers=integration.headers, json={
        "name": "staffing office", "kind": "sftp_csv", "id_field": "username",
        "config": {"host": "sftp.example.org", "username": "carerelay", "remote_dir": "/out", "mode": "changes",
                   "known_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "client_key_file": "/etc/key"}})
    assert feed.status_code == 201, feed.text
    lila, ada = _person(client, "grant"), _person(client, "mercer")

    def drop(name: str, *rows: str) -> None:
        sent = client.post(f"/api/staffing/feeds/{feed.json()['id']}/files", headers=integration.headers,
                           params={"name": name}, content=csv_bytes(*rows, header="person,unit,role"))
        assert sent.status_code == 200 and sent.json()["applied"] == 1, sent.text

    clock.set(NIGHT_START + timedelta(minutes=20))
    drop("staffing-1920.csv", "lgrant,4W,PCT")
    tech_call = _call(client, integration, "TOILET ASSIST 4W 412-B", "location:4W/412/B/tech", "tech_call")
    assert sorted(pid for pid, _ in _notified(client, tech_call)) == sorted([ada, lila])

    clock.advance(minutes=30)
    drop("staffing-1950.csv", "lgrant,ICU,PCT")
    after = _call(client, integration, "TOILET ASSIST 4W 412-B", "location:4W/412/B/tech", "tech_call")
    assert [pid for pid, _ in _notified(client, after)] == [ada]
    icu = _call(client, integration, "BED EXIT ICU-2-A", "location:ICU/2/A/tech", "tech_call")
    reasons = dict(_notified(client, icu))
    assert lila in reasons and "ICU-2-A tech (assigned to ICU), from file staffing-1950.csv row 2" in reasons[lila]
