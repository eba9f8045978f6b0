"""The WebSocket: live messages and receipts, reconnect without gaps or duplicates, ended sessions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.api.messaging.helpers import User, direct, png, send, user


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


def _photo(client: TestClient, who: User, seed: int) -> tuple[int, bytes]:
    image = png(width=2 + seed, height=2)
    response = client.post("/api/attachments", headers=who.headers, files={"file": ("camera.png", image, "image/png")})
    assert response.status_code == 201, response.text
    attachment_id: int = response.json()["id"]
    return attachment_id, image


def test_two_sessions_exchange_text_and_images_live_with_receipts(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    with client.websocket_connect("/api/ws", headers=nurse.headers) as nurse_ws, \
            client.websocket_connect("/api/ws", headers=doc.headers) as doc_ws:
        assert nurse_ws.receive_json()["type"] == "hello" and doc_ws.receive_json()["type"] == "hello"
        for sender, sender_ws, reader, reader_ws, seed, text in (
                (nurse, nurse_ws, doc, doc_ws, 1, "wound on the left heel, 412-B"),
                (doc, doc_ws, nurse, nurse_ws, 2, "compare with this one from Monday")):
            attachment_id, image = _photo(client, sender, seed)
            sent = send(client, sender, conv, text, attachment_ids=[attachment_id])
            arrived = _until(reader_ws, "message.new")["data"]
            assert (arrived["id"], arrived["text"]) == (sent["id"], text)
            assert arrived["attachments"] == [{"id": attachment_id, "content_type": "image/png", "size": len(image)}]
            served = client.get(f"/api/attachments/{attachment_id}", headers=reader.headers)
            assert served.content == image and served.headers["cache-control"] == "no-store"
            assert served.headers["content-disposition"] == "inline"
            reader_ws.send_json({"type": "receipt", "state": "delivered", "message_ids": [sent["id"]]})
            reader_ws.send_json({"type": "receipt", "state": "read", "message_ids": [sent["id"]]})
            states: list[tuple[bool, bool]] = []
            while len(states) < 2:  # skipping the echoes of the reader's own earlier receipts
                receipt = _until(sender_ws, "receipt.changed")["data"]["receipts"][0]
                if receipt["message_id"] == sent["id"]:
                    assert receipt["person_id"] == reader.id
                    states.append((receipt["delivered_at"] is not None, receipt["read_at"] is not None))
            assert states == [(True, False), (True, True)]
            seen = client.get(f"/api/messages/{sent['id']}/receipts", headers=sender.headers).json()
            assert [(r["person_id"], bool(r["read_at"])) for r in seen] == [(reader.id, True)]


def test_conversation_changes_arrive_live(client: TestClient) -> None:
    nurse, doc, pharmacist = user(client, "cnurse"), user(client, "jwilson"), user(client, "hpark")
    with client.websocket_connect("/api/ws", headers=nurse.headers) as nurse_ws, \
            client.websocket_connect("/api/ws", headers=doc.headers) as doc_ws, \
            client.websocket_connect("/api/ws", headers=pharmacist.headers) as third_ws:
        for ws in (nurse_ws, doc_ws, third_ws):
            assert ws.receive_json()["type"] == "hello"
        created = client.post("/api/conversations", headers=nurse.headers,
                              json={"kind": "group", "member_ids": [doc.id], "title": "412-B wound care"})
        assert created.status_code == 201
        conv = created.json()["id"]
        for ws in (nurse_ws, doc_ws):
            frame = _until(ws, "conversation.new")["data"]
            assert frame["id"] == conv and frame["title"] == "412-B wound care"
            assert sorted(frame["member_ids"]) == sorted([nurse.id, doc.id])
        added = client.post(f"/api/conversations/{conv}/members", headers=doc.headers,
                            json={"person_id": pharmacist.id})
        assert added.status_code == 200
        for ws in (nurse_ws, doc_ws, third_ws):  # the newcomer learns of it the same way
            frame = _until(ws, "conversation.changed")["data"]
            assert frame["id"] == conv and sorted(frame["member_ids"]) == sorted([nurse.id, doc.id, pharmacist.id])


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
