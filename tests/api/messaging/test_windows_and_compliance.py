"""The 24-hour view, the 72-hour search, discovery for compliance, legal holds, retention, case export."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from carerelay.jobs.service import fire_due
from carerelay.messaging import retention
from carerelay.messaging.models import Message
from tests.api.messaging.helpers import direct, png, send, user


def test_clinician_window_and_search_window(client: TestClient, clock: FakeClock) -> None:
    nurse, doc, compliance = user(client, "cnurse"), user(client, "jwilson"), user(client, "ccompliance")
    conv = direct(client, nurse, doc)
    send(client, nurse, conv, "Hyperkalemia follow-up for 412-B")
    clock.advance(hours=23)
    doc = user(client, "jwilson")
    assert [c["id"] for c in client.get("/api/conversations", headers=doc.headers).json()] == [conv]
    clock.advance(hours=2)
    doc = user(client, "jwilson")
    assert client.get("/api/conversations", headers=doc.headers).json() == []
    assert client.get(f"/api/conversations/{conv}/messages", headers=doc.headers).json() == []
    found = client.get("/api/messages/search", headers=doc.headers, params={"q": "hyperkal"}).json()
    assert [m["text"] for m in found] == ["Hyperkalemia follow-up for 412-B"]
    clock.advance(hours=48)
    doc = user(client, "jwilson")
    assert client.get("/api/messages/search", headers=doc.headers, params={"q": "hyperkalemia"}).json() == []
    clock.advance(days=400)
    doc, compliance = user(client, "jwilson"), user(client, "ccompliance")
    discovered = client.get("/api/compliance/messages", headers=compliance.headers, params={"text": "hyperkalemia"})
    assert [m["text"] for m in discovered.json()] == ["Hyperkalemia follow-up for 412-B"]
    assert client.get("/api/compliance/messages", headers=doc.headers).status_code == 403


def test_search_only_covers_the_callers_conversations(client: TestClient) -> None:
    nurse, doc, other = user(client, "cnurse"), user(client, "jwilson"), user(client, "hpark")
    send(client, nurse, direct(client, nurse, doc), "zebra-striped gown left in 412")
    assert client.get("/api/messages/search", headers=other.headers, params={"q": "zebra"}).json() == []
    assert len(client.get("/api/messages/search", headers=doc.headers, params={"q": "zebra"}).json()) == 1
    assert client.get("/api/messages/search", headers=doc.headers, params={"q": "!!!"}).status_code == 422


def test_a_common_word_elsewhere_does_not_hide_the_callers_matches(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    nurse, doc, other = user(client, "cnurse"), user(client, "jwilson"), user(client, "hpark")
    send(client, nurse, direct(client, nurse, doc), "potassium recheck for 412-B at noon")
    elsewhere = direct(client, other, nurse)  # the doctor is not in this one
    clock.advance(minutes=10)
    with db.unit_of_work() as session:
        session.execute(insert(Message), [
            {"conversation_id": elsewhere, "seq": n, "sender_id": other.id, "kind": "text",
             "body": f"potassium trend {n}", "priority": "routine", "needs_ack": False, "silent": False,
             "created_at": clock.now(), "warnings_confirmed": []}
            for n in range(1, 2_501)])
    found = client.get("/api/messages/search", headers=doc.headers, params={"q": "potassium"})
    assert [m["text"] for m in found.json()] == ["potassium recheck for 412-B at noon"]
    assert len(client.get("/api/messages/search", headers=nurse.headers, params={"q": "potassium"}).json()) == 50


def test_windows_are_organization_settings(client: TestClient, clock: FakeClock) -> None:
    nurse, doc, admin = user(client, "cnurse"), user(client, "jwilson"), user(client, "admin")
    conv = direct(client, nurse, doc)
    send(client, nurse, conv, "short window")
    client.patch("/api/messaging/policy", headers=admin.headers, json={"visible_hours": 2})
    clock.advance(hours=3)
    assert client.get("/api/conversations", headers=doc.headers).json() == []
    admin = user(client, "admin")
    bad = client.patch("/api/messaging/policy", headers=admin.headers, json={"visible_hours": 0})
    assert bad.status_code == 422


def _count(db: Database) -> int:
    with db.unit_of_work() as session:
        return int(session.execute(select(func.count()).select_from(Message)).scalar_one())


def test_retention_purge_spares_legal_holds(client: TestClient, db: Database, clock: FakeClock) -> None:
    nurse, doc, compliance = user(client, "cnurse"), user(client, "jwilson"), user(client, "ccompliance")
    kept_conv = direct(client, nurse, doc)
    send(client, nurse, kept_conv, "under litigation")
    other_conv = client.post("/api/conversations", headers=nurse.headers,
                             json={"kind": "group", "member_ids": [doc.id], "title": "routine"}).json()["id"]
    send(client, nurse, other_conv, "routine chatter")
    hold = client.post("/api/compliance/holds", headers=compliance.headers,
                       json={"conversation_id": kept_conv, "reason": "case 2026-17"})
    assert hold.status_code == 201
    before = _count(db)
    early = client.post("/api/compliance/purge", headers=compliance.headers).json()
    assert early["messages"] == 0 and _count(db) == before
    clock.advance(days=366 * 18 + 2)
    compliance = user(client, "ccompliance")
    purged = client.post("/api/compliance/purge", headers=compliance.headers).json()
    assert purged["kept_on_hold"] >= 1 and purged["messages"] >= 1
    texts = {m["text"] for m in client.get("/api/compliance/messages", headers=compliance.headers,
                                           params={"limit": 5000}).json()}
    assert "under litigation" in texts and "routine chatter" not in texts
    client.post(f"/api/compliance/holds/{hold.json()['id']}/release", headers=compliance.headers)
    assert client.post("/api/compliance/purge", headers=compliance.headers).json()["messages"] >= 1


def test_retention_purge_runs_daily_on_a_durable_timer(client: TestClient, db: Database, clock: FakeClock) -> None:
    nurse, doc, compliance = user(client, "cnurse"), user(client, "jwilson"), user(client, "ccompliance")
    held = direct(client, nurse, doc)
    send(client, nurse, held, "timer: under litigation")
    routine = client.post("/api/conversations", headers=nurse.headers,
                          json={"kind": "group", "member_ids": [doc.id], "title": "routine"}).json()["id"]
    send(client, nurse, routine, "timer: routine chatter")
    assert client.post("/api/compliance/holds", headers=compliance.headers,
                       json={"conversation_id": held, "reason": "case 2026-18"}).status_code == 201
    with db.unit_of_work() as session:
        jobs.cancel(session=session, clock=clock, key=retention.PURGE_KEY)  # one a real server in this run planned
        planned = retention.ensure_scheduled(session=session, clock=clock)
        assert retention.ensure_scheduled(session=session, clock=clock).id == planned.id  # one, however often
    # Other domains' timers (unit hand-overs…) fall due too as the clock moves; the purge's own timer
    # is followed through _pending_purges.
    fire_due(db=db, clock=clock)
    assert _pending_purges(db) == [clock.now() + timedelta(days=1)]
    before = _count(db)
    clock.advance(days=1)
    fire_due(db=db, clock=clock)
    assert _pending_purges(db) == [clock.now() + timedelta(days=1)] and _count(db) == before  # none old enough

    clock.advance(days=round(365.25 * 18) + 1)
    fire_due(db=db, clock=clock)
    assert _pending_purges(db) == [clock.now() + timedelta(days=1)]
    compliance = user(client, "ccompliance")
    texts = {m["text"] for m in client.get("/api/compliance/messages", headers=compliance.headers,
                                           params={"text": "timer"}).json()}
    assert texts == {"timer: under litigation"}
    trail = client.get("/api/audit", headers=compliance.headers, params={"action": "compliance.purge"}).json()
    assert trail[-1]["actor_name"] == "retention-timer" and trail[-1]["detail"]["deleted"] >= 1


def _pending_purges(db: Database) -> list[datetime]:
    with db.unit_of_work() as session:
        return [t.due_at for t in jobs.pending(session=session, key=retention.PURGE_KEY)]


def test_changing_the_retention_period_moves_the_purge_cutoff(client: TestClient, clock: FakeClock) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    send(client, nurse, direct(client, nurse, doc), "retention: three years old")
    clock.advance(days=3 * 366)
    admin, compliance = user(client, "admin"), user(client, "ccompliance")

    def remaining() -> list[str]:
        found = client.get("/api/compliance/messages", headers=compliance.headers, params={"text": "retention"})
        return [m["text"] for m in found.json()]

    kept = client.post("/api/compliance/purge", headers=compliance.headers).json()
    assert remaining() == ["retention: three years old"]  # 18 years by default
    assert client.patch("/api/messaging/policy", headers=admin.headers, json={"retention_years": 0}).status_code == 422
    changed = client.patch("/api/messaging/policy", headers=admin.headers, json={"retention_years": 2})
    assert changed.status_code == 200 and changed.json()["retention_years"] == 2
    purged = client.post("/api/compliance/purge", headers=compliance.headers).json()
    assert purged["messages"] >= 1 and purged["cutoff"] > kept["cutoff"]
    assert remaining() == []


def test_case_export_proves_messages_unaltered(client: TestClient) -> None:
    nurse, doc, compliance = user(client, "cnurse"), user(client, "jwilson"), user(client, "ccompliance")
    conv = direct(client, nurse, doc)
    upload = client.post("/api/attachments", headers=nurse.headers, files={"file": ("w.png", png(), "image/png")})
    send(client, nurse, conv, "wound photo", attachment_ids=[upload.json()["id"]])
    send(client, doc, conv, "thanks")
    client.get(f"/api/conversations/{conv}/messages", headers=doc.headers)
    response = client.post("/api/compliance/exports", headers=compliance.headers,
                           json={"conversation_ids": [conv], "reason": "subpoena 42"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["audit_chain"]["ok"] and manifest["messages"] == 2
    messages = [json.loads(line) for line in archive.read("messages.jsonl").decode().splitlines()]
    entries = [json.loads(line) for line in archive.read("audit.jsonl").decode().splitlines()]
    sent_hashes = {e["detail"]["message_id"]: e["detail"]["content_sha256"] for e in entries
                   if e["action"] == "message.send"}
    assert {m["id"]: m["content_sha256"] for m in messages} == sent_hashes
    assert any(e["action"] == "conversation.read" for e in entries)
    assert archive.read(f"attachments/{upload.json()['id']}.png") == png()
    assert client.post("/api/compliance/exports", headers=doc.headers,
                       json={"conversation_ids": [conv], "reason": "curious"}).status_code == 403


def test_nothing_purged_younger_than_retention_even_by_sql(client: TestClient, db: Database) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    send(client, nurse, direct(client, nurse, doc), "young")
    with db.unit_of_work() as session:
        conn = session.connection()
        conn.execute(text("DELETE FROM retention_state"))
        conn.execute(text("INSERT INTO retention_state (id, purge_before) VALUES (1, :t)"),
                     {"t": "1990-01-01 00:00:00.000000" if conn.dialect.name == "sqlite" else "1990-01-01T00:00:00Z"})
        with pytest.raises(DBAPIError, match="retention"), conn.begin_nested():
            conn.execute(text("DELETE FROM messages WHERE body = 'young'"))
