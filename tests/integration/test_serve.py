"""`carerelay serve` as a real process: it serves the demo, a user signs in, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, func, select

from carerelay.auth.models import AuthSession
from carerelay.demo import DEMO_PASSWORD
from carerelay.directory.models import Person
from carerelay.jobs.models import Timer
from carerelay.messaging.retention import PURGE_KEY
from tests.api.messaging.helpers import png
from tests.conftest import Backend
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.slow


def test_serve_sign_in_and_graceful_shutdown(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    with running_server(backend.cli_url(), tmp_path) as server:
        signed = httpx.post(f"{server.base_url}/api/auth/sign-in",
                            json={"username": "cnurse", "password": DEMO_PASSWORD, "kind": "api"})
        assert signed.status_code == 200
        token = signed.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        me = httpx.get(f"{server.base_url}/api/auth/me", headers=bearer)
        assert me.json()["username"] == "cnurse"
        # A real server with real connections: an upload must not wait on a lock its own request holds.
        upload = httpx.post(f"{server.base_url}/api/attachments", headers=bearer,
                            files={"file": ("photo.png", png(), "image/png")}, timeout=10)
        assert upload.status_code == 201, upload.text
        _wait_for_the_daily_purge(engine)
        server.process.send_signal(signal.SIGTERM)
        # After its graceful shutdown uvicorn re-raises SIGTERM, as service managers expect.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = server.log()
    assert "carerelay shutdown complete" in log
    assert '"level": "INFO"' in log


def _wait_for_the_daily_purge(engine: Engine, timeout: float = 30) -> None:
    """The node's worker purged at once and planned the next purge a day later (polling a real process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            due = conn.execute(select(Timer.due_at).where(Timer.key == PURGE_KEY, Timer.fired_at.is_(None),
                                                          Timer.cancelled_at.is_(None))).scalars().all()
            fired = conn.execute(select(func.count()).select_from(Timer).where(
                Timer.key == PURGE_KEY, Timer.fired_at.is_not(None))).scalar_one()
        if fired and len(due) == 1 and due[0] - datetime.now(UTC) > timedelta(hours=23):
            return
        time.sleep(0.05)
    raise AssertionError(f"no daily purge planned: pending {due}, fired {fired}")


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def _wait_for_log(server: ServerProcess, text: str, timeout: float = 30) -> None:
    """Polls the log of a real process for a line it writes when it reaches a state, as readiness does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            return
        assert server.process.poll() is None, server.log()
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} in the log:\n{server.log()}")


def test_a_request_in_flight_completes_during_graceful_shutdown(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    with running_server(backend.cli_url(), tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        body = json.dumps({"username": "prenner", "password": DEMO_PASSWORD, "kind": "api"}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /api/auth/sign-in HTTP/1.1\r\nHost: carerelay\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
            # The server answers 100 Continue when the route starts reading the body: the request is in flight.
            assert b" 100 " in _read_head(sock).split(b"\r\n", 1)[0]
            server.process.send_signal(signal.SIGTERM)
            _wait_for_log(server, "Shutting down")
            with pytest.raises(httpx.TransportError):  # no new work is taken once shutdown began
                httpx.get(f"{server.base_url}/healthz", timeout=2)
            sock.sendall(body)
            head = _read_head(sock)
            assert head.startswith(b"HTTP/1.1 200"), head
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = server.log()
    assert "carerelay shutdown complete" in log
    with engine.connect() as conn:  # what the request wrote was committed before the process ended
        person = conn.execute(select(Person.id).where(Person.username == "prenner")).scalar_one()
        opened = conn.execute(select(func.count()).select_from(AuthSession)
                              .where(AuthSession.person_id == person)).scalar_one()
    assert opened >= 1
