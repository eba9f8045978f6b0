"""Signing in demo people and starting conversations, for the messaging tests."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import sign_in


@dataclass(frozen=True)
class User:
    username: str
    id: int
    headers: dict[str, str]


def user(client: TestClient, username: str) -> User:
    headers = sign_in(client, username)
    return User(username, client.get("/api/auth/me", headers=headers).json()["person_id"], headers)


def direct(client: TestClient, a: User, b: User, **extra: Any) -> int:
    response = client.post("/api/conversations", headers=a.headers,
                           json={"kind": "direct", "member_ids": [b.id], **extra})
    assert response.status_code == 201, response.text
    conversation_id: int = response.json()["id"]
    return conversation_id


def send(client: TestClient, who: User, conversation_id: int, text: str, **extra: Any) -> dict[str, Any]:
    response = client.post(f"/api/conversations/{conversation_id}/messages", headers=who.headers,
                           json={"text": text, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def png(width: int = 2, height: int = 2, noise: bool = False) -> bytes:
    """A real PNG a browser will decode; ``noise`` makes its pixels incompressible, to test size limits."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + (os.urandom(3 * width) if noise else b"\xff\x00\x00" * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
