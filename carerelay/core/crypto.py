"""Encryption at rest for patient data (attachments): AES-256-GCM with a key ring.

Each ciphertext records the id of the key that sealed it, so keys can rotate: new data is sealed
with the active key and old data still opens with the key it names. The ring comes from
``CARERELAY_ATTACHMENT_KEYS`` (``id:base64key,…``, first is active) or, for a zero-setup single
node, from a key file created on first use next to the SQLite database (mode 0600).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carerelay.core.errors import Invalid


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


class KeyRing:
    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys:
            raise ValueError(f"active key {active!r} is not in the ring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"key {key_id!r} must be 32 bytes (AES-256)")
        self._keys = dict(keys)
        self.active = active

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        nonce = secrets.token_bytes(12)
        ciphertext = AESGCM(self._keys[self.active]).encrypt(nonce, plaintext, associated)
        return Sealed(self.active, nonce, ciphertext)

    def open(self, sealed: Sealed, associated: bytes) -> bytes:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise Invalid(f"encryption key {sealed.key_id!r} is not in the key ring; restore it to read this data")
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, associated)

    @staticmethod
    def parse(spec: str) -> KeyRing:
        """``id:base64,id2:base64`` — the first key is the active one."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            key_id, _, encoded = part.partition(":")
            if not key_id or not encoded:
                raise ValueError("each key is written id:base64key")
            keys[key_id] = base64.b64decode(encoded, validate=True)
            order.append(key_id)
        if not order:
            raise ValueError("no keys given")
        return KeyRing(keys, order[0])

    def to_file(self, path: Path) -> None:
        data = {"active": self.active, "keys": {k: base64.b64encode(v).decode() for k, v in self._keys.items()}}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        tmp.replace(path)

    @staticmethod
    def from_file(path: Path) -> KeyRing:
        data = json.loads(path.read_text())
        return KeyRing({k: base64.b64decode(v) for k, v in data["keys"].items()}, data["active"])

    def rotated(self) -> KeyRing:
        """A ring with one more key, which becomes the active one."""
        new_id = f"k{len(self._keys) + 1}-{secrets.token_hex(3)}"
        return KeyRing({**self._keys, new_id: AESGCM.generate_key(bit_length=256)}, new_id)


def new_key_ring() -> KeyRing:
    return KeyRing({"k1": AESGCM.generate_key(bit_length=256)}, "k1")


def load_key_ring(spec: str | None, key_file: Path) -> KeyRing:
    if spec:
        return KeyRing.parse(spec)
    if key_file.exists():
        return KeyRing.from_file(key_file)
    ring = new_key_ring()
    ring.to_file(key_file)
    return ring
