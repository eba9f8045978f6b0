"""Personal routing rules and delivery channels, against a real SMTP server and a real HTTP gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import service as jobs
from carerelay.notifications.channels.email import SmtpChannel
from carerelay.notifications.channels.sms import SmsGateway
from carerelay.notifications.service import deliver_due, deliveries_for_alert
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import User, user
from tests.servers import free_port


class Gateway:
    """A local stand-in for an SMS aggregator: records what it gets, answers with a set status."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 202
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.received.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"id": f"gw-{len(gateway.received)}"}).encode())

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    yield gw
    gw.server.shutdown()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def _rule(client: TestClient, who: User, **body: Any) -> None:
    response = client.post("/api/routing/rules", headers=who.headers, json=body)
    assert response.status_code == 201, response.text


def _alert(client: TestClient, to: User, priority: str = "urgent") -> int:
    operator = user(client, "ooperator")
    response = client.post("/api/alerts", headers=operator.headers,
                           json={"title": "Room 412 needs you", "address": f"person:{to.id}", "priority": priority})
    assert response.status_code == 201, response.text
    alert_id: int = response.json()["id"]
    return alert_id


def _events(client: TestClient, alert_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(f"/api/alerts/{alert_id}",
                                              headers=user(client, "ooperator").headers).json()["events"]
    return events


def test_sms_after_two_minutes_unread(client: TestClient, db: Database, clock: FakeClock, gateway: Gateway) -> None:
    house = user(client, "ghouse")
    _rule(client, house, priorities=["urgent", "stat", "critical"], action="add_contact", contact_kind="sms",
          after_minutes=2)
    alert_id = _alert(client, house)
    clock.advance(minutes=2)
    jobs.fire_due(db=db, clock=clock)
    channels = {"sms": SmsGateway(gateway.url, "secret-token")}
    assert deliver_due(db=db, clock=clock, channels=channels) == 1
    assert gateway.received[0]["auth"] == "Bearer secret-token"
    assert gateway.received[0]["to"].startswith("+1555") and "Room 412" in gateway.received[0]["text"]
    with db.unit_of_work() as session:
        [delivery] = deliveries_for_alert(session=session, alert_id=alert_id)
        assert delivery.status == "sent" and delivery.provider_ref == "gw-1"
    assert any(e["kind"] == "followup" for e in _events(client, alert_id))


def test_acknowledging_cancels_the_personal_follow_up(client: TestClient, db: Database, clock: FakeClock) -> None:
    house = user(client, "ghouse")
    _rule(client, house, action="add_contact", contact_kind="sms", after_minutes=5)
    alert_id = _alert(client, house)
    clock.advance(minutes=1)
    assert client.post(f"/api/alerts/{alert_id}/acknowledge", headers=house.headers).status_code == 200
    clock.advance(minutes=10)
    jobs.fire_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        assert deliveries_for_alert(session=session, alert_id=alert_id) == []


def test_email_channel_and_retry_then_failure(client: TestClient, db: Database, clock: FakeClock,
                                              gateway: Gateway, mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    nurse = user(client, "cnurse")
    _rule(client, nurse, action="add_contact", contact_kind="email", after_minutes=0)
    alert_id = _alert(client, nurse)
    jobs.fire_due(db=db, clock=clock)
    deliver_due(db=db, clock=clock, channels={"email": SmtpChannel("127.0.0.1", port, "carerelay@demo.example")})
    mail = message_from_bytes(box.messages[0])
    assert mail["To"] == "cnurse@demo-health.example" and "Room 412" in str(mail["Subject"])
    wilson = user(client, "jwilson")
    _rule(client, wilson, action="add_contact", contact_kind="sms", after_minutes=0)
    second = _alert(client, wilson)
    jobs.fire_due(db=db, clock=clock)
    gateway.status = 503
    channels = {"sms": SmsGateway(gateway.url, None)}
    deliver_due(db=db, clock=clock, channels=channels)
    with db.unit_of_work() as session:
        [delivery] = deliveries_for_alert(session=session, alert_id=second)
        assert delivery.status == "pending" and delivery.attempts == 1 and "503" in (delivery.last_error or "")
    gateway.status = 400
    clock.advance(minutes=1)
    deliver_due(db=db, clock=clock, channels=channels)
    with db.unit_of_work() as session:
        [delivery] = deliveries_for_alert(session=session, alert_id=second)
        assert delivery.status == "failed"
    assert any(e["kind"] == "delivery_failed" for e in _events(client, second))
    assert alert_id != second


def test_hold_until_morning_but_never_a_stat(client: TestClient, db: Database, clock: FakeClock) -> None:
    clock.set(clock.now().replace(hour=4, minute=0))  # 22:00 in Chicago, the night before
    house = user(client, "ghouse")
    _rule(client, house, priorities=["routine", "stat"], window_start="21:00", window_end="07:00", action="hold",
          hold_until="07:00")
    routine = _alert(client, house, priority="routine")
    assert [a["id"] for a in client.get("/api/alerts", headers=house.headers).json()] == []
    stat = _alert(client, house, priority="stat")
    assert [a["id"] for a in client.get("/api/alerts", headers=house.headers).json()] == [stat]
    assert any(e["kind"] == "floor" for e in _events(client, stat))
    clock.advance(hours=9)
    jobs.fire_due(db=db, clock=clock)
    house = user(client, "ghouse")
    assert routine in [a["id"] for a in client.get("/api/alerts", headers=house.headers).json()]


def test_forward_to_covering_person_and_bad_rules(client: TestClient) -> None:
    house, cuddy = user(client, "ghouse"), user(client, "lcuddy")
    _rule(client, house, action="forward", forward_to=f"person:{cuddy.id}")
    alert_id = _alert(client, house)
    assert [a["id"] for a in client.get("/api/alerts", headers=cuddy.headers).json()] == [alert_id]
    notified = [e for e in _events(client, alert_id) if e["kind"] == "notified"]
    assert "covering for Dr. Gregory House" in notified[0]["detail"]["reason"]
    for bad in ({"action": "hold"}, {"action": "forward", "forward_to": "nowhere:1"},
                {"action": "deliver", "window_start": "25:00", "window_end": "07:00"},
                {"action": "add_contact", "contact_kind": "sms"}):
        assert client.post("/api/routing/rules", headers=house.headers, json=bad).status_code == 422


def test_resolve_preview_explains(client: TestClient) -> None:
    nurse = user(client, "cnurse")
    preview = client.get("/api/routing/resolve", headers=nurse.headers, params={"address": "pager:5553333"}).json()
    assert preview["recipients"] and "pager 5553333" in preview["recipients"][0]["reason"]


def test_a_rule_cannot_hold_a_critical_alert(client: TestClient, db: Database, clock: FakeClock) -> None:
    house = user(client, "ghouse")
    _rule(client, house, action="hold", hold_until="07:00")
    critical = _alert(client, house, priority="critical")
    routine = _alert(client, house, priority="routine")
    assert [a["id"] for a in client.get("/api/alerts", headers=house.headers).json()] == [critical]
    floor = next(e for e in _events(client, critical) if e["kind"] == "floor")
    assert "critical is never held" in floor["detail"]["note"]
    assert [e["kind"] for e in _events(client, routine) if e["kind"] in ("held", "notified")] == ["held"]


def test_department_defaults_apply_unless_the_person_has_a_rule(client: TestClient, clock: FakeClock) -> None:
    clock.set(clock.now().replace(hour=4, minute=0))  # 22:00 in Chicago
    admin = user(client, "admin")
    four_west = next(d["id"] for d in client.get("/api/departments", headers=admin.headers).json()
                     if d["code"] == "4W")
    created = client.post("/api/routing/department-rules", headers=admin.headers,
                          json={"department_id": four_west, "priorities": ["routine"], "window_start": "21:00",
                                "window_end": "07:00", "action": "hold", "hold_until": "07:00"})
    assert created.status_code == 201, created.text
    assert created.json()["person_id"] is None and created.json()["department_id"] == four_west
    nurse, whitaker, house = user(client, "cnurse"), user(client, "dwhitaker"), user(client, "ghouse")
    _rule(client, whitaker, action="deliver")
    held, mine, elsewhere = (_alert(client, p, priority="routine") for p in (nurse, whitaker, house))
    assert [e["kind"] for e in _events(client, held) if e["kind"] in ("held", "notified")] == ["held"]
    assert "notified" in [e["kind"] for e in _events(client, mine)]
    assert "notified" in [e["kind"] for e in _events(client, elsewhere)]
    denied = client.post("/api/routing/department-rules", headers=nurse.headers,
                         json={"department_id": four_west, "action": "deliver"})
    assert denied.status_code == 403


def test_sender_type_rules_tell_a_nurse_from_an_operator(client: TestClient) -> None:
    house, cuddy, nurse = user(client, "ghouse"), user(client, "lcuddy"), user(client, "cnurse")
    _rule(client, house, sender_types=["nurse"], action="forward", forward_to=f"person:{cuddy.id}")
    conversation = client.post("/api/conversations", headers=nurse.headers,
                               json={"kind": "address", "address": f"person:{house.id}"}).json()["id"]
    sent = client.post(f"/api/conversations/{conversation}/messages", headers=nurse.headers,
                       json={"text": "Family asking for an update in 412", "needs_ack": True})
    assert sent.status_code == 201, sent.text
    [from_nurse] = client.get("/api/alerts", headers=cuddy.headers).json()
    forwarded = next(e for e in _events(client, from_nurse["id"]) if e["kind"] == "forwarded")
    assert forwarded["person_id"] == house.id
    from_operator = _alert(client, house)
    assert from_operator in [a["id"] for a in client.get("/api/alerts", headers=house.headers).json()]
    assert "forwarded" not in [e["kind"] for e in _events(client, from_operator)]


def test_on_and_off_duty_rules_follow_the_published_schedule(client: TestClient, db: Database,
                                                               clock: FakeClock) -> None:
    clock.set(clock.now().replace(hour=15, minute=0))  # 09:00 in Chicago
    with db.unit_of_work() as session:
        on_call = resolve(session, "role:Cardiology On Call#all", clock.now()).person_ids
    admin = user(client, "admin")
    cardiologists = client.get(f"/api/groups/{_group(client, 'CARD-PHYS')}", headers=admin.headers).json()
    off_duty_id = next(p for p in cardiologists["member_ids"] if p not in on_call)
    people = {p: client.get(f"/api/people/{p}", headers=admin.headers).json()["username"]
              for p in (on_call[0], off_duty_id)}
    working, resting, cuddy = user(client, people[on_call[0]]), user(client, people[off_duty_id]), \
        user(client, "lcuddy")
    for who in (working, resting):
        _rule(client, who, on_duty=False, action="forward", forward_to=f"person:{cuddy.id}")
    to_working, to_resting = _alert(client, working), _alert(client, resting)
    assert to_working in [a["id"] for a in client.get("/api/alerts", headers=working.headers).json()]
    assert [a["id"] for a in client.get("/api/alerts", headers=cuddy.headers).json()] == [to_resting]
    rules = client.get("/api/routing/rules", headers=resting.headers).json()
    assert rules[0]["on_duty"] is False


def _group(client: TestClient, code: str) -> int:
    found: int = next(g["id"] for g in client.get("/api/groups", headers=user(client, "admin").headers).json()
                      if g["code"] == code)
    return found
