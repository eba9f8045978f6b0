"""Attachments: camera images and audio clips, checked by their bytes and sealed at rest.

The declared content type is ignored: the type comes from the file's magic bytes, and only the
image and audio formats phones produce are accepted. Bytes are encrypted with the key ring's
active key; the blob's random id is bound in as associated data so ciphertexts cannot be swapped
between rows unnoticed.
"""

from __future__ import annotations

import hashlib
import secrets

import filetype
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.crypto import KeyRing, Sealed
from carerelay.core.errors import Invalid, NotFound
from carerelay.messaging.models import Attachment, AttachmentBlob

ALLOWED = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/webp": "webp",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/aac": "aac",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/x-wav": "wav",
    "audio/wav": "wav",
    "video/webm": "webm",
}
"""Browsers record audio as WebM (sniffed as video/webm) or MP4; it is served back as audio."""

SERVE_AS = {"video/webm": "audio/webm", "audio/m4a": "audio/mp4"}


def sniff(data: bytes) -> str:
    kind = filetype.guess(data)
    if kind is None or kind.mime not in ALLOWED:
        found = kind.mime if kind is not None else "unrecognised content"
        raise Invalid(f"only camera images (JPEG, PNG, HEIC, WebP) and audio clips (M4A, AAC, MP3, OGG, WAV, "
                      f"WebM) can be attached; this file is {found}", field="file")
    return str(kind.mime)


def store_upload(
    *, session: Session, clock: Clock, actor: Actor, keys: KeyRing, data: bytes, max_bytes: int
) -> Attachment:
    """Check, encrypt and keep an upload; it stays unbound until a message is sent with it."""
    if actor.person_id is None:
        raise Invalid("only a person can upload")
    if not data:
        raise Invalid("the file is empty", field="file")
    if len(data) > max_bytes:
        raise Invalid(f"the file is {len(data)} bytes; the limit is {max_bytes}", field="file")
    content_type = sniff(data)
    blob_ref = secrets.token_hex(16)
    sealed = keys.seal(data, blob_ref.encode())
    now = clock.now()
    blob = AttachmentBlob(nonce_id=blob_ref, key_id=sealed.key_id, nonce=sealed.nonce, ciphertext=sealed.ciphertext,
                          content_type=content_type, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                          uploaded_by=actor.person_id, uploaded_at=now)
    session.add(blob)
    session.flush()
    attachment = Attachment(blob_id=blob.id, message_id=None, owner_id=actor.person_id, created_at=now)
    session.add(attachment)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="attachment.upload", object_type="attachment",
                 object_id=attachment.id, detail={"content_type": content_type, "size": len(data),
                                                  "sha256": blob.sha256})
    return attachment


def open_blob(*, keys: KeyRing, blob: AttachmentBlob) -> bytes:
    return keys.open(Sealed(blob.key_id, blob.nonce, blob.ciphertext), blob.nonce_id.encode())


def blob_of(session: Session, attachment: Attachment) -> AttachmentBlob:
    blob = session.get(AttachmentBlob, attachment.blob_id)
    if blob is None:
        raise NotFound(f"attachment {attachment.id} has no content")
    return blob


def served_type(content_type: str) -> str:
    return SERVE_AS.get(content_type, content_type)
