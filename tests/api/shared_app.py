"""One application for a whole test module, every request rolled back afterwards.

The authorization matrix and the schema fuzzer send thousands of requests; building an app and
signing people in for each would cost more than the requests. Here the app, its database connection
and one session per demo identity are made once, and each request runs inside a savepoint that is
rolled back when it returns, so a request that signs out, purges or locks changes nothing for the
next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select

from carerelay.app import create_app
from carerelay.auth.service import start_session
from carerelay.config import Settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person

ROLE_USERS = {
    "clinician": "ghouse",
    "nurse": "cnurse",
    "operator": "ooperator",
    "scheduler": "sscheduler",
    "integration_admin": "iadmin",
    "compliance_officer": "ccompliance",
    "system_admin": "admin",
}
"""One demo person per role (README, "Signing in"); each holds that role alone."""


@dataclass
class SharedApp:
    app: FastAPI
    client: TestClient
    db: Database
    connection: Connection
    tokens: dict[str, str]
    """Bearer token per role name, opened once."""
    person_ids: dict[str, int]
    """Person id per demo user name."""

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    @contextmanager
    def rolled_back(self) -> Iterator[None]:
        """Whatever the request inside writes is undone when it returns."""
        savepoint = self.connection.begin_nested()
        try:
            yield
        finally:
            savepoint.rollback()


@contextmanager
def shared_app(engine: Engine, settings: Settings) -> Iterator[SharedApp]:
    connection = engine.connect()
    outer = connection.begin()
    try:
        db = Database(engine, bind=connection)
        clock = FakeClock()
        app = create_app(settings, db=db, clock=clock)
        tokens: dict[str, str] = {}
        with db.unit_of_work() as session:
            people = {p.username: p for p in session.execute(
                select(Person).where(Person.username.in_(list(ROLE_USERS.values())))).scalars()}
            person_ids = {name: p.id for name, p in people.items()}
            for role, username in ROLE_USERS.items():
                person = people[username]
                assert person.role_names == frozenset({role}), f"{username} should hold {role} alone"
                opened = start_session(session=session, clock=clock, settings=settings, person=person, kind="api",
                                       ip="testclient", user_agent=None, method="test")
                tokens[role] = opened.token
        with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
            yield SharedApp(app=app, client=client, db=db, connection=connection, tokens=tokens,
                            person_ids=person_ids)
    finally:
        outer.rollback()
        connection.close()
