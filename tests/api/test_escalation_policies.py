"""Escalation policies through the API: edit, deactivate, scope; chains to their end; every step audited."""

from __future__ import annotations

from datetime import time
from typing import Any

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from tests.api.messaging.helpers import User, user
from tests.scheduling_factories import department, make_assignment


def _policy(client: TestClient, admin: User, **body: Any) -> dict[str, Any]:
    response = client.post("/api/escalation/policies", headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _raise(client: TestClient, address: str, kind: str = "manual", priority: str = "urgent",
           **extra: Any) -> dict[str, Any]:
    response = client.post("/api/alerts", headers=user(client, "ooperator").headers,
                           json={"kind": kind, "title": "Room 412 needs you", "address": address,
                                 "priority": priority, **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _trail(client: TestClient, alert_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(f"/api/alerts/{alert_id}",
                                              headers=user(client, "ccompliance").headers).json()["events"]
    return events


def _started(client: TestClient, alert_id: int) -> str:
    policy: str = next(e for e in _trail(client, alert_id) if e["kind"] == "escalation_started")["detail"]["policy"]
    return policy


def test_edit_and_deactivate_through_the_api_keep_running_snapshots(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    admin = user(client, "iadmin")
    house, wilson, cuddy = user(client, "ghouse"), user(client, "jwilson"), user(client, "lcuddy")
    policy = _policy(client, admin, name="orders", alert_kind="order",
                     steps=[{"address": "target:", "wait_minutes": 5},
                            {"address": f"person:{wilson.id}", "wait_minutes": 5}])
    running = _raise(client, f"person:{house.id}", kind="order")

    edited = client.patch(f"/api/escalation/policies/{policy['id']}", headers=admin.headers,
                          json={"steps": [{"address": "target:", "wait_minutes": 5},
                                          {"address": f"person:{cuddy.id}", "wait_minutes": 5}]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["steps"][1]["address"] == f"person:{cuddy.id}"
    later = _raise(client, f"person:{house.id}", kind="order")
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)
    reached = {a: [e["person_id"] for e in _trail(client, a) if e["kind"] == "notified"]
               for a in (running["id"], later["id"])}
    assert reached == {running["id"]: [house.id, wilson.id], later["id"]: [house.id, cuddy.id]}

    assert client.delete(f"/api/escalation/policies/{policy['id']}", headers=admin.headers).status_code == 204
    assert client.get(f"/api/escalation/policies/{policy['id']}", headers=admin.headers).json()["active"] is False
    after = _raise(client, f"person:{house.id}", kind="order")
    assert _started(client, after["id"]) == "Everything else: then the operators"

    audit = client.get("/api/audit", headers=user(client, "ccompliance").headers,
                       params={"object_type": "escalation_policy", "object_id": str(policy["id"])}).json()
    assert [e["action"] for e in audit] == ["escalation.create_policy", "escalation.update_policy",
                                             "escalation.update_policy"]
    assert audit[1]["detail"]["before"]["steps"][1]["address"] == f"person:{wilson.id}"
    assert audit[2]["detail"] == {"before": {"active": True}, "after": {"active": False}}


def test_policy_errors_name_what_is_wrong(client: TestClient) -> None:
    admin, nurse = user(client, "iadmin"), user(client, "cnurse")
    [critical] = [p for p in client.get("/api/escalation/policies", headers=nurse.headers).json()
                  if p["alert_kind"] == "critical_result"]
    taken = client.post("/api/escalation/policies", headers=admin.headers, json={
        "name": "second critical", "alert_kind": "critical_result", "steps": [{"address": "target:",
                                                                               "wait_minutes": 5}]})
    assert taken.status_code == 409 and "Critical lab results" in taken.json()["detail"]
    unknown = client.post("/api/escalation/policies", headers=admin.headers, json={
        "name": "typo", "alert_kind": "typo", "steps": [{"address": "role:Cardiology Oncall", "wait_minutes": 5}]})
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("step 1: no assignment")
    bad_order = client.post("/api/escalation/policies", headers=admin.headers, json={
        "name": "typo", "alert_kind": "typo", "steps": [{"address": "role:Cardiology On Call#0", "wait_minutes": 5}]})
    assert bad_order.status_code == 422 and "call order" in bad_order.json()["detail"]
    assert client.patch(f"/api/escalation/policies/{critical['id']}", headers=admin.headers,
                        json={"name": None}).status_code == 422
    assert client.patch(f"/api/escalation/policies/{critical['id']}", headers=nurse.headers,
                        json={"repeat": 2}).status_code == 403
    assert client.patch("/api/escalation/policies/999999", headers=admin.headers,
                        json={"repeat": 2}).status_code == 404
    assert client.patch(f"/api/escalation/policies/{critical['id']}", headers=admin.headers,
                        json={"sideways": 1}).status_code == 422


def test_most_specific_policy_wins_kind_then_department_then_priority(client: TestClient) -> None:
    admin = user(client, "iadmin")
    card = client.get("/api/departments", headers=admin.headers).json()
    card_id = next(d["id"] for d in card if d["code"] == "CARD")
    _policy(client, admin, name="cardiology stat", department_id=card_id, priority="stat",
            steps=[{"address": "target:", "wait_minutes": 2}])
    _policy(client, admin, name="cardiology consults", alert_kind="consult", department_id=card_id,
            steps=[{"address": "target:", "wait_minutes": 10}])
    _policy(client, admin, name="all stat consults", alert_kind="consult", priority="stat",
            steps=[{"address": "target:", "wait_minutes": 10}])
    # A role's address carries its department: a page to cardiology on call is cardiology's.
    routine = _raise(client, "role:Cardiology On Call")
    assert routine["department_id"] == card_id
    assert _started(client, routine["id"]) == "Cardiology on call"
    assert _started(client, _raise(client, "role:Cardiology On Call", priority="stat")["id"]) == "cardiology stat"
    assert _started(client, _raise(client, "role:Cardiology On Call", kind="consult")["id"]) == "cardiology consults"
    stat_consult = _raise(client, "role:Cardiology On Call", kind="consult", priority="stat")
    assert _started(client, stat_consult["id"]) == "cardiology consults"
    elsewhere = _raise(client, "role:Hospitalist", kind="consult", priority="stat")
    assert _started(client, elsewhere["id"]) == "all stat consults"
    assert _started(client, _raise(client, "role:Hospitalist")["id"]) == "Hospitalist on call"


def test_a_chain_runs_out_to_the_fallback_and_every_step_is_audited(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    """Nurse (forwards to Dr. House) → Dr. Cuddy (pager after 1 minute) → an empty team (no one:
    the fallback at once), twice over (repeat 1), then the operators and "exhausted"."""
    admin = user(client, "iadmin")
    house, cuddy, nurse = user(client, "ghouse"), user(client, "lcuddy"), user(client, "cnurse")
    assert client.post("/api/routing/rules", headers=cuddy.headers,
                       json={"action": "add_contact", "contact_kind": "pager", "after_minutes": 1}).status_code == 201
    assert client.post("/api/routing/rules", headers=nurse.headers,
                       json={"action": "forward", "forward_to": f"person:{house.id}"}).status_code == 201
    empty = client.post("/api/groups", headers=user(client, "admin").headers,
                        json={"kind": "team", "code": "EMPTY-TEAM", "name": "Nobody", "member_ids": []})
    assert empty.status_code == 201, empty.text
    _policy(client, admin, name="runs out", alert_kind="runs_out", repeat=1, fallback_address="group:OPERATORS",
            steps=[{"address": "target:", "wait_minutes": 3}, {"address": f"person:{cuddy.id}", "wait_minutes": 3},
                   {"address": f"team:{empty.json()['id']}", "wait_minutes": 3}])
    alert = _raise(client, f"person:{nurse.id}", kind="runs_out")
    for _ in range(8):
        clock.advance(minutes=3)
        jobs.fire_due(db=db, clock=clock)
    trail = _trail(client, alert["id"])
    kinds = [e["kind"] for e in trail]
    assert kinds.count("forwarded") == 2 and kinds.count("followup") == 2 and kinds.count("no_one") == 2
    assert kinds.count("repeat") == 1 and kinds.count("fallback") == 3 and kinds[-1] == "exhausted"
    notified = [e["person_id"] for e in trail if e["kind"] == "notified"]
    assert notified[:2] == [house.id, cuddy.id] and nurse.id not in notified
    assert _operators(client) <= set(notified)
    with db.unit_of_work() as session:
        assert [t.key for t in jobs.pending(session=session) if (t.key or "").startswith(f"alert:{alert['id']}:")] \
            == []
    _assert_every_step_audited(client, alert["id"])


def test_acknowledge_stop_and_hold_are_audited(client: TestClient, db: Database, clock: FakeClock) -> None:
    clock.set(clock.now().replace(hour=4, minute=0))  # 22:00 in Chicago
    house = user(client, "ghouse")
    assert client.post("/api/routing/rules", headers=house.headers,
                       json={"priorities": ["routine", "critical"], "window_start": "21:00", "window_end": "07:00",
                             "action": "hold", "hold_until": "07:00"}).status_code == 201
    held = _raise(client, f"person:{house.id}", kind="audited", priority="routine")
    floored = _raise(client, f"person:{house.id}", kind="audited", priority="critical")
    clock.advance(hours=9)
    jobs.fire_due(db=db, clock=clock)
    house = user(client, "ghouse")
    for alert in (held, floored):
        assert client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=house.headers).status_code == 200
        _assert_every_step_audited(client, alert["id"])
    assert "held" in [e["kind"] for e in _trail(client, held["id"])]
    # Held until 07:00, the routine alert did not escalate to the operators overnight either.
    assert [e["person_id"] for e in _trail(client, held["id"]) if e["kind"] == "notified"] == [house.id]
    assert "floor" in [e["kind"] for e in _trail(client, floored["id"])]


AUDITED_AS = {"raised": "alert.raise", "notified": "alert.notify", "acknowledged": "alert.acknowledge",
              "rejected": "alert.reject", "readback": "alert.readback"}


def _assert_every_step_audited(client: TestClient, alert_id: int) -> None:
    """Each trail event has its audit entry: ``alert.<kind>`` (or the action named above)."""
    trail = _trail(client, alert_id)
    entries = client.get("/api/audit", headers=user(client, "ccompliance").headers,
                         params={"object_type": "alert", "object_id": str(alert_id), "limit": 1000}).json()
    actions = [e["action"] for e in entries]
    for event in trail:
        action = AUDITED_AS.get(event["kind"], f"alert.{event['kind']}")
        assert action in actions, f"{event['kind']} has no {action} audit entry: {actions}"
    notified_steps = {e["detail"]["step"] for e in trail if e["kind"] == "notified"}
    assert notified_steps <= {e["detail"]["step"] for e in entries if e["action"] == "alert.notify"}


def _operators(client: TestClient) -> set[int]:
    admin = user(client, "admin")
    group = next(g for g in client.get("/api/groups", headers=admin.headers).json() if g["code"] == "OPERATORS")
    members: list[int] = client.get(f"/api/groups/{group['id']}", headers=admin.headers).json()["member_ids"]
    return set(members)


def test_a_role_with_an_empty_schedule_goes_to_the_fallback(client: TestClient, db: Database,
                                                             clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        make_assignment(session, clock, department_id=department(session, "NEURO").id, code="NEURO-EEG",
                        name="EEG Reader", start=time(8), end=time(17))
    alert = _raise(client, "role:EEG Reader", kind="eeg")
    trail = _trail(client, alert["id"])
    no_one = next(e for e in trail if e["kind"] == "no_one")
    assert "no one on the published schedule" in no_one["detail"]["explanation"]
    assert _operators(client) <= {e["person_id"] for e in trail if e["kind"] == "notified"}
    operator = user(client, "ooperator")
    assert any(a["kind"] == "no_one_to_reach" and str(alert["id"]) in a["title"]
               for a in client.get("/api/alerts", headers=operator.headers).json())
    _assert_every_step_audited(client, alert["id"])
