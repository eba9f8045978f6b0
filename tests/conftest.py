"""Test harness: every storage test runs on SQLite and on PostgreSQL.

Per backend, one database is migrated and loaded with the demo hospital once per run; each test
then works inside a transaction that is rolled back, so tests are independent and fast. PostgreSQL
runs in a schema of its own per run so parallel runs on one server never meet.

Time is a FakeClock: tests advance it instead of sleeping.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError

from carerelay.app import create_app
from carerelay.auth.service import start_session
from carerelay.config import Settings, load_settings
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine, normalize_url
from carerelay.core.migrate import upgrade
from carerelay.demo import load_demo
from carerelay.directory.models import Person

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    schema: str | None

    def engine(self) -> Engine:
        return make_engine(self.url, schema=self.schema)

    def cli_url(self) -> str:
        """A URL a separate process (the CLI, a server) can use to reach the same data."""
        if self.schema is None:
            return self.url
        return f"{self.url}?options=-csearch_path%3D{self.schema}"


def postgres_url() -> str | None:
    """The PostgreSQL leg must run in CI (the variable is set); elsewhere it is skipped if absent."""
    url = os.environ.get("CARERELAY_TEST_POSTGRES_URL")
    if url:
        return url
    probe = make_engine(DEFAULT_PG)
    try:
        with probe.connect():
            return DEFAULT_PG
    except OperationalError:
        return None
    finally:
        probe.dispose()


def _create_backend(name: str, tmp: Path) -> Backend:
    if name == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp / 'carerelay-test.db'}", None)
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL leg skipped: no server at 127.0.0.1:5432 and CARERELAY_TEST_POSTGRES_URL unset")
    schema = f"crtest_{os.getpid()}_{secrets.token_hex(3)}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return Backend("postgresql", normalize_url(url), schema)


def _drop_backend(backend: Backend) -> None:
    if backend.schema is None:
        return
    admin = make_engine(backend.url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{backend.schema}" CASCADE'))
    admin.dispose()


@contextmanager
def fresh_backend(name: str, tmp: Path) -> Iterator[Backend]:
    """An empty database of a test's own (a new SQLite file, or a new PostgreSQL schema), not migrated."""
    created = _create_backend(name, tmp)
    try:
        yield created
    finally:
        _drop_backend(created)


@contextmanager
def own_demo(name: str, tmp: Path) -> Iterator[Backend]:
    """A migrated demo database of a test's (or module's) own, for tests that commit changes to shared
    demo data — an admission to a demo bed would change that bed for every later test of the run."""
    with fresh_backend(name, tmp) as own:
        eng = own.engine()
        upgrade(eng)
        with Database(eng).unit_of_work() as session:
            load_demo(session=session, clock=FakeClock(), actor=cli_actor("test-setup"))
        eng.dispose()
        yield own


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    created = _create_backend(request.param, tmp_path_factory.mktemp(request.param))
    yield created
    _drop_backend(created)


@pytest.fixture(scope="session")
def engine(backend: Backend) -> Iterator[Engine]:
    """Migrated and loaded with the demo hospital once per backend per run."""
    eng = backend.engine()
    upgrade(eng)
    with Database(eng).unit_of_work() as session:
        load_demo(session=session, clock=FakeClock(), actor=cli_actor("test-setup"))
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(engine: Engine) -> Iterator[Database]:
    """A database whose every unit of work is a savepoint inside one transaction rolled back at the end."""
    connection = engine.connect()
    outer = connection.begin()
    try:
        yield Database(engine, bind=connection)
    finally:
        outer.rollback()
        connection.close()


TEST_KEYS = "t1:" + base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return load_settings(database_url=backend.url, log_format="text", attachment_keys=TEST_KEYS, run_timers=False)


@pytest.fixture
def client(settings: Settings, db: Database, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db, clock=clock)) as test_client:
        yield test_client


def sign_in(client: TestClient, username: str, password: str | None = None) -> dict[str, str]:
    """Bearer headers for a demo user, so one client can act as several people.

    With a password this signs in over HTTP; without one it opens the session directly, skipping
    the deliberately slow argon2 check in tests that are not about passwords.
    """
    if password is not None:
        response = client.post("/api/auth/sign-in", json={"username": username, "password": password, "kind": "api"})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}
    state = client.app.state  # type: ignore[attr-defined]
    with state.db.unit_of_work() as session:
        person = session.execute(select(Person).where(Person.username == username)).scalar_one()
        opened = start_session(session=session, clock=state.clock, settings=state.settings, person=person,
                              kind="api", ip="testclient", user_agent=None, method="test")
    return {"Authorization": f"Bearer {opened.token}"}
