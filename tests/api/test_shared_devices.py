"""Shared unit devices (hand-over at shift change) and PIN unlock on personal devices."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from carerelay.auth import devices
from carerelay.auth.models import DeviceBinding
from carerelay.config import Settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.demo import DEMO_PASSWORD, DEMO_PEOPLE
from carerelay.directory.models import Device, Person
from tests.conftest import sign_in

NURSES = [p.username for p in DEMO_PEOPLE if p.profession == "nurse"][:2]


def _shared_sign_in(client: TestClient, username: str, device: str = "4W-SHARED-01") -> dict[str, str]:
    response = client.post("/api/auth/shared-device/sign-in",
                           json={"device": device, "username": username, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _ids(db: Database, username: str, device: str = "4W-SHARED-01") -> tuple[int, int]:
    with db.unit_of_work() as session:
        person = session.execute(select(Person.id).where(Person.username == username)).scalar_one()
        device_id = session.execute(select(Device.id).where(Device.identifier == device)).scalar_one()
    return int(person), int(device_id)


def _targets(db: Database, clock: FakeClock, settings: Settings, person_id: int) -> list[devices.DeliveryTarget]:
    with db.unit_of_work() as session:
        return devices.delivery_targets(session=session, clock=clock, settings=settings, person_id=person_id)


def test_next_person_signing_in_ends_the_previous_session_and_alerts_follow_people(
    client: TestClient, db: Database, clock: FakeClock, settings: Settings
) -> None:
    first, second = NURSES
    first_id, device_id = _ids(db, first)
    second_id, _ = _ids(db, second)
    first_headers = _shared_sign_in(client, first)
    personal = sign_in(client, first)  # the first nurse is also signed in on her own phone
    assert [t.device_id for t in _targets(db, clock, settings, first_id)] == [device_id, None]
    with db.unit_of_work() as session:
        assert devices.person_on_device(session=session, clock=clock, settings=settings,
                                        device_id=device_id) == first_id

    second_headers = _shared_sign_in(client, second)
    assert client.get("/api/auth/me", headers=first_headers).status_code == 401
    assert client.get("/api/auth/me", headers=personal).status_code == 200  # her own phone is unaffected
    assert [t.device_id for t in _targets(db, clock, settings, first_id)] == [None]
    assert [t.device_id for t in _targets(db, clock, settings, second_id)] == [device_id]
    with db.unit_of_work() as session:
        bindings = list(session.execute(select(DeviceBinding).where(DeviceBinding.device_id == device_id)
                                        .order_by(DeviceBinding.id)).scalars())
        assert [(b.person_id, b.end_reason) for b in bindings[-2:]] == [
            (first_id, "next person signed in on 4W-SHARED-01"), (second_id, None)]

    assert client.post("/api/auth/sign-out", headers=second_headers).status_code == 204
    assert _targets(db, clock, settings, second_id) == []
    with db.unit_of_work() as session:
        assert devices.person_on_device(session=session, clock=clock, settings=settings, device_id=device_id) is None


def test_shared_sessions_idle_out_on_the_organizations_timeout(
    client: TestClient, db: Database, clock: FakeClock, settings: Settings
) -> None:
    nurse = NURSES[0]
    person_id, device_id = _ids(db, nurse)
    headers = _shared_sign_in(client, nurse)
    clock.advance(minutes=settings.shared_device_idle_minutes - 1)
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    clock.advance(minutes=settings.shared_device_idle_minutes + 1)
    assert _targets(db, clock, settings, person_id) == []
    idle = client.get("/api/auth/me", headers=headers)
    assert idle.status_code == 401 and "idle" in idle.json()["detail"]
    with db.unit_of_work() as session:
        binding = session.execute(select(DeviceBinding).where(DeviceBinding.device_id == device_id)
                                  .order_by(DeviceBinding.id.desc())).scalars().first()
        assert binding is not None and binding.end_reason == "idle timeout"


def test_a_target_says_until_when_time_alone_keeps_it_one(
    client: TestClient, db: Database, clock: FakeClock, settings: Settings
) -> None:
    """A socket trusts its session until then without asking the database per event (realtime/api.py)."""
    nurse = NURSES[0]
    person_id, _ = _ids(db, nurse)
    client.patch("/api/auth/policy", headers=sign_in(client, "admin"), json={"shared_device_idle_minutes": 30})
    _shared_sign_in(client, nurse)
    signed_in_at = clock.now()
    (busy,) = _targets(db, clock, settings, person_id)
    assert busy.until == signed_in_at + timedelta(minutes=1)  # no idle limit is shorter: no policy read
    clock.advance(minutes=20)
    (idle,) = _targets(db, clock, settings, person_id)
    assert idle.until == signed_in_at + timedelta(minutes=30)  # the organization's shared-device limit
    clock.advance(minutes=10)
    assert _targets(db, clock, settings, person_id) == []


def test_only_shared_devices_take_shared_sign_ins(client: TestClient) -> None:
    refused = client.post("/api/auth/shared-device/sign-in",
                          json={"device": "PHONE-GHOUSE", "username": NURSES[0], "password": DEMO_PASSWORD})
    assert refused.status_code == 403 and "not an active shared device" in refused.json()["detail"]
    missing = client.post("/api/auth/shared-device/sign-in",
                          json={"device": "NOPE", "username": NURSES[0], "password": DEMO_PASSWORD})
    assert missing.status_code == 404


def test_pin_unlocks_an_idle_personal_session(client: TestClient, clock: FakeClock, settings: Settings) -> None:
    headers = sign_in(client, NURSES[0])
    assert client.put("/api/auth/pin", headers=headers, json={"pin": "1111"}).status_code == 422
    assert client.put("/api/auth/pin", headers=headers, json={"pin": "4719"}).status_code == 204
    clock.advance(minutes=settings.pin_lock_minutes + 1)
    locked = client.get("/api/auth/me", headers=headers)
    assert locked.status_code == 401 and "unlock it with your PIN" in locked.json()["detail"]
    wrong = client.post("/api/auth/unlock", headers=headers, json={"pin": "4718"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong PIN"
    assert client.post("/api/auth/unlock", headers=headers, json={"pin": "4719"}).status_code == 204
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.post("/api/auth/lock", headers=headers).status_code == 204
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    for _ in range(4):
        assert client.post("/api/auth/unlock", headers=headers, json={"pin": "0000"}).status_code == 401
    ended = client.post("/api/auth/unlock", headers=headers, json={"pin": "0000"})
    assert "too many wrong PINs" in ended.json()["detail"]
    assert client.post("/api/auth/unlock", headers=headers, json={"pin": "4719"}).status_code == 401


def _alert(client: TestClient, operator: dict[str, str], person_id: int, title: str) -> int:
    response = client.post("/api/alerts", headers=operator,
                           json={"title": title, "address": f"person:{person_id}", "priority": "critical"})
    assert response.status_code == 201, response.text
    alert_id: int = response.json()["id"]
    return alert_id


def _next_alert(ws: Any) -> dict[str, Any]:
    """The next alert.new frame, skipping other events (a session of this person ending elsewhere)."""
    for _ in range(20):
        frame: dict[str, Any] = ws.receive_json()
        if frame.get("kind") == "alert.new":
            return frame
    raise AssertionError("no alert.new frame")


def _closed_without_another_frame(ws: Any, reason: str) -> None:
    """The socket's next frames are exactly session_ended and the close: nothing of the person after the end."""
    ended = ws.receive_json()
    assert ended["type"] == "session_ended" and reason in ended["detail"], ended
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 4001


def test_handover_closes_the_previous_nurses_socket_and_her_alerts_follow_her(client: TestClient, db: Database) -> None:
    first, second = NURSES
    first_id, _ = _ids(db, first)
    second_id, _ = _ids(db, second)
    operator = sign_in(client, "ooperator")
    first_on_device = _shared_sign_in(client, first)
    first_phone = sign_in(client, first)
    with client.websocket_connect("/api/ws", headers=first_on_device) as device_ws, \
            client.websocket_connect("/api/ws", headers=first_phone) as phone_ws:
        assert device_ws.receive_json()["type"] == "hello" and phone_ws.receive_json()["type"] == "hello"
        before = _alert(client, operator, first_id, "K+ 6.8 (HH) bed 412-B")
        assert _next_alert(device_ws)["data"]["id"] == before  # hers while she holds the device

        second_on_device = _shared_sign_in(client, second)
        # Her next alert is written before her old socket looks again: it must still never show there.
        after = _alert(client, operator, first_id, "Troponin 2.1 (HH) bed 412-B")
        _closed_without_another_frame(device_ws, "next person signed in on 4W-SHARED-01")
        assert [_next_alert(phone_ws)["data"]["id"] for _ in range(2)] == [before, after]  # her own phone

        with client.websocket_connect("/api/ws", headers=second_on_device) as second_ws:
            assert second_ws.receive_json()["type"] == "hello"
            theirs = _alert(client, operator, second_id, "Lactate 4.9 (HH) bed 410-A")
            frame = _next_alert(second_ws)
            assert frame["data"]["id"] == theirs and frame["data"]["id"] != after
    refused = client.get("/api/auth/me", headers=first_on_device)
    assert refused.status_code == 401


def test_an_idle_shared_session_stops_receiving_on_the_organizations_timeout(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    nurse = NURSES[0]
    person_id, _ = _ids(db, nurse)
    admin, operator = sign_in(client, "admin"), sign_in(client, "ooperator")
    changed = client.patch("/api/auth/policy", headers=admin, json={"shared_device_idle_minutes": 30})
    assert changed.status_code == 200 and changed.json()["shared_device_idle_minutes"] == 30
    on_device = _shared_sign_in(client, nurse)
    with client.websocket_connect("/api/ws", headers=on_device) as ws:
        assert ws.receive_json()["type"] == "hello"
        clock.advance(minutes=29)
        first = _alert(client, operator, person_id, "K+ 6.8 (HH) bed 412-B")
        assert _next_alert(ws)["data"]["id"] == first  # an open socket alone is not use of a shared device
        clock.advance(minutes=2)
        _alert(client, operator, person_id, "K+ 7.1 (HH) bed 412-B")
        _closed_without_another_frame(ws, "idle")
    assert client.get("/api/auth/me", headers=on_device).status_code == 401


def test_running_out_of_pin_attempts_closes_the_socket(client: TestClient, db: Database) -> None:
    nurse = NURSES[0]
    person_id, _ = _ids(db, nurse)
    operator, phone = sign_in(client, "ooperator"), sign_in(client, nurse)
    assert client.put("/api/auth/pin", headers=phone, json={"pin": "4719"}).status_code == 204
    with client.websocket_connect("/api/ws", headers=phone) as ws:
        assert ws.receive_json()["type"] == "hello"
        assert client.post("/api/auth/lock", headers=phone).status_code == 204
        for _ in range(5):
            assert client.post("/api/auth/unlock", headers=phone, json={"pin": "0000"}).status_code == 401
        _alert(client, operator, person_id, "K+ 6.8 (HH) bed 412-B")
        _closed_without_another_frame(ws, "too many wrong PINs")


def test_session_policy_is_the_organizations_with_the_settings_as_defaults(
    client: TestClient, settings: Settings
) -> None:
    admin, nurse = sign_in(client, "admin"), sign_in(client, NURSES[0])
    default = client.get("/api/auth/policy", headers=nurse).json()
    assert default == {"shared_device_idle_minutes": settings.shared_device_idle_minutes,
                       "pin_lock_minutes": settings.pin_lock_minutes,
                       "from_settings": ["shared_device_idle_minutes", "pin_lock_minutes"]}
    assert client.patch("/api/auth/policy", headers=nurse, json={"pin_lock_minutes": 5}).status_code == 403
    assert client.patch("/api/auth/policy", headers=admin, json={"pin_lock_minutes": 0}).status_code == 422
    set_both = client.patch("/api/auth/policy", headers=admin,
                            json={"shared_device_idle_minutes": 45, "pin_lock_minutes": 5}).json()
    assert set_both == {"shared_device_idle_minutes": 45, "pin_lock_minutes": 5, "from_settings": []}
    back = client.patch("/api/auth/policy", headers=admin, json={"shared_device_idle_minutes": None}).json()
    assert back["shared_device_idle_minutes"] == settings.shared_device_idle_minutes
    assert back["from_settings"] == ["shared_device_idle_minutes"]
    trail = client.get("/api/audit", headers=admin, params={"action": "auth.update_policy"})
    assert trail.status_code == 200 and len(trail.json()) == 2
