"""Attachments: checked by content, size-limited, encrypted at rest, served inline and never cached."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.core.crypto import KeyRing, Sealed
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.messaging.models import AttachmentBlob
from tests.api.messaging.helpers import direct, png, send, user
from tests.conftest import TEST_KEYS

# An M4A (MP4 audio) header as phones record it: enough for content sniffing.
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00" + b"\x00" * 64


def _upload(client: TestClient, headers: dict[str, str], data: bytes, name: str = "photo.jpg",
            declared: str = "image/jpeg") -> tuple[int, dict[str, object]]:
    response = client.post("/api/attachments", headers=headers, files={"file": (name, data, declared)})
    return response.status_code, response.json()


def test_image_round_trip_encrypted_inline_and_no_store(client: TestClient, db: Database) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    image = png()
    status, body = _upload(client, nurse.headers, image)
    assert status == 201 and body["content_type"] == "image/png"
    message = send(client, nurse, direct(client, nurse, doc), "wound photo", attachment_ids=[body["id"]])
    assert message["attachments"][0]["id"] == body["id"]
    served = client.get(f"/api/attachments/{body['id']}", headers=doc.headers)
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "no-store"
    assert served.headers["content-disposition"] == "inline"
    with db.unit_of_work() as session:
        blob = session.execute(select(AttachmentBlob)).scalars().all()[-1]
        assert b"PNG" not in blob.ciphertext and blob.ciphertext != image
    outsider = user(client, "hpark")
    assert client.get(f"/api/attachments/{body['id']}", headers=outsider.headers).status_code == 404


def test_audio_clip_is_accepted(client: TestClient) -> None:
    nurse = user(client, "cnurse")
    status, body = _upload(client, nurse.headers, M4A, "clip.m4a", "audio/mp4")
    assert status == 201 and str(body["content_type"]).startswith("audio/")


def test_wrong_type_and_oversize_are_refused_whatever_is_declared(client: TestClient) -> None:
    nurse, admin = user(client, "cnurse"), user(client, "admin")
    for data in (b"%PDF-1.7 not a photo", b"MZ\x90\x00 an exe", b"<html><script>alert(1)</script></html>"):
        status, body = _upload(client, nurse.headers, data, "photo.jpg", "image/jpeg")
        assert status == 422 and body["field"] == "file"
    assert _upload(client, nurse.headers, b"")[0] == 422
    client.patch("/api/messaging/policy", headers=admin.headers, json={"attachment_max_bytes": 2048})
    status, body = _upload(client, nurse.headers, png(60, 60, noise=True))
    assert status == 422 and "limit" in str(body["detail"])


def test_an_attachment_is_sent_once_and_only_by_its_owner(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    _, body = _upload(client, nurse.headers, png())
    stolen = client.post(f"/api/conversations/{conv}/messages", headers=doc.headers,
                         json={"text": "mine now", "attachment_ids": [body["id"]]})
    assert stolen.status_code == 422
    send(client, nurse, conv, "photo", attachment_ids=[body["id"]])
    twice = client.post(f"/api/conversations/{conv}/messages", headers=nurse.headers,
                        json={"text": "again", "attachment_ids": [body["id"]]})
    assert twice.status_code == 422 and "already sent" in twice.json()["detail"]


def test_rotated_key_ring_still_opens_old_attachments() -> None:
    ring = KeyRing.parse(TEST_KEYS)
    sealed = ring.seal(b"old photo", b"blob-1")
    rotated = ring.rotated()
    assert rotated.active != ring.active and ring.active in rotated.key_ids
    assert rotated.open(Sealed(sealed.key_id, sealed.nonce, sealed.ciphertext), b"blob-1") == b"old photo"
    fresh = rotated.seal(b"new photo", b"blob-2")
    assert fresh.key_id == rotated.active
    stranger = KeyRing({"k9": bytes(32)}, "k9")
    with pytest.raises(Invalid, match="not in the key ring"):
        stranger.open(sealed, b"blob-1")
