"""Alerts escalate until acknowledged, step by step on durable timers, and never reach nobody."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from tests.api.messaging.helpers import User, user


def _group_id(client: TestClient, headers: dict[str, str], code: str) -> int:
    group_id: int = next(g["id"] for g in client.get("/api/groups", headers=headers).json() if g["code"] == code)
    return group_id


def _policy(client: TestClient, admin: User, **body: Any) -> dict[str, Any]:
    response = client.post("/api/escalation/policies", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _raise(client: TestClient, who: User, address: str, kind: str = "manual", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/alerts", headers=who.headers,
                           json={"kind": kind, "title": "K+ 6.8 (HH) for DOE, JANE", "address": address,
                                 "priority": "critical", **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _reached(client: TestClient, viewer: User, alert_id: int) -> list[tuple[int | None, str]]:
    events = client.get(f"/api/alerts/{alert_id}", headers=viewer.headers).json()["events"]
    return [(e["person_id"], e["detail"].get("reason", "")) for e in events if e["kind"] == "notified"]


def test_escalates_each_step_until_acknowledged(client: TestClient, db: Database, clock: FakeClock) -> None:
    admin, operator = user(client, "iadmin"), user(client, "ooperator")
    house, wilson = user(client, "ghouse"), user(client, "jwilson")
    card = _group_id(client, admin.headers, "CARD-PHYS")
    _policy(client, admin, name="telemetry", alert_kind="telemetry",
            steps=[{"address": "target:", "wait_minutes": 5}, {"address": f"person:{wilson.id}", "wait_minutes": 5},
                   {"address": f"group:{card}", "wait_minutes": 10}])
    alert = _raise(client, operator, f"person:{house.id}", kind="telemetry")
    assert [p for p, _ in _reached(client, operator, alert["id"])] == [house.id]
    clock.advance(minutes=4, seconds=59)
    assert jobs.fire_due(db=db, clock=clock) == 0
    clock.advance(seconds=1)
    assert jobs.fire_due(db=db, clock=clock) == 1
    reached = _reached(client, operator, alert["id"])
    assert [p for p, _ in reached] == [house.id, wilson.id]
    assert "not acknowledged within 5 minutes" in reached[1][1]
    wilson = user(client, "jwilson")
    acked = client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=wilson.headers)
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == wilson.id
    clock.advance(hours=2)
    assert jobs.fire_due(db=db, clock=clock) == 0
    assert len(_reached(client, operator, alert["id"])) == 2
    with db.unit_of_work() as session:
        assert jobs.pending(session=session, key=f"alert:{alert['id']}:step") == []


def test_reject_escalates_at_once_and_readback_closes_the_loop(client: TestClient, clock: FakeClock) -> None:
    admin, operator = user(client, "iadmin"), user(client, "ooperator")
    nurse, charge = user(client, "cnurse"), user(client, "dwhitaker")
    _policy(client, admin, name="nurse call", alert_kind="nurse_call",
            steps=[{"address": "target:", "wait_minutes": 3}, {"address": f"person:{charge.id}", "wait_minutes": 3}])
    alert = _raise(client, operator, f"person:{nurse.id}", kind="nurse_call", choices=["Accept", "Reject"])
    rejected = client.post(f"/api/alerts/{alert['id']}/respond", headers=nurse.headers, json={"choice": "Reject"})
    assert rejected.status_code == 200
    assert [p for p, _ in _reached(client, operator, alert["id"])] == [nurse.id, charge.id]
    early = client.post(f"/api/alerts/{alert['id']}/readback", headers=charge.headers, json={"text": "K 6.8"})
    assert early.status_code == 422
    assert client.post(f"/api/alerts/{alert['id']}/respond", headers=charge.headers,
                       json={"choice": "accept"}).json()["status"] == "acknowledged"
    other = client.post(f"/api/alerts/{alert['id']}/readback", headers=nurse.headers, json={"text": "K 6.8"})
    assert other.status_code == 403
    closed = client.post(f"/api/alerts/{alert['id']}/readback", headers=charge.headers,
                         json={"text": "Read back: potassium 6.8 mmol/L, repeat verified"})
    assert closed.json()["status"] == "closed"
    bad = client.post(f"/api/alerts/{alert['id']}/respond", headers=charge.headers, json={"choice": "maybe"})
    assert bad.status_code == 422


def test_policy_edits_do_not_change_runs_in_progress(client: TestClient, db: Database, clock: FakeClock) -> None:
    admin, operator = user(client, "iadmin"), user(client, "ooperator")
    house, wilson, cuddy = user(client, "ghouse"), user(client, "jwilson"), user(client, "lcuddy")
    policy = _policy(client, admin, name="snapshot", alert_kind="order",
                     steps=[{"address": "target:", "wait_minutes": 5},
                            {"address": f"person:{wilson.id}", "wait_minutes": 5}])
    alert = _raise(client, operator, f"person:{house.id}", kind="order")
    edited = client.patch(f"/api/escalation/policies/{policy['id']}", headers=admin.headers, json={
        "steps": [{"address": "target:", "wait_minutes": 5}, {"address": f"person:{cuddy.id}", "wait_minutes": 5}]})
    assert edited.status_code == 200, edited.text
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)
    operator = user(client, "ooperator")
    assert [p for p, _ in _reached(client, operator, alert["id"])] == [house.id, wilson.id]


def test_never_nobody(client: TestClient, db: Database, clock: FakeClock) -> None:
    admin, operator = user(client, "admin"), user(client, "ooperator")
    gone = user(client, "tquinn")
    client.patch(f"/api/people/{gone.id}", headers=admin.headers, json={"active": False})
    alert = _raise(client, operator, f"person:{gone.id}")
    trail = client.get(f"/api/alerts/{alert['id']}", headers=operator.headers).json()["events"]
    kinds = [e["kind"] for e in trail]
    assert "no_one" in kinds
    no_one = next(e for e in trail if e["kind"] == "no_one")
    assert "inactive" in no_one["detail"]["explanation"]
    operators = set(client.get(f"/api/groups/{_group_id(client, admin.headers, 'OPERATORS')}",
                               headers=admin.headers).json()["member_ids"])
    assert {p for p, _ in _reached(client, operator, alert["id"])} == operators
    mine = client.get("/api/alerts", headers=operator.headers).json()
    assert any(a["kind"] == "no_one_to_reach" and str(alert["id"]) in a["title"] for a in mine)


def test_deactivated_mid_escalation_goes_to_the_fallback(client: TestClient, db: Database, clock: FakeClock) -> None:
    admin, operator = user(client, "admin"), user(client, "ooperator")
    house, resident = user(client, "ghouse"), user(client, "ecole")
    _policy(client, admin, name="mid", alert_kind="mid",
            steps=[{"address": "target:", "wait_minutes": 5}, {"address": f"person:{resident.id}", "wait_minutes": 5}])
    alert = _raise(client, operator, f"person:{house.id}", kind="mid")
    client.patch(f"/api/people/{resident.id}", headers=admin.headers, json={"active": False})
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)
    operator = user(client, "ooperator")
    reached = {p for p, _ in _reached(client, operator, alert["id"])}
    assert resident.id not in reached and operator.id in reached


def test_alerts_are_private_to_those_they_reached(client: TestClient) -> None:
    operator, house, stranger = user(client, "ooperator"), user(client, "ghouse"), user(client, "cnurse")
    alert = _raise(client, operator, f"person:{house.id}")
    assert client.get(f"/api/alerts/{alert['id']}", headers=stranger.headers).status_code == 404
    assert client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=stranger.headers).status_code == 404
    assert client.get(f"/api/alerts/{alert['id']}", headers=house.headers).status_code == 200
    denied = client.post("/api/alerts", headers=house.headers, json={"title": "x", "address": "person:1"})
    assert denied.status_code == 403
    bad = client.post("/api/alerts", headers=operator.headers, json={"title": "x", "address": "nowhere:1"})
    assert bad.status_code == 422 and bad.json()["field"] == "address"


def test_a_timer_fires_once_and_a_failing_one_is_retried(db: Database, clock: FakeClock) -> None:
    calls: list[int] = []
    registry = jobs.Registry()

    @registry.register("test.ok")
    def ok(session: Session, clock: Any, timer: Timer) -> None:
        calls.append(timer.id)

    @registry.register("test.fails")
    def fails(session: Session, clock: Any, timer: Timer) -> None:
        raise RuntimeError("gateway down")

    with db.unit_of_work() as session:
        good = jobs.schedule(session=session, clock=clock, kind="test.ok", due_at=clock.now(), params={})
        bad = jobs.schedule(session=session, clock=clock, kind="test.fails", due_at=clock.now(), params={})
        good_id, bad_id = good.id, bad.id
    assert jobs.fire_due(db=db, clock=clock, registry=registry, limit=2) == 2
    assert jobs.fire_due(db=db, clock=clock, registry=registry) == 0
    assert calls == [good_id]
    with db.unit_of_work() as session:
        failed = session.execute(select(Timer).where(Timer.id == bad_id)).scalar_one()
        assert failed.fired_at is None and failed.attempts == 1 and "gateway down" in (failed.last_error or "")
        assert failed.due_at > clock.now()


def test_needs_ack_message_escalates_until_a_recipient_acknowledges(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    admin, nurse, house, wilson = user(client, "iadmin"), user(client, "cnurse"), user(client, "ghouse"), \
        user(client, "jwilson")
    _policy(client, admin, name="stat messages", alert_kind="message", priority="stat",
            steps=[{"address": "target:", "wait_minutes": 2}, {"address": f"person:{wilson.id}", "wait_minutes": 5}])
    conv = client.post("/api/conversations", headers=nurse.headers,
                       json={"kind": "address", "address": f"person:{house.id}"}).json()["id"]
    sent = client.post(f"/api/conversations/{conv}/messages", headers=nurse.headers,
                       json={"text": "BP 78/40 in 412-B, please come", "priority": "stat", "needs_ack": True}).json()
    assert [a["kind"] for a in client.get("/api/alerts", headers=house.headers).json()] == ["message"]
    assert client.get("/api/alerts", headers=nurse.headers).json() == []
    clock.advance(minutes=2)
    jobs.fire_due(db=db, clock=clock)
    wilson = user(client, "jwilson")
    assert wilson.id in client.get(f"/api/conversations/{conv}", headers=wilson.headers).json()["member_ids"]
    assert [m["id"] for m in client.get(f"/api/conversations/{conv}/messages", headers=wilson.headers).json()] == [
        sent["id"]]
    acked = client.post(f"/api/messages/{sent['id']}/acknowledge", headers=wilson.headers)
    assert acked.status_code == 200
    nurse = user(client, "cnurse")
    receipts = {r["person_id"]: r for r in client.get(f"/api/messages/{sent['id']}/receipts",
                                                      headers=nurse.headers).json()}
    assert receipts[wilson.id]["acknowledged_at"] is not None and receipts[house.id]["acknowledged_at"] is None
    clock.advance(hours=1)
    assert jobs.fire_due(db=db, clock=clock) == 0
    house = user(client, "ghouse")
    assert client.get("/api/alerts", headers=house.headers).json() == []
