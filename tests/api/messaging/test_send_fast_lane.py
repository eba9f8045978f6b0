"""The send route's fast lane (core/fastlane.py) answers exactly as the FastAPI route does.

Every request below is sent twice from the same database state (a savepoint rolled back after each):
once to an application with the lane, once to one without. Status, the headers a client acts on and
the body must match; a second test shows which requests the lane served itself and which it left
to the route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine

from carerelay.app import create_app
from carerelay.auth.deps import SESSION_COOKIE
from carerelay.config import Settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.messaging import api as messaging_api
from tests.api.messaging.helpers import User, direct, user

JSON = {"Content-Type": "application/json"}


@dataclass
class Pair:
    lanes: TestClient
    plain: TestClient
    connection: Connection
    nurse: User
    doctor: User
    outsider: User
    conversation: int

    def both(self, path: str, body: bytes, headers: dict[str, str], *,
             then: tuple[bytes, dict[str, str]] | None = None) -> tuple[list[Any], list[Any]]:
        """What each application answers, from the same state; ``then``: a second request after the first."""
        answers = []
        for client in (self.lanes, self.plain):
            savepoint = self.connection.begin_nested()
            try:
                seen = [_answer(client.post(path, content=body, headers=headers))]
                if then is not None:
                    seen.append(_answer(client.post(path, content=then[0], headers=then[1])))
            finally:
                savepoint.rollback()
            answers.append(seen)
        return answers[0], answers[1]


def _answer(response: Any) -> tuple[int, dict[str, str], Any]:
    """What a client acts on. Ids are left out: PostgreSQL does not give back a rolled-back id."""
    headers = {k: v for k, v in response.headers.items()
               if k in ("content-type", "idempotent-replayed", "www-authenticate", "retry-after")}
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and response.status_code == 201:
        body = {k: v for k, v in body.items() if k != "id"}
    return response.status_code, headers, body


@pytest.fixture
def pair(engine: Engine, settings: Settings) -> Iterator[Pair]:
    connection = engine.connect()
    outer = connection.begin()
    try:
        db, clock = Database(engine, bind=connection), FakeClock()
        with TestClient(create_app(settings, db=db, clock=clock)) as lanes, \
                TestClient(create_app(settings, db=db, clock=clock, fast_lanes=False)) as plain:
            nurse, doctor, outsider = user(lanes, "cnurse"), user(lanes, "jwilson"), user(lanes, "ooperator")
            yield Pair(lanes, plain, connection, nurse, doctor, outsider, direct(lanes, nurse, doctor))
    finally:
        outer.rollback()
        connection.close()


def _cases(pair: Pair) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    path = f"/api/conversations/{pair.conversation}/messages"
    auth = {**pair.nurse.headers, **JSON}
    token = pair.nurse.headers["Authorization"].removeprefix("Bearer ")

    def body(**fields: Any) -> bytes:
        return json.dumps(fields).encode()

    return {
        "a plain message": (path, body(text="BP 90/60, please review"), auth),
        "every field": (path, body(text="K+ 6.1", priority="stat", needs_ack=True, attachment_ids=[], confirm=[]),
                        auth),
        "charset in the content type": (path, body(text="hello"), {**auth, "Content-Type":
                                                                    "application/json; charset=utf-8"}),
        "script kept as text": (path, body(text="<script>alert(1)</script>"), auth),
        "an Idempotency-Key": (path, body(text="once"), {**auth, "Idempotency-Key": "k-1"}),
        "the session cookie": (path, body(text="from the web"), {**JSON, "Cookie": f"{SESSION_COOKIE}={token}"}),
        "no token": (path, body(text="hi"), JSON),
        "an unknown token": (path, body(text="hi"), {**JSON, "Authorization": "Bearer not-a-session"}),
        "not a member": (path, body(text="hi"), {**pair.outsider.headers, **JSON}),
        "no such conversation": ("/api/conversations/999999999/messages", body(text="hi"), auth),
        "a 19-digit id": ("/api/conversations/1234567890123456789/messages", body(text="hi"), auth),
        "a negative id": ("/api/conversations/-1/messages", body(text="hi"), auth),
        "an id that is not a number": ("/api/conversations/abc/messages", body(text="hi"), auth),
        "order-like text": (path, body(text="give 2 mg morphine IV now"), auth),
        "order-like text, confirmed": (path, body(text="give 2 mg morphine IV now", confirm=["orders"]), auth),
        "empty text": (path, body(text="   "), auth),
        "no text": (path, body(priority="stat"), auth),
        "an unknown field": (path, body(text="hi", bogus=1), auth),
        "an unknown priority": (path, body(text="hi", priority="whenever"), auth),
        "a string for a boolean": (path, body(text="hi", needs_ack="yes"), auth),
        "not JSON": (path, b"text=hi", auth),
        "an empty body": (path, b"", auth),
        "a JSON array": (path, b'["hi"]', auth),
        "a text/plain body": (path, body(text="hi"), {**pair.nurse.headers, "Content-Type": "text/plain"}),
        "no content type": (path, body(text="hi"), pair.nurse.headers),
        "an Idempotency-Key too long": (path, body(text="hi"), {**auth, "Idempotency-Key": "k" * 121}),
        "NaN in JSON": (path, b'{"text": "hi", "patient_id": NaN}', auth),
        "deeply nested JSON": (path, b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", auth),
    }


CASES = ["a plain message", "every field", "charset in the content type", "script kept as text",
         "an Idempotency-Key", "the session cookie", "no token", "an unknown token", "not a member",
         "no such conversation", "a 19-digit id", "a negative id", "an id that is not a number", "order-like text",
         "order-like text, confirmed", "empty text", "no text", "an unknown field", "an unknown priority",
         "a string for a boolean", "not JSON", "an empty body", "a JSON array", "a text/plain body",
         "no content type", "an Idempotency-Key too long", "NaN in JSON", "deeply nested JSON"]


@pytest.mark.parametrize("case", CASES)
def test_the_lane_answers_as_the_route_does(pair: Pair, case: str) -> None:
    cases = _cases(pair)
    assert sorted(cases) == sorted(CASES)
    path, body, headers = cases[case]
    with_lanes, without = pair.both(path, body, headers)
    assert with_lanes == without


def test_a_retry_with_the_same_key_is_replayed_through_the_lane_as_through_the_route(pair: Pair) -> None:
    path = f"/api/conversations/{pair.conversation}/messages"
    headers = {**pair.nurse.headers, **JSON, "Idempotency-Key": "retry-1"}
    with_lanes, without = pair.both(path, b'{"text": "once"}', headers, then=(b'{"text": "once"}', headers))
    assert with_lanes == without
    assert [status for status, _, _ in with_lanes] == [201, 201]
    assert with_lanes[1][1].get("idempotent-replayed") == "true"


def test_the_lane_serves_well_formed_sends_and_leaves_the_rest_to_the_route(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane calls the endpoint through the module (the route holds its own reference to it): a
    wrapper there counts what the lane served."""
    served: list[int] = []
    endpoint = messaging_api.send_message

    async def counted(conversation_id: int, *args: Any) -> Any:
        served.append(conversation_id)
        return await endpoint(conversation_id, *args)

    monkeypatch.setattr(messaging_api, "send_message", counted)
    cases = _cases(pair)
    for case in ("a plain message", "not a member", "order-like text", "no token", "not JSON", "no text",
                 "an id that is not a number", "a text/plain body", "an Idempotency-Key too long"):
        path, body, headers = cases[case]
        pair.lanes.post(path, content=body, headers=headers)
    assert served == [pair.conversation] * 3


def test_sends_the_lane_serves_are_counted_under_the_route(pair: Pair) -> None:
    """Request metrics name the FastAPI route for a send the lane answered, as for one the route did."""
    label = 'route="/api/conversations/{conversation_id}/messages"'

    def count(status: str) -> float:
        for line in pair.lanes.get("/metrics").text.splitlines():
            if line.startswith("carerelay_http_requests_total{") and label in line and f'status="{status}"' in line \
                    and 'method="POST"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    path, body, headers = _cases(pair)["a plain message"]
    before_201, before_404 = count("201"), count("404")
    assert pair.lanes.post(path, content=body, headers=headers).status_code == 201
    outsider = {**pair.outsider.headers, **JSON}
    assert pair.lanes.post(path, content=body, headers=outsider).status_code == 404
    assert (count("201"), count("404")) == (before_201 + 1, before_404 + 1)
