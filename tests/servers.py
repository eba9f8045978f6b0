"""Real `carerelay serve` processes for tests that need a live server (crash, two-node, SIGTERM), the clock
file a test moves them through time with, and people signed in to use them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import Engine, select

from carerelay.auth.service import start_session
from carerelay.config import load_settings
from carerelay.core.actor import cli_actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.directory import service as directory
from carerelay.directory.models import Department


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_ready(base_url: str, process: subprocess.Popen[str], log_path: Path, timeout: float = 120) -> None:
    """Poll /readyz; this waits on a real process starting, not on time passing in the system under test.

    The bound is generous because a loaded 2-core CI machine can take half a minute to import and
    migrate-check; a server that is merely slow must not fail a test about something else."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server not ready after {timeout}s:\n{log_path.read_text()}")


def launch(database_url: str, tmp: Path, port: int | None = None, **env: str) -> ServerProcess:
    """Start `carerelay serve` without waiting for it (several nodes start side by side)."""
    port = port or free_port()
    log_path = tmp / f"server-{port}.log"
    # MLLP, TAP, SNPP and pager SMTP off unless a test asks for them: parallel runs on one machine must
    # not fight over their fixed default ports
    environment = {**os.environ, "CARERELAY_DATABASE_URL": database_url, "CARERELAY_PORT": str(port),
                   "CARERELAY_LOG_FORMAT": "json", "CARERELAY_MLLP_PORT": "0", "CARERELAY_TAP_PORT": "0",
                   "CARERELAY_SNPP_PORT": "0", "CARERELAY_PAGER_SMTP_PORT": "0", **env}
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "carerelay", "serve"], env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, text=True)
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path)


def _stop(server: ServerProcess) -> None:
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=10)


@contextmanager
def running_server(database_url: str, tmp: Path, port: int | None = None, **env: str) -> Iterator[ServerProcess]:
    server = launch(database_url, tmp, port, **env)
    try:
        wait_until_ready(server.base_url, server.process, server.log_path)
        yield server
    finally:
        _stop(server)


@contextmanager
def running_servers(database_url: str, tmp: Path, *envs: dict[str, str]) -> Iterator[list[ServerProcess]]:
    """One node per ``envs`` entry, started together (a 2-core machine imports two in about the time of one)."""
    servers: list[ServerProcess] = []
    try:
        for env in envs:
            servers.append(launch(database_url, tmp, None, **env))
        for server in servers:
            wait_until_ready(server.base_url, server.process, server.log_path)
        yield servers
    finally:
        for server in servers:
            _stop(server)


class ClockFile:
    """The instant a live server reads as "now" (``CARERELAY_TEST_CLOCK_FILE``, with
    ``CARERELAY_ENVIRONMENT=test``): the test moves it, the server never moves by itself."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.path = path
        self.set(start)

    @property
    def env(self) -> dict[str, str]:
        return {"CARERELAY_ENVIRONMENT": "test", "CARERELAY_TEST_CLOCK_FILE": str(self.path)}

    def now(self) -> datetime:
        return datetime.fromisoformat(self.path.read_text())

    def set(self, instant: datetime) -> None:
        staged = self.path.with_suffix(".next")
        staged.write_text(instant.isoformat())
        os.replace(staged, self.path)  # a reader sees the old instant or the new one, never half a file

    def advance(self, **delta: float) -> datetime:
        instant = self.now() + timedelta(**delta)
        self.set(instant)
        return instant


@dataclass(frozen=True)
class SignedIn:
    person_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def people_signed_in(engine: Engine, tag: str, roles: list[str], clock: Clock) -> list[SignedIn]:
    """New people (one per role given), each with an API session, committed for a live server to use.

    Made directly through the services: no argon2 sign-in per person, and nobody another test writes to."""
    db = Database(engine)
    actor = cli_actor("test-setup")
    settings = load_settings()
    made = []
    with db.unit_of_work() as session:
        department = session.execute(select(Department.id).order_by(Department.id)).scalars().first()
        for n, role in enumerate(roles):
            person = directory.create_person(session=session, clock=clock, actor=actor, data={
                "username": f"{tag}{n}", "given_name": "Test", "family_name": f"{tag.title()}{n}",
                "profession": "operator" if role == "operator" else "nurse", "department_id": department,
                "roles": [role]})
            opened = start_session(session=session, clock=clock, settings=settings, person=person, kind="api",
                                   ip=None, user_agent="test", method="test")
            made.append(SignedIn(person.id, opened.token))
    return made
