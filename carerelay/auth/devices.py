"""Shared unit devices and PIN unlock on personal devices.

A shared device (registered in the directory with ``shared=True`` for a unit) is handed from person
to person. Signing in on it opens a session of kind ``shared`` bound to the person and records a
:class:`DeviceBinding`; the previous person's session on that device ends at the same moment, so a
phone left in the med room never keeps showing the last nurse's alerts: the end is announced to that
session's open WebSocket, which closes. Alerts follow people: events are written per person, and each
socket knows from :func:`delivery_targets` whether its session is still one of the person's live sessions
before it sends anything; nothing is ever sent to a device for its own sake.

On a personal device a person may set a PIN; an idle session then locks (see ``authenticate``) and
the PIN unlocks it. Five wrong PINs end the session: a full sign-in is needed again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth import service
from carerelay.auth.models import AuthSession, Credential, DeviceBinding
from carerelay.auth.policy import SessionLimits, session_limits
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Forbidden, Invalid, Unauthenticated
from carerelay.directory import service as directory

PIN_PATTERN_TEXT = "4 to 8 digits"


def sign_in_on_shared_device(
    *, session: Session, clock: Clock, settings: Settings, device_identifier: str, username: str, password: str,
    totp_code: str | None = None, ip: str | None = None, user_agent: str | None = None,
) -> service.SignedIn:
    device = directory.find_device(session=session, identifier=device_identifier)
    if not device.shared or not device.active:
        raise Forbidden(f"device {device_identifier!r} is not an active shared device")
    result = service.sign_in(session=session, clock=clock, settings=settings, username=username, password=password,
                             totp_code=totp_code, kind=service.SHARED, ip=ip, user_agent=user_agent)
    now = clock.now()
    previous = list(session.execute(
        select(DeviceBinding).where(DeviceBinding.device_id == device.id, DeviceBinding.ended_at.is_(None))
    ).scalars())
    reason = f"next person signed in on {device.identifier}"[:120]
    for binding in previous:
        binding.ended_at = now
        binding.end_reason = reason
        old = session.get(AuthSession, binding.auth_session_id)
        if old is not None and old.revoked_at is None:
            old.revoked_at = now
            old.revoke_reason = reason
            service.announce_session_end(session=session, clock=clock, person_id=old.person_id,
                                         session_ids=[old.id], reason=reason)
    session.add(DeviceBinding(device_id=device.id, person_id=result.person.id, auth_session_id=result.session.id,
                              started_at=now))
    session.flush()
    audit.record(session=session, clock=clock,
                 actor=Actor(person_id=result.person.id, username=result.person.username, ip=ip),
                 action="auth.shared_device_sign_in", object_type="device", object_id=device.id,
                 detail={"session_id": result.session.id, "ended_bindings": [b.id for b in previous],
                         "ended_people": sorted({b.person_id for b in previous})})
    return result


@dataclass(frozen=True)
class DeliveryTarget:
    """``until``: when the session stops being a target by time alone (expiry, idling) at the latest.

    Every other end (sign-out, revocation, hand-over, a password reset) is announced in the person's
    event stream in the transaction that ends it, so a socket reading that stream in order may trust
    a target until then without asking again.
    """

    session_id: int
    kind: str
    device_id: int | None
    until: datetime


_SHORTEST_IDLE_LIMIT = timedelta(minutes=1)  # the settings' floor for either idle limit

# Built once: every WebSocket asks on connecting and whenever its last answer's until has passed.
_LIVE_SESSIONS = (
    select(AuthSession.id, AuthSession.kind, AuthSession.last_seen_at, AuthSession.expires_at, DeviceBinding.device_id)
    .outerjoin(DeviceBinding, (DeviceBinding.auth_session_id == AuthSession.id) & DeviceBinding.ended_at.is_(None))
    .where(AuthSession.person_id == bindparam("person_id"), AuthSession.revoked_at.is_(None),
           AuthSession.expires_at > bindparam("now"))
    .order_by(AuthSession.id)
)
_LIVE_SESSION = _LIVE_SESSIONS.where(AuthSession.id == bindparam("session_id"))


def delivery_targets(
    *, session: Session, clock: Clock, settings: Settings, person_id: int, session_id: int | None = None
) -> list[DeliveryTarget]:
    """Where an alert for this person goes now: their live sessions, each with the device it is bound to.

    The WebSocket asks this (``session_id``: only that session) and again once the target's ``until``
    has passed, so a socket whose session ended — handed over, idle, signed out, revoked — is never a
    place an event goes.
    """
    now = clock.now()
    if session_id is None:
        rows = session.execute(_LIVE_SESSIONS, {"person_id": person_id, "now": now}).all()
    else:
        rows = session.execute(_LIVE_SESSION, {"person_id": person_id, "now": now, "session_id": session_id}).all()
    limits: SessionLimits | None = None
    found = []
    for auth_session_id, kind, last_seen_at, expires_at, device_id in rows:
        if kind == service.SHARED and device_id is None:
            continue  # a shared session whose binding ended is not a place to deliver
        idle_for = now - last_seen_at
        idle_limit = _SHORTEST_IDLE_LIMIT
        if idle_for >= idle_limit:  # skip the policy read for busy sessions
            limits = limits or session_limits(session=session, settings=settings)
            idle_limit = service.idle_limit(limits, settings, kind)
            if idle_for >= idle_limit:
                continue
        found.append(DeliveryTarget(auth_session_id, kind, device_id, min(expires_at, last_seen_at + idle_limit)))
    return found


def person_on_device(*, session: Session, clock: Clock, settings: Settings, device_id: int) -> int | None:
    """Who is signed in on a shared device now (None when nobody is)."""
    binding = session.execute(
        select(DeviceBinding).where(DeviceBinding.device_id == device_id, DeviceBinding.ended_at.is_(None))
    ).scalar_one_or_none()
    if binding is None:
        return None
    targets = delivery_targets(session=session, clock=clock, settings=settings, person_id=binding.person_id)
    return binding.person_id if any(t.session_id == binding.auth_session_id for t in targets) else None


def _check_pin(pin: str) -> None:
    if not (pin.isdigit() and 4 <= len(pin) <= 8):
        raise Invalid(f"a PIN is {PIN_PATTERN_TEXT}", field="pin")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise Invalid("choose a PIN that is not a repeated or sequential run of digits", field="pin")


def set_pin(*, session: Session, clock: Clock, actor: Actor, pin: str) -> None:
    if actor.person_id is None:
        raise Forbidden("only a person can set a PIN")
    _check_pin(pin)
    cred = session.get(Credential, actor.person_id)
    if cred is None:
        cred = Credential(person_id=actor.person_id)
        session.add(cred)
    cred.pin_hash = service.hash_password(pin)
    audit.record(session=session, clock=clock, actor=actor, action="auth.set_pin", object_type="person",
                 object_id=actor.person_id)


def lock_session(*, session: Session, clock: Clock, actor: Actor) -> None:
    row = session.get(AuthSession, actor.session_id) if actor.session_id is not None else None
    if row is None:
        raise Unauthenticated("not signed in")
    cred = session.get(Credential, row.person_id)
    if row.kind == service.SHARED or cred is None or not cred.pin_hash:
        raise Invalid("only a personal-device session of someone with a PIN can be locked; sign out instead")
    row.locked_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="auth.lock_session", object_type="session",
                 object_id=row.id)


def unlock_session(*, session: Session, clock: Clock, settings: Settings, token: str, pin: str,
                   ip: str | None = None) -> AuthSession:
    now = clock.now()
    digest = hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
    row = session.execute(select(AuthSession).where(AuthSession.token_hash == digest)).scalar_one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise Unauthenticated("not signed in, or the session has ended")
    cred = session.get(Credential, row.person_id)
    who = Actor(person_id=row.person_id, username=f"person:{row.person_id}", session_id=row.id, ip=ip)
    if row.kind == service.SHARED or cred is None or not cred.pin_hash:
        raise Unauthenticated("this session cannot be unlocked with a PIN; sign in again")
    idle = settings.session_idle_minutes
    if row.last_seen_at + timedelta(minutes=idle) <= now:
        row.revoked_at, row.revoke_reason = now, "idle timeout"
        service.announce_session_end(session=session, clock=clock, person_id=row.person_id, session_ids=[row.id],
                                     reason="idle timeout")
        raise Unauthenticated("the session ended after being idle; sign in again", keep_changes=True)
    try:
        good: bool = service._hasher.verify(cred.pin_hash, pin)
    except (VerificationError, InvalidHashError):
        good = False
    if not good:
        row.pin_failures += 1
        ended = row.pin_failures >= service.PIN_ATTEMPTS
        if ended:
            row.revoked_at, row.revoke_reason = now, "too many wrong PINs"
            service.announce_session_end(session=session, clock=clock, person_id=row.person_id,
                                         session_ids=[row.id], reason="too many wrong PINs")
        audit.record(session=session, clock=clock, actor=who, action="auth.unlock_session", object_type="session",
                     object_id=row.id, outcome="failure", detail={"failures": row.pin_failures, "ended": ended})
        message = "too many wrong PINs: the session has ended; sign in again" if ended else "wrong PIN"
        raise Unauthenticated(message, keep_changes=True)
    row.locked_at = None
    row.pin_failures = 0
    row.last_seen_at = now
    audit.record(session=session, clock=clock, actor=who, action="auth.unlock_session", object_type="session",
                 object_id=row.id)
    return row
