"""Sign-in, sessions, lock-out and the second factor, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.auth.deps import SESSION_COOKIE
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.demo import DEMO_PASSWORD
from carerelay.directory.models import Person
from tests.conftest import sign_in


def _failures_audited(db: Database, username: str) -> int:
    with db.unit_of_work() as session:
        return int(session.execute(
            select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "auth.sign_in", AuditEntry.outcome == "failure",
                AuditEntry.actor_name == username)
        ).scalar_one())


def test_sign_in_gives_token_cookie_and_identity(client: TestClient) -> None:
    response = client.post("/api/auth/sign-in", json={"username": "GHouse", "password": DEMO_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Dr. Gregory House"
    assert body["roles"] == ["clinician"]
    assert SESSION_COOKIE in response.cookies
    me = client.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "ghouse"
    bearer = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert bearer.json()["session_id"] == body["session_id"]


def test_wrong_password_is_refused_and_the_failure_is_audited(client: TestClient, db: Database) -> None:
    before = _failures_audited(db, "cnurse")
    response = client.post("/api/auth/sign-in", json={"username": "cnurse", "password": "wrong-password"})
    assert response.status_code == 401
    assert "wrong user name, password or code" in response.json()["detail"]
    assert _failures_audited(db, "cnurse") == before + 1


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(client: TestClient) -> None:
    response = client.post("/api/auth/sign-in", json={"username": "nobody-here", "password": "whatever1"})
    assert response.status_code == 401
    assert response.json()["detail"].startswith("sign-in failed")


def test_back_off_then_lock_out_then_time_heals(client: TestClient, clock: FakeClock) -> None:
    creds = {"username": "hpark", "password": "not-it-at-all"}
    for _ in range(3):
        assert client.post("/api/auth/sign-in", json=creds).status_code == 401
    backed_off = client.post("/api/auth/sign-in", json={**creds, "password": DEMO_PASSWORD})
    assert backed_off.status_code == 429
    assert int(backed_off.headers["Retry-After"]) >= 1
    for _ in range(7):
        clock.advance(seconds=600)
        assert client.post("/api/auth/sign-in", json=creds).status_code == 401
    clock.advance(seconds=600)
    locked = client.post("/api/auth/sign-in", json={**creds, "password": DEMO_PASSWORD})
    assert locked.status_code == 429
    assert "locked" in locked.json()["detail"]
    clock.advance(minutes=16)
    assert client.post("/api/auth/sign-in", json={**creds, "password": DEMO_PASSWORD}).status_code == 200


def test_sessions_are_listed_and_revocable(client: TestClient) -> None:
    first = sign_in(client, "cnurse")
    second = sign_in(client, "cnurse")
    sessions = client.get("/api/auth/sessions", headers=first).json()
    assert len(sessions) == 2
    assert sum(s["current"] for s in sessions) == 1
    other = next(s for s in sessions if not s["current"])
    assert client.delete(f"/api/auth/sessions/{other['id']}", headers=first).status_code == 204
    assert client.get("/api/auth/me", headers=second).status_code == 401
    assert client.get("/api/auth/me", headers=first).status_code == 200


def test_a_person_cannot_revoke_someone_elses_session(client: TestClient) -> None:
    victim = sign_in(client, "cnurse")
    victim_session = client.get("/api/auth/me", headers=victim).json()["session_id"]
    attacker = sign_in(client, "ghouse")
    assert client.delete(f"/api/auth/sessions/{victim_session}", headers=attacker).status_code == 404
    assert client.get("/api/auth/me", headers=victim).status_code == 200


def test_changing_the_password_ends_every_session(client: TestClient) -> None:
    phone, desk = sign_in(client, "jwilson"), sign_in(client, "jwilson")
    wrong = client.post("/api/auth/password", headers=phone,
                        json={"current_password": "nope-nope-nope", "new_password": "a-brand-new-one"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "current_password"
    short = client.post("/api/auth/password", headers=phone,
                        json={"current_password": DEMO_PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and short.json()["field"] == "password"
    changed = client.post("/api/auth/password", headers=phone,
                          json={"current_password": DEMO_PASSWORD, "new_password": "a-brand-new-one"})
    assert changed.status_code == 200 and changed.json()["sessions_ended"] == 2
    assert client.get("/api/auth/me", headers=phone).status_code == 401
    assert client.get("/api/auth/me", headers=desk).status_code == 401
    sign_in(client, "jwilson", "a-brand-new-one")


def test_admin_reset_ends_sessions_and_only_admins_may(client: TestClient) -> None:
    user = sign_in(client, "cnurse")
    me = client.get("/api/auth/me", headers=user).json()
    body = {"person_id": me["person_id"], "new_password": "reset-by-it-desk"}
    assert client.post("/api/auth/reset-password", headers=user, json=body).status_code == 403
    admin = sign_in(client, "admin")
    response = client.post("/api/auth/reset-password", headers=admin, json=body)
    assert response.status_code == 200 and response.json()["sessions_ended"] == 1
    assert client.get("/api/auth/me", headers=user).status_code == 401
    sign_in(client, "cnurse", "reset-by-it-desk")


def test_an_admin_reset_clears_a_lock_out_at_once(client: TestClient, clock: FakeClock, db: Database) -> None:
    wrong = {"username": "arahman", "password": "not-it-at-all"}
    for _ in range(10):
        assert client.post("/api/auth/sign-in", json=wrong).status_code == 401
        clock.advance(seconds=600)  # past each back-off, so every attempt counts
    locked = client.post("/api/auth/sign-in", json={**wrong, "password": DEMO_PASSWORD})
    assert locked.status_code == 429 and "locked" in locked.json()["detail"]
    admin = sign_in(client, "admin")
    with db.unit_of_work() as session:
        person_id = session.execute(select(Person.id).where(Person.username == "arahman")).scalar_one()
    reset = client.post("/api/auth/reset-password", headers=admin,
                        json={"person_id": person_id, "new_password": "reset-by-it-desk"})
    assert reset.status_code == 200
    signed = client.post("/api/auth/sign-in", json={"username": "arahman", "password": "reset-by-it-desk"})
    assert signed.status_code == 200  # no waiting out the lock-out after IT has reset the password
    assert _failures_audited(db, "arahman") == 10


def test_totp_second_factor(client: TestClient, clock: FakeClock) -> None:
    headers = sign_in(client, "lcuddy")
    uri = client.post("/api/auth/totp/begin", headers=headers).json()["provisioning_uri"]
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    bad = client.post("/api/auth/totp/confirm", headers=headers, json={"code": "000000"})
    assert bad.status_code == 422
    code = totp.at(clock.now())
    assert client.post("/api/auth/totp/confirm", headers=headers, json={"code": code}).status_code == 204
    creds = {"username": "lcuddy", "password": DEMO_PASSWORD, "kind": "api"}
    assert client.post("/api/auth/sign-in", json=creds).status_code == 401
    clock.advance(seconds=30)
    fresh = totp.at(clock.now())
    assert client.post("/api/auth/sign-in", json={**creds, "totp_code": fresh}).status_code == 200
    replay = client.post("/api/auth/sign-in", json={**creds, "totp_code": fresh})
    assert replay.status_code == 401


def test_idle_session_ends(client: TestClient, clock: FakeClock) -> None:
    headers = sign_in(client, "cnurse")
    clock.advance(hours=11)
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    clock.advance(hours=12, minutes=1)
    response = client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401 and "idle" in response.json()["detail"]


def test_deactivating_a_person_ends_sessions_and_blocks_sign_in(client: TestClient) -> None:
    user = sign_in(client, "dwhitaker")
    person_id = client.get("/api/auth/me", headers=user).json()["person_id"]
    admin = sign_in(client, "admin")
    assert client.patch(f"/api/people/{person_id}", headers=admin, json={"active": False}).status_code == 200
    assert client.get("/api/auth/me", headers=user).status_code == 401
    again = client.post("/api/auth/sign-in", json={"username": "dwhitaker", "password": DEMO_PASSWORD})
    assert again.status_code == 401


def test_session_expires_after_its_maximum_life(client: TestClient, clock: FakeClock) -> None:
    headers = sign_in(client, "cnurse")
    for _ in range(14):
        clock.advance(timedelta(hours=11, minutes=59))
        assert client.get("/api/auth/me", headers=headers).status_code == 200
    clock.advance(timedelta(hours=11, minutes=59))
    assert client.get("/api/auth/me", headers=headers).status_code == 401
