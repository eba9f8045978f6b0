"""Acting as a demo person in the web client: a session cookie, and form posts with the CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select

from carerelay.auth.deps import SESSION_COOKIE
from carerelay.auth.service import start_session
from carerelay.directory.models import Person
from carerelay.web.common import csrf_for


@dataclass(frozen=True)
class WebUser:
    username: str
    id: int
    token: str

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)


def web_user(client: TestClient, username: str) -> WebUser:
    """Signs the client in as ``username`` (replacing whoever was signed in), skipping argon2."""
    state = client.app.state  # type: ignore[attr-defined]
    with state.db.unit_of_work() as session:
        person = session.execute(select(Person).where(Person.username == username)).scalar_one()
        opened = start_session(session=session, clock=state.clock, settings=state.settings, person=person,
                               kind="web", ip="testclient", user_agent=None, method="test")
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, opened.token)
    return WebUser(username, person.id, opened.token)


def act_as(client: TestClient, user: WebUser) -> WebUser:
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, user.token)
    return user


def post(client: TestClient, user: WebUser, url: str, data: dict[str, Any] | None = None,
         files: dict[str, Any] | None = None) -> Response:
    act_as(client, user)
    return client.post(url, data={**(data or {}), "csrf": user.csrf}, files=files, follow_redirects=False)
