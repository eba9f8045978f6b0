"""The WebSocket: live messages and receipts, reconnect without gaps or duplicates, ended sessions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.api.messaging.helpers import direct, send, user


def _until(ws: Any, kind: str) -> dict[str, Any]:
    """Frames arrive in order; skip those of other kinds (a receipt echo, a conversation change)."""
    for _ in range(20):
        frame: dict[str, Any] = ws.receive_json()
        if frame.get("kind") == kind or frame.get("type") == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def test_message_and_read_receipt_arrive_live(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    with client.websocket_connect("/api/ws", headers=nurse.headers) as nurse_ws, \
            client.websocket_connect("/api/ws", headers=doc.headers) as doc_ws:
        assert nurse_ws.receive_json()["type"] == "hello" and doc_ws.receive_json()["type"] == "hello"
        sent = send(client, nurse, conv, "BP 82/50 in 412-B", priority="stat", needs_ack=True)
        arrived = _until(doc_ws, "message.new")
        assert arrived["data"]["id"] == sent["id"] and arrived["data"]["priority"] == "stat"
        doc_ws.send_json({"type": "receipt", "state": "read", "message_ids": [sent["id"]]})
        echo = _until(nurse_ws, "message.new")
        assert echo["data"]["id"] == sent["id"]
        receipt = _until(nurse_ws, "receipt.changed")
        assert receipt["data"]["receipts"][0]["person_id"] == doc.id
        assert receipt["data"]["receipts"][0]["read_at"] is not None
        doc_ws.send_json({"type": "receipt", "state": "sideways", "message_ids": [sent["id"]]})
        assert _until(doc_ws, "error")["type"] == "error"
        doc_ws.send_json({"type": "ping"})
        assert _until(doc_ws, "pong")["type"] == "pong"


def test_reconnect_with_last_seen_gets_everything_missed_once(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    with client.websocket_connect("/api/ws", headers=doc.headers) as ws:
        start = ws.receive_json()["last_seq"]
        send(client, nurse, conv, "one")
        last_seen = _until(ws, "message.new")["seq"]
    for text in ("two", "three", "four"):
        send(client, nurse, conv, text)
    with client.websocket_connect(f"/api/ws?after={last_seen}", headers=doc.headers) as ws:
        assert ws.receive_json()["last_seq"] == last_seen
        frames = [_until(ws, "message.new") for _ in range(3)]
    assert [f["data"]["text"] for f in frames] == ["two", "three", "four"]
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs)) and seqs[0] > last_seen > start


def test_password_reset_closes_the_live_socket(client: TestClient) -> None:
    nurse, admin = user(client, "cnurse"), user(client, "admin")
    with client.websocket_connect("/api/ws", headers=nurse.headers) as ws:
        ws.receive_json()
        reset = client.post("/api/auth/reset-password", headers=admin.headers,
                            json={"person_id": nurse.id, "new_password": "a-fresh-password"})
        assert reset.status_code == 200
        ended = ws.receive_json()
        assert ended["type"] == "session_ended" and "password reset" in ended["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4001


def test_socket_without_a_session_is_refused(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/api/ws") as ws:
        ws.receive_json()
    assert refused.value.code == 1008
    bad = {"Authorization": "Bearer not-a-token"}
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/api/ws", headers=bad) as ws:
        ws.receive_json()
