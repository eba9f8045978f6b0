"""`carerelay serve` as a real process: it serves the demo, a user signs in, SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import Engine

from carerelay.demo import DEMO_PASSWORD
from tests.api.messaging.helpers import png
from tests.conftest import Backend
from tests.servers import running_server

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
        server.process.send_signal(signal.SIGTERM)
        # After its graceful shutdown uvicorn re-raises SIGTERM, as service managers expect.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = server.log()
    assert "carerelay shutdown complete" in log
    assert '"level": "INFO"' in log
