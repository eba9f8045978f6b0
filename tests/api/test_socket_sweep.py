"""The node's sweep over its open WebSockets (realtime/presence.py): an idle socket has no timer of its
own, yet it keeps a personal session alive, closes when a shared device idles out, and catches up on
an event whose wake never came."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from carerelay.auth.models import AuthSession
from carerelay.config import Settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.demo import DEMO_PASSWORD, DEMO_PEOPLE
from carerelay.directory.models import Person
from carerelay.realtime import presence
from carerelay.realtime import service as realtime
from tests.conftest import sign_in

NURSE = next(p.username for p in DEMO_PEOPLE if p.profession == "nurse")


def _sweep(client: TestClient) -> tuple[int, int]:
    state = client.app.state  # type: ignore[attr-defined]
    flagged: tuple[int, int] = client.portal.call(presence.sweep, state.db, state.clock, state.settings,  # type: ignore[union-attr]
                                                  state.hub)
    return flagged


def _person(db: Database, username: str) -> int:
    with db.read_only() as session:
        return int(session.execute(select(Person.id).where(Person.username == username)).scalar_one())


def test_an_open_socket_keeps_a_personal_session_alive_through_the_sweep(
    client: TestClient, db: Database, clock: FakeClock, settings: Settings
) -> None:
    headers = sign_in(client, NURSE)
    with client.websocket_connect("/api/ws", headers=headers) as ws:
        assert ws.receive_json()["type"] == "hello"
        for _ in range(settings.session_idle_minutes // 9 + 2):  # past the idle timeout, 9 minutes at a time
            clock.advance(minutes=9)
            assert _sweep(client)[0] == 0  # a slide is all it needs: no socket checks for itself
        with db.read_only() as session:
            seen = session.execute(select(AuthSession.last_seen_at)
                                   .where(AuthSession.person_id == _person(db, NURSE))
                                   .order_by(AuthSession.id.desc()).limit(1)).scalar_one()
        assert seen == clock.now()
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    clock.advance(minutes=settings.session_idle_minutes + 1)  # the socket is gone: nothing keeps it alive
    assert client.get("/api/auth/me", headers=headers).status_code == 401


def test_a_shared_device_socket_closes_on_the_sweep_once_it_idles_out(
    client: TestClient, clock: FakeClock, settings: Settings
) -> None:
    response = client.post("/api/auth/shared-device/sign-in",
                           json={"device": "4W-SHARED-01", "username": NURSE, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    with client.websocket_connect("/api/ws", headers={"Authorization": f"Bearer {response.json()['token']}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
        clock.advance(minutes=settings.shared_device_idle_minutes - 1)
        assert _sweep(client)[0] == 0  # an open socket is not use of a shared device, but it is not over yet
        clock.advance(minutes=2)
        assert _sweep(client)[0] == 1
        ended: dict[str, Any] = ws.receive_json()
        assert ended["type"] == "session_ended" and "idle" in ended["detail"], ended
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4001


def test_a_socket_whose_wake_never_came_gets_the_event_on_the_sweep(client: TestClient, db: Database,
                                                                     clock: FakeClock) -> None:
    person_id = _person(db, NURSE)
    hub = client.app.state.hub  # type: ignore[attr-defined]
    with client.websocket_connect("/api/ws", headers=sign_in(client, NURSE)) as ws:
        hello = ws.receive_json()
        db.after_commit.remove(hub.after_commit)  # the event commits, but no one tells the socket
        try:
            with db.unit_of_work() as session:
                realtime.emit(session=session, clock=clock, person_ids=[person_id], kind="test.lost_wake",
                              payload={"n": 1})
        finally:
            db.after_commit.append(hub.after_commit)
        _sweep(client)
        frame: dict[str, Any] = ws.receive_json()
    assert (frame["kind"], frame["seq"]) == ("test.lost_wake", hello["last_seq"] + 1)
