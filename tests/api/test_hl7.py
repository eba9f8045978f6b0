"""HL7 monitor and patients API: search, read, reprocess, purge, feed silence, census, care team; reads audited."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.audit.models import AuditEntry
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.models import Hl7Message
from carerelay.integrations.hl7.store import Inbound, process_pending, receive_messages
from carerelay.patients.service import ResultPolicy
from tests.conftest import sign_in
from tests.hl7support import personalise, sample, uniq

FEED = Feed(name="default", port=0)


def _ingest(db: Database, clock: FakeClock, *messages: bytes) -> list[int]:
    with db.unit_of_work() as session:
        receipts = receive_messages(session=session, clock=clock,
                                    items=[Inbound(FEED, m, "127.0.0.1:1") for m in messages])
    with db.unit_of_work() as session:
        process_pending(session=session, clock=clock, feeds={"default": FEED}, policy=ResultPolicy(),
                        stat_priorities=("S",), limit=100)
    return [r.message_id for r in receipts if r.message_id is not None]


def test_search_read_census_care_team_and_audit(client: TestClient, db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    adt_id, oru_id = _ingest(db, clock, personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=uniq("A")),
                             personalise(sample("oru_r01_critical_potassium.hl7"), mrn=mrn, control=uniq("O")))
    admin = sign_in(client, "iadmin")
    found = client.get("/api/hl7/messages", params={"mrn": mrn}, headers=admin).json()
    assert [m["id"] for m in found] == [oru_id, adt_id] and {m["status"] for m in found} == {"processed"}
    only_oru = client.get("/api/hl7/messages", params={"mrn": mrn, "message_type": "ORU"}, headers=admin).json()
    assert [m["message_type"] for m in only_oru] == ["ORU^R01"]
    detail = client.get(f"/api/hl7/messages/{adt_id}", headers=admin).json()
    assert detail["text"].startswith("MSH|^~\\&|EPIC") and mrn in detail["text"]
    nurse = sign_in(client, "cnurse")
    assert client.get("/api/hl7/messages", headers=nurse).status_code == 403
    census = client.get("/api/units/4W/census", headers=nurse).json()
    row = next(p for p in census["patients"] if p["mrn"] == mrn)
    assert row["room"] == "412" and row["bed"] == "B" and row["attending"] == "Dr. Gregory House"
    team = client.get(f"/api/patients/{row['patient_id']}/care-team", headers=nurse).json()
    assert {m["role"]: m["person_name"] for m in team}["attending"] == "Dr. Gregory House"
    results = client.get(f"/api/patients/{row['patient_id']}/results?critical=true", headers=nurse).json()
    assert [r["code"] for r in results] == ["2823-3"]
    patient = client.get("/api/patients", params={"mrn": mrn}, headers=nurse).json()
    assert patient["encounter"]["location"] == "4W^412^B"
    handoffs = client.get("/api/hl7/handoffs", params={"kind": "critical_result"}, headers=admin).json()
    assert any(mrn in h["summary"] for h in handoffs)
    with db.unit_of_work() as session:
        actions = set(session.execute(select(AuditEntry.action).where(AuditEntry.actor_name == "cnurse")).scalars())
    assert {"patient.census.read", "patient.care_team.read", "patient.results.read", "patient.read"} <= actions


def test_reprocess_after_a_fix_and_purge(client: TestClient, db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    # a message whose processing failed (simulated: the store row is put in error as the processor would)
    bad = personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=uniq("F"))
    (msg_id,) = _ingest(db, clock, bad)
    with db.unit_of_work() as session:
        row = session.get(Hl7Message, msg_id)
        assert row is not None
        row.status, row.error = "error", "simulated failure"
    admin = sign_in(client, "iadmin")
    errors = client.get("/api/hl7/messages", params={"status": "error", "mrn": mrn}, headers=admin).json()
    assert [m["id"] for m in errors] == [msg_id]
    queued = client.post("/api/hl7/messages/reprocess", json={"ids": [msg_id]}, headers=admin)
    assert queued.status_code == 200 and queued.json() == {"ids": [msg_id], "count": 1}
    with db.unit_of_work() as session:
        row = session.get(Hl7Message, msg_id)
        assert row is not None and row.status == "received" and row.error is None
    assert client.post("/api/hl7/messages/reprocess", json={"ids": [10**9]}, headers=admin).status_code == 404
    clock.advance(days=40)
    with db.unit_of_work() as session:
        done = process_pending(session=session, clock=clock, feeds={"default": FEED}, policy=ResultPolicy(),
                               stat_priorities=("S",), limit=100)
    assert [(d.message_id, d.status) for d in done if d.message_id == msg_id] == [(msg_id, "processed")]
    admin = sign_in(client, "iadmin")  # 40 days later: a new session
    purged = client.post("/api/hl7/messages/purge", json={"older_than_days": 30}, headers=admin)
    assert purged.status_code == 200 and purged.json()["deleted"] >= 1
    with db.unit_of_work() as session:
        assert session.get(Hl7Message, msg_id) is None
        assert session.execute(select(AuditEntry).where(AuditEntry.action == "hl7.message.purge")).first()
    assert client.post("/api/hl7/messages/purge", json={"older_than_days": 0}, headers=admin).status_code == 422


def test_feed_silence_is_reported(client: TestClient, db: Database, clock: FakeClock) -> None:
    from carerelay.integrations.hl7 import store

    feeds = [Feed(name="quiet-adt", port=0, silence_minutes=10)]
    seen: list[str] = []
    registered = list(store._silence_hooks)  # the alerts domain's hook stays registered after this test
    store.on_feed_silent(lambda session, clock, health: seen.append(health.feed))
    try:
        with db.unit_of_work() as session:
            assert store.check_feeds(session=session, clock=clock, feeds=feeds)[0].silent_since is None
        clock.advance(minutes=11)
        with db.unit_of_work() as session:
            health = store.check_feeds(session=session, clock=clock, feeds=feeds)[0]
        assert health.silent_since is not None and health.newly_silent and seen == ["quiet-adt"]
        clock.advance(minutes=1)
        with db.unit_of_work() as session:
            again = store.check_feeds(session=session, clock=clock, feeds=feeds)[0]
        assert again.silent_since == health.silent_since and not again.newly_silent and seen == ["quiet-adt"]
        with db.unit_of_work() as session:  # it speaks: the finding clears
            receive_messages(session=session, clock=clock, items=[Inbound(
                feeds[0], personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=uniq("S")), None)])
        clock.advance(timedelta(minutes=5))
        with db.unit_of_work() as session:
            assert store.check_feeds(session=session, clock=clock, feeds=feeds)[0].silent_since is None
    finally:
        store._silence_hooks[:] = registered
    listing = client.get("/api/hl7/feeds", headers=sign_in(client, "iadmin")).json()
    assert listing[0]["name"] == "default" and "counts" in listing[0]


def test_search_by_control_id_and_time_and_reprocess_a_window(client: TestClient, db: Database,
                                                               clock: FakeClock) -> None:
    start = datetime(2031, 3, 3, 8, secrets.randbelow(60), tzinfo=UTC)  # a window no other test writes in
    mrn = uniq("MRN")
    ids, controls = [], []
    for hour in range(3):
        clock.set(start + timedelta(hours=hour))
        controls.append(uniq("T"))
        ids += _ingest(db, clock, personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=controls[-1]))
    admin = sign_in(client, "iadmin")

    def search(**params: str) -> list[int]:
        answer = client.get("/api/hl7/messages", params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        return [m["id"] for m in answer.json()]

    def iso(instant: datetime) -> str:
        return instant.isoformat()

    assert search(control_id=controls[1]) == [ids[1]]
    assert search(control_id="NO-SUCH-CONTROL-ID") == []
    assert search(since=iso(start + timedelta(minutes=30)), until=iso(start + timedelta(hours=2))) == [ids[1]]
    assert search(since=iso(start + timedelta(hours=1)), mrn=mrn) == [ids[2], ids[1]]  # newest first
    assert search(until=iso(start + timedelta(hours=1)), mrn=mrn) == [ids[0]]  # until is exclusive
    assert client.get("/api/hl7/messages", params={"since": "tomorrow"}, headers=admin).status_code == 422
    with db.unit_of_work() as session:
        for message_id in ids:
            row = session.get_one(Hl7Message, message_id)
            row.status, row.error = "error", "simulated failure"
    queued = client.post("/api/hl7/messages/reprocess", headers=admin, json={
        "since": iso(start), "until": iso(start + timedelta(hours=2))})  # default status: error
    assert queued.status_code == 200 and queued.json() == {"ids": ids[:2], "count": 2}
    with db.unit_of_work() as session:
        assert [session.get_one(Hl7Message, i).status for i in ids] == ["received", "received", "error"]
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "hl7.message.search",
                                                         AuditEntry.actor_name == "iadmin")
                                .order_by(AuditEntry.seq.desc()).limit(1)).scalar_one()
    assert entry.detail["mrn"] == mrn
