"""Two app processes on one PostgreSQL deliver to each other's clients (LISTEN/NOTIFY)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import Engine
from websockets.sync.client import connect

from carerelay.demo import DEMO_PASSWORD
from tests.conftest import Backend
from tests.servers import running_server

pytestmark = pytest.mark.slow


def _token(base_url: str, username: str) -> str:
    response = httpx.post(f"{base_url}/api/auth/sign-in",
                          json={"username": username, "password": DEMO_PASSWORD, "kind": "api"})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_message_sent_on_one_node_reaches_a_client_on_the_other(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    if backend.name != "postgresql":
        pytest.skip("several nodes need PostgreSQL; SQLite is one process by design")
    with running_server(backend.cli_url(), tmp_path) as node_a, running_server(backend.cli_url(), tmp_path) as node_b:
        # People no other test writes to: this test commits for real.
        reader, writer = _token(node_a.base_url, "kasante"), _token(node_b.base_url, "rjimenez")
        reader_id = httpx.get(f"{node_a.base_url}/api/auth/me",
                              headers={"Authorization": f"Bearer {reader}"}).json()["person_id"]
        ws_url = node_a.base_url.replace("http://", "ws://") + "/api/ws"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {reader}"}, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            writer_headers = {"Authorization": f"Bearer {writer}"}
            conv = httpx.post(f"{node_b.base_url}/api/conversations", headers=writer_headers,
                              json={"kind": "group", "member_ids": [reader_id], "title": "two-node check"}).json()
            sent = httpx.post(f"{node_b.base_url}/api/conversations/{conv['id']}/messages", headers=writer_headers,
                              json={"text": "sent through node B"})
            assert sent.status_code == 201, sent.text
            kinds = []
            for _ in range(5):
                frame = json.loads(ws.recv(timeout=10))
                kinds.append(frame.get("kind"))
                if frame.get("kind") == "message.new":
                    assert frame["data"]["text"] == "sent through node B"
                    break
            assert "message.new" in kinds
