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


def admit(db: Any, clock: Any, mrn: str, sample: str = "adt_a01_admit.hl7", place: bytes | None = None) -> int:
    """Admits the shared ADT sample's patient (4W-412-B; Dr. House attending, Carol Nurse) as ``mrn``;
    with ``place`` (``b"4W^401^A"``) into that bed instead, with no nurse named (no ROL segment)."""
    from carerelay.core.actor import Actor
    from carerelay.integrations.hl7.feeds import Feed
    from carerelay.integrations.hl7.parser import parse
    from carerelay.integrations.hl7.processor import process_message
    from carerelay.patients.models import Patient
    from carerelay.patients.service import ResultPolicy
    from tests.hl7support import SAMPLES

    text = (SAMPLES / sample).read_bytes().replace(b"MRN1001", mrn.encode())
    if place is not None:
        text = b"\r".join(s for s in text.replace(b"4W^412^B", place).split(b"\r") if not s.startswith(b"ROL|"))
    with db.unit_of_work() as session:
        process_message(session=session, clock=clock, actor=Actor(person_id=None, username="hl7:test"),
                        parsed=parse(text), feed=Feed(name="adt", port=0, timezone="America/Chicago"),
                        policy=ResultPolicy(), stat_priorities=("S", "STAT"), message_id=None)
        patient_id: int = session.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
    return patient_id


def messages_of(page: str) -> list[str]:
    """The message texts of a thread page, as the browser would show them."""
    import html
    import re

    return [html.unescape(m) for m in re.findall(r'<p class="text">(.*?)</p>', page, flags=re.S)]
