"""Embedded mode: an EHR opens ``/embed?token=…`` signed with a shared key (HMAC-SHA256, with expiry).

The token (docs/subsystems/web.md shows how an EHR builds one)::

    v1.<base64url(JSON payload)>.<base64url(HMAC-SHA256(key, "v1." + base64url(JSON payload)))>
    payload = {"user": "<EHR user name>", "patient": "<MRN>", "exp": <unix seconds>, "nonce": "<random>"}

A launch is refused, with a reason an EHR analyst can act on, when the signature does not match,
the token has expired or claims a lifetime longer than ``embed_token_max_seconds``, it was
already used (each nonce works once), no active person has that EHR user name, or no patient has
that MRN. Every refusal is audited; an accepted launch opens an ordinary web session (audited as a
sign-in with method ``ehr_launch``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth import service as auth
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Unauthenticated
from carerelay.directory import service as directory
from carerelay.patients import service as patients
from carerelay.patients.models import Patient
from carerelay.web.models import EmbedLaunch

VERSION = "v1"
MAX_TOKEN_CHARS = 4096


class LaunchRefused(Unauthenticated):
    """The launch token cannot open a session; ``message`` says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: str, payload: dict[str, object]) -> str:
    """What an EHR does to build a token (also used by ``carerelay embed url`` and the tests)."""
    body = _b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    mac = hmac.new(key.encode("utf-8"), f"{VERSION}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{VERSION}.{body}.{_b64(mac)}"


def build_token(*, key: str, ehr_username: str, mrn: str, expires_at: datetime) -> str:
    return sign(key, {"user": ehr_username, "patient": mrn, "exp": int(expires_at.timestamp()),
                      "nonce": secrets.token_urlsafe(18)})


@dataclass(frozen=True)
class Claims:
    user: str
    patient: str
    expires_at: datetime
    nonce: str


def check_token(*, key: str, token: str, now: datetime, max_seconds: int) -> Claims:
    """Signature, shape and time; raises LaunchRefused. Knows nothing of the database."""
    if not key:
        raise LaunchRefused("embedded mode is not set up on this server (CARERELAY_EMBED_LAUNCH_KEY is empty)")
    parts = token.split(".")
    if len(token) > MAX_TOKEN_CHARS or len(parts) != 3 or parts[0] != VERSION:
        raise LaunchRefused("the launch token is malformed (expected v1.<payload>.<signature>)")
    expected = hmac.new(key.encode("utf-8"), f"{VERSION}.{parts[1]}".encode("ascii", "replace"),
                        hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
    except (binascii.Error, ValueError):
        given = b""
    if not hmac.compare_digest(expected, given):
        raise LaunchRefused("the launch token's signature does not match: it was not signed with this "
                            "server's launch key, or it was altered")
    try:
        payload = json.loads(_unb64(parts[1]))
    except (binascii.Error, ValueError):
        raise LaunchRefused("the launch token's payload is not base64url JSON") from None
    if not isinstance(payload, dict):
        raise LaunchRefused("the launch token's payload is not a JSON object")
    user, patient, exp, nonce = (payload.get(k) for k in ("user", "patient", "exp", "nonce"))
    if not isinstance(user, str) or not user.strip():
        raise LaunchRefused("the launch token names no EHR user (field 'user')")
    if not isinstance(patient, str) or not patient.strip():
        raise LaunchRefused("the launch token names no patient MRN (field 'patient')")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise LaunchRefused("the launch token has no expiry (field 'exp', unix seconds)")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
        raise LaunchRefused("the launch token needs a random 'nonce' of 16 to 128 characters")
    expires_at = datetime.fromtimestamp(exp, UTC)
    if expires_at <= now:
        raise LaunchRefused(f"the launch token expired at {expires_at:%Y-%m-%d %H:%M:%S} UTC; open carerelay "
                            "from the EHR again")
    if expires_at - now > timedelta(seconds=max_seconds):
        raise LaunchRefused(f"the launch token is valid for longer than this server accepts ({max_seconds} "
                            "seconds); sign tokens that expire sooner")
    return Claims(user=user.strip(), patient=patient.strip(), expires_at=expires_at, nonce=nonce)


@dataclass(frozen=True)
class Launched:
    signed_in: auth.SignedIn
    patient: Patient


def launch(
    *, session: Session, clock: Clock, settings: Settings, token: str, ip: str | None, user_agent: str | None
) -> Launched:
    """Check the token, match the EHR user and the patient, spend the nonce and open a web session."""
    now = clock.now()
    anonymous = Actor(person_id=None, username="ehr-launch", ip=ip)

    def refuse(exc: LaunchRefused, detail: dict[str, object]) -> LaunchRefused:
        audit.record(session=session, clock=clock, actor=anonymous, action="auth.embed_launch",
                     object_type="person", outcome="failure", detail={"reason": exc.message, **detail})
        return LaunchRefused(exc.message, keep_changes=True)

    try:
        claims = check_token(key=settings.embed_launch_key, token=token, now=now,
                             max_seconds=settings.embed_token_max_seconds)
    except LaunchRefused as exc:
        raise refuse(exc, {}) from None
    detail: dict[str, object] = {"ehr_username": claims.user}
    person = (directory.find_person_by(session=session, field="ehr_username", value=claims.user)
              or directory.find_person_by(session=session, field="ehr_username", value=claims.user.upper()))
    if person is None or not person.active:
        raise refuse(LaunchRefused(f"no active carerelay user has the EHR user name {claims.user!r}; ask the "
                                   "carerelay administrator to set it on the person"), detail)
    patient = patients.find_patient(session=session, ref=claims.patient)
    if patient is None:
        raise refuse(LaunchRefused(f"no patient with MRN {claims.patient!r} is known to carerelay yet (the ADT "
                                   "feed has not sent one)"), detail)
    session.execute(delete(EmbedLaunch).where(EmbedLaunch.expires_at < now - timedelta(days=1)))
    if session.get(EmbedLaunch, claims.nonce) is not None:
        raise refuse(LaunchRefused("this launch link was already used; open carerelay from the EHR again"),
                     detail)
    session.add(EmbedLaunch(nonce=claims.nonce, ehr_username=claims.user, person_id=person.id,
                            patient_id=patient.id, used_at=now, expires_at=claims.expires_at))
    session.flush()
    opened = auth.start_session(session=session, clock=clock, settings=settings, person=person,
                                method="ehr_launch", ip=ip, user_agent=user_agent,
                                detail={"ehr_username": claims.user, "patient_id": patient.id})
    return Launched(signed_in=opened, patient=patient)
