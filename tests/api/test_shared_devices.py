"""Shared unit devices (hand-over at shift change) and PIN unlock on personal devices."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

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
