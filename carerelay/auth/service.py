"""Sign-in, sessions and second factor.

Sessions are opaque random tokens; only their SHA-256 is stored, so a copy of the database does
not let anyone sign in. Changing or resetting a password revokes every session of that person:
a stolen device must not keep receiving alerts after IT resets the password.

Failed sign-ins are throttled per user name: after ``login_backoff_after`` failures each further
attempt must wait an exponentially growing delay (answered with Retry-After, never by sleeping a
server thread), and after ``login_lockout_after`` the name is locked for a while.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth.models import AuthSession, Credential, DeviceBinding, LoginThrottle
from carerelay.auth.policy import SessionLimits, session_limits
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flushed_connection
from carerelay.core.errors import Forbidden, Invalid, NotFound, TooManyAttempts, Unauthenticated
from carerelay.core.prepared import Prepared
from carerelay.directory.models import Person, PersonRole
from carerelay.realtime import service as realtime

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist keeps the response time the same; made on
    first use, not at import, so every CLI command does not pay for an Argon2 hash it never needs."""
    return _hasher.hash("not-a-real-password")


SIGN_IN_FAILED = "sign-in failed: wrong user name, password or code"
SESSION_LOCKED = "the session is locked: unlock it with your PIN (POST /api/auth/unlock)"
SHARED = "shared"
PIN_ATTEMPTS = 5


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    token: str
    session: AuthSession
    person: Person


def check_password_policy(password: str, settings: Settings) -> None:
    if len(password) < settings.password_min_length:
        raise Invalid(f"password must be at least {settings.password_min_length} characters", field="password")


def set_password(*, session: Session, person_id: int, password: str, clock: Clock) -> None:
    set_password_hash(session=session, person_id=person_id, password_hash=hash_password(password), clock=clock)


def set_password_hash(*, session: Session, person_id: int, password_hash: str, clock: Clock) -> None:
    """For loaders that give many accounts one known password (the demo): hash once, not per person."""
    cred = session.get(Credential, person_id)
    if cred is None:
        cred = Credential(person_id=person_id)
        session.add(cred)
    cred.password_hash = password_hash
    cred.password_changed_at = clock.now()


def _throttle(session: Session, username: str) -> LoginThrottle:
    row = session.get(LoginThrottle, username)
    if row is None:
        row = LoginThrottle(username=username, failures=0)
        session.add(row)
    return row


def _check_throttle(row: LoginThrottle, now: datetime) -> None:
    for until, why in ((row.locked_until, "locked after repeated failed sign-ins"),
                       (row.next_allowed_at, "too many failed sign-ins")):
        if until is not None and until > now:
            wait = int((until - now).total_seconds()) + 1
            raise TooManyAttempts(f"{why}; try again in {wait} seconds", retry_after_seconds=wait)


def _note_failure(row: LoginThrottle, now: datetime, settings: Settings) -> None:
    row.failures += 1
    row.last_failure_at = now
    if row.failures >= settings.login_lockout_after:
        row.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
        row.next_allowed_at = None
    elif row.failures >= settings.login_backoff_after:
        row.next_allowed_at = now + timedelta(seconds=2 ** (row.failures - settings.login_backoff_after))


def _verify_totp(cred: Credential, code: str | None, now: datetime) -> bool:
    if not cred.totp_enabled:
        return True
    if not code or not cred.totp_secret:
        return False
    totp = pyotp.TOTP(cred.totp_secret)
    step = int(now.timestamp()) // totp.interval
    for candidate in (step - 1, step, step + 1):
        if secrets.compare_digest(totp.generate_otp(candidate), code.strip()):
            # A code is good once: replaying one seen over a shoulder fails.
            if cred.totp_last_step is not None and candidate <= cred.totp_last_step:
                return False
            cred.totp_last_step = candidate
            return True
    return False


def sign_in(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    username: str,
    password: str,
    totp_code: str | None = None,
    kind: str = "web",
    ip: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Check credentials and open a session. Failures are audited and counted, and raise."""
    now = clock.now()
    key = username.strip().lower()
    row = _throttle(session, key)
    _check_throttle(row, now)
    person = session.execute(select(Person).where(Person.username == key)).scalar_one_or_none()
    cred = session.get(Credential, person.id) if person is not None else None
    stored = cred.password_hash if cred is not None and cred.password_hash else _dummy_hash()
    try:
        good = _hasher.verify(stored, password) and cred is not None
    except (VerificationError, InvalidHashError):
        good = False
    reason = "password"
    if good and person is not None and not person.active:
        good, reason = False, "inactive"
    if good and cred is not None and not _verify_totp(cred, totp_code, now):
        good, reason = False, "totp"
    who = Actor(person_id=person.id if person else None, username=key, ip=ip)
    if not good or person is None or cred is None:
        _note_failure(row, now, settings)
        audit.record(session=session, clock=clock, actor=who, action="auth.sign_in", object_type="person",
                     object_id=person.id if person else None, outcome="failure", detail={"reason": reason})
        raise Unauthenticated(SIGN_IN_FAILED, keep_changes=True)
    row.failures = 0
    row.next_allowed_at = None
    row.locked_until = None
    if _hasher.check_needs_rehash(stored):
        cred.password_hash = hash_password(password)
    return start_session(session=session, clock=clock, settings=settings, person=person, kind=kind, ip=ip,
                         user_agent=user_agent, method="password")


def start_session(
    *, session: Session, clock: Clock, settings: Settings, person: Person, method: str, kind: str = "web",
    ip: str | None = None, user_agent: str | None = None, detail: dict[str, object] | None = None,
) -> SignedIn:
    """Open a session for a person another party authenticated (SSO); audited as a sign-in."""
    if not person.active:
        audit.record(session=session, clock=clock, actor=Actor(person_id=person.id, username=person.username, ip=ip),
                     action="auth.sign_in", object_type="person", object_id=person.id, outcome="failure",
                     detail={"reason": "inactive", "method": method})
        raise Unauthenticated("this account is not active in carerelay", keep_changes=True)
    now = clock.now()
    token = secrets.token_urlsafe(32)
    auth_session = AuthSession(
        person_id=person.id, token_hash=_token_hash(token), kind=kind, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_max_hours), ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(auth_session)
    session.flush()
    audit.record(session=session, clock=clock, actor=Actor(person_id=person.id, username=person.username, ip=ip),
                 action="auth.sign_in", object_type="person", object_id=person.id,
                 detail={"session_id": auth_session.id, "kind": kind, "method": method, **(detail or {})})
    return SignedIn(token=token, session=auth_session, person=person)


# The session and its person in one query, built once: this runs before every request.
_SESSION_AND_PERSON = (select(AuthSession, Person).join(Person, Person.id == AuthSession.person_id)
                       .where(AuthSession.token_hash == bindparam("token_hash")))


def authenticate(
    *, session: Session, clock: Clock, settings: Settings, token: str, activity: bool = True
) -> tuple[AuthSession, Person]:
    """Resolve a presented token to a live session, sliding its idle timeout forward.

    ``activity=False`` is a connection merely staying open (a WebSocket's check): it keeps a
    personal session alive, but not a shared device's, whose idle timeout exists precisely for the phone
    left on the charger with the app open.
    """
    now = clock.now()
    row = session.execute(_SESSION_AND_PERSON, {"token_hash": _token_hash(token)}).first()
    if row is None or row[0].revoked_at is not None or row[0].expires_at <= now:
        raise Unauthenticated("not signed in, or the session has ended")
    found, person = row
    idle_for = now - found.last_seen_at
    # Every limit is at least a minute, so a session seen within the last minute needs no policy read.
    if idle_for >= timedelta(minutes=1):
        _check_idle(session, clock, settings, found, idle_for)
    if found.locked_at is not None:
        raise Unauthenticated(SESSION_LOCKED, keep_changes=True)
    if not person.active:
        raise Unauthenticated("this account is not active")
    # Write the slide at most once a minute so reads do not all become writes.
    if idle_for > SLIDE_EVERY and (activity or found.kind != SHARED):
        found.last_seen_at = now
    return found, person


SLIDE_EVERY = timedelta(minutes=1)
BATCH = 500


def keep_sockets_alive(*, session: Session, clock: Clock, settings: Settings, session_ids: Iterable[int]) -> set[int]:
    """For a node's open WebSockets, all at once: what ``authenticate(activity=False)`` would do for each.

    Where it would only slide a personal session's idle timeout (an open socket is presence), slide
    them here in one statement per batch. Return the sessions whose socket must check for itself,
    because authenticate would do more: the session ended, expired or locked, or it has been idle
    long enough to end or lock (a shared device's idle timeout; a personal session's PIN lock, only
    reached if these slides ran late). Nothing else needs a socket's own check.
    """
    now = clock.now()
    limits = session_limits(session=session, settings=settings)
    shared_limit = idle_limit(limits, settings, SHARED)
    personal_limit = min(timedelta(minutes=settings.session_idle_minutes), timedelta(minutes=limits.pin_lock_minutes))
    ids = sorted(set(session_ids))
    check: set[int] = set()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        rows = session.execute(select(AuthSession.id, AuthSession.kind, AuthSession.last_seen_at,
                                      AuthSession.revoked_at, AuthSession.expires_at, AuthSession.locked_at)
                               .where(AuthSession.id.in_(chunk))).all()
        check.update(set(chunk) - {row.id for row in rows})
        slide = []
        for row in rows:
            idle_for = now - row.last_seen_at
            if row.revoked_at is not None or row.expires_at <= now or row.locked_at is not None:
                check.add(row.id)
            elif row.kind == SHARED:
                if idle_for >= shared_limit:
                    check.add(row.id)
            elif idle_for >= personal_limit:
                check.add(row.id)
            elif idle_for > SLIDE_EVERY:
                slide.append(row.id)
        if slide:
            session.execute(update(AuthSession).where(AuthSession.id.in_(slide), AuthSession.revoked_at.is_(None))
                            .values(last_seen_at=now))
    return check


# What the request path needs of a session and its person, as plain columns (no entities loaded).
# One row per role (one row with no role for a person without any): the roles come in the same query.
_SESSION_COLUMNS = Prepared(
    select(AuthSession.id, AuthSession.revoked_at, AuthSession.expires_at, AuthSession.last_seen_at,
           AuthSession.locked_at, Person.id, Person.username, Person.active, Person.display_name, PersonRole.role)
    .join(Person, Person.id == AuthSession.person_id)
    .outerjoin(PersonRole, PersonRole.person_id == Person.id)
    .where(AuthSession.token_hash == bindparam("token_hash")))


def signed_in_actor(*, session: Session, clock: Clock, settings: Settings, token: str, ip: str | None) -> Actor:
    """``authenticate`` for a request, as the actor the services take.

    A session seen within the last minute, unlocked, of an active person (nearly every request) has
    nothing to check further or write: its columns are read without loading entities. Anything else
    (ended sessions included) goes through ``authenticate``, which has the rules for ending, idling,
    locking and sliding, and says why.
    """
    row = _settled(session, clock, token)
    if row is None:
        found, person = authenticate(session=session, clock=clock, settings=settings, token=token)
        return Actor(person_id=person.id, username=person.username, roles=person.role_names, session_id=found.id,
                     ip=ip, display_name=person.display_name)
    return Actor(person_id=row.person_id, username=row.username, roles=row.roles, session_id=row.session_id, ip=ip,
                 display_name=row.display_name)


def session_is_settled(*, session: Session, clock: Clock, token: str) -> bool:
    """Whether ``authenticate`` would let this token through with nothing to check further or write:
    live, seen within the last minute, unlocked, its person active. The WebSocket asks every few
    seconds; only when this is False does it run ``authenticate`` itself."""
    return _settled(session, clock, token) is not None


@dataclass(frozen=True)
class _Settled:
    session_id: int
    person_id: int
    username: str
    display_name: str
    roles: frozenset[str]


def _settled(session: Session, clock: Clock, token: str) -> _Settled | None:
    # Straight through the driver (every request and every socket's liveness check asks), after
    # flushing any edits the read must see (a request's first statement finds nothing to flush).
    rows = _SESSION_COLUMNS.rows(flushed_connection(session), {"token_hash": _token_hash(token)})
    now = clock.now()
    if not rows:
        return None
    session_id, revoked_at, expires_at, last_seen_at, locked_at, person_id, username, active, display_name, _ = rows[0]
    if revoked_at is not None or expires_at <= now or now - last_seen_at >= timedelta(minutes=1) \
            or locked_at is not None or not active:
        return None
    return _Settled(session_id, person_id, username, display_name, frozenset(r[-1] for r in rows if r[-1]))


def idle_limit(limits: SessionLimits, settings: Settings, kind: str) -> timedelta:
    """How long a session of this kind may go unused before it ends."""
    minutes = limits.shared_device_idle_minutes if kind == SHARED else settings.session_idle_minutes
    return timedelta(minutes=minutes)


def _check_idle(session: Session, clock: Clock, settings: Settings, found: AuthSession, idle_for: timedelta) -> None:
    limits = session_limits(session=session, settings=settings)
    if idle_for >= idle_limit(limits, settings, found.kind):
        now = clock.now()
        found.revoked_at = now
        found.revoke_reason = "idle timeout"
        announce_session_end(session=session, clock=clock, person_id=found.person_id, session_ids=[found.id],
                             reason="idle timeout")
        _end_bindings(session, now, [found.id], "idle timeout")
        raise Unauthenticated("the session ended after being idle; sign in again", keep_changes=True)
    if found.locked_at is None and found.kind != SHARED and idle_for >= timedelta(minutes=limits.pin_lock_minutes):
        cred = session.get(Credential, found.person_id)
        if cred is not None and cred.pin_hash:
            found.locked_at = clock.now()


def sign_out(*, session: Session, clock: Clock, actor: Actor) -> None:
    if actor.session_id is None:
        return
    row = session.get(AuthSession, actor.session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = clock.now()
        row.revoke_reason = "signed out"
        announce_session_end(session=session, clock=clock, person_id=row.person_id, session_ids=[row.id],
                             reason="signed out")
        _end_bindings(session, clock.now(), [row.id], "signed out")
    audit.record(session=session, clock=clock, actor=actor, action="auth.sign_out", object_type="session",
                 object_id=actor.session_id)


def list_sessions(*, session: Session, clock: Clock, person_id: int) -> list[AuthSession]:
    now = clock.now()
    rows = session.execute(
        select(AuthSession)
        .where(AuthSession.person_id == person_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > now)
        .order_by(AuthSession.created_at.desc())
    ).scalars()
    return list(rows)


def revoke_session(*, session: Session, clock: Clock, actor: Actor, session_id: int) -> None:
    row = session.get(AuthSession, session_id)
    may = actor.has_any("system_admin") or (row is not None and row.person_id == actor.person_id)
    if row is None or not may:
        raise NotFound(f"no session {session_id}")
    if row.revoked_at is None:
        reason = f"revoked by {actor.username}"
        row.revoked_at, row.revoke_reason = clock.now(), reason
        announce_session_end(session=session, clock=clock, person_id=row.person_id, session_ids=[row.id],
                             reason=reason)
        _end_bindings(session, clock.now(), [row.id], reason)
    audit.record(session=session, clock=clock, actor=actor, action="auth.revoke_session", object_type="session",
                 object_id=session_id)


def announce_session_end(
    *, session: Session, clock: Clock, person_id: int, session_ids: list[int], reason: str
) -> None:
    """Live connections of an ended session close at once: alerts must reach live sessions only.

    Every path that ends a session calls this in the same transaction, so in a person's event stream
    the ``session.ended`` event comes before anything emitted after the end, and its commit wakes the
    sockets to read it.
    """
    if session_ids:
        realtime.emit(session=session, clock=clock, person_ids=[person_id], kind="session.ended",
                      payload={"session_ids": session_ids, "reason": reason})


def revoke_all_sessions(*, session: Session, clock: Clock, person_id: int, reason: str) -> int:
    ids = list(session.execute(
        select(AuthSession.id).where(AuthSession.person_id == person_id, AuthSession.revoked_at.is_(None))
    ).scalars())
    if ids:
        session.execute(update(AuthSession).where(AuthSession.id.in_(ids))
                        .values(revoked_at=clock.now(), revoke_reason=reason))
    session.execute(
        update(DeviceBinding).where(DeviceBinding.person_id == person_id, DeviceBinding.ended_at.is_(None))
        .values(ended_at=clock.now(), end_reason=reason[:120])
    )
    announce_session_end(session=session, clock=clock, person_id=person_id, session_ids=ids, reason=reason)
    return len(ids)


def _end_bindings(session: Session, now: datetime, session_ids: list[int], reason: str) -> None:
    session.execute(
        update(DeviceBinding).where(DeviceBinding.auth_session_id.in_(session_ids), DeviceBinding.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason[:120])
    )


def change_password(
    *, session: Session, clock: Clock, settings: Settings, actor: Actor, current: str, new: str
) -> int:
    """The person changes their own password; every session, this one included, ends."""
    if actor.person_id is None:
        raise Forbidden("only a person can change a password")
    throttle = _throttle(session, actor.username)
    _check_throttle(throttle, clock.now())
    cred = session.get(Credential, actor.person_id)
    try:
        ok = cred is not None and cred.password_hash is not None and _hasher.verify(cred.password_hash, current)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        _note_failure(throttle, clock.now(), settings)
        audit.record(session=session, clock=clock, actor=actor, action="auth.change_password", object_type="person",
                     object_id=actor.person_id, outcome="failure")
        raise Invalid("the current password is wrong", field="current_password", keep_changes=True)
    check_password_policy(new, settings)
    set_password(session=session, person_id=actor.person_id, password=new, clock=clock)
    ended = revoke_all_sessions(session=session, clock=clock, person_id=actor.person_id, reason="password changed")
    audit.record(session=session, clock=clock, actor=actor, action="auth.change_password", object_type="person",
                 object_id=actor.person_id, detail={"sessions_ended": ended})
    return ended


def reset_password(
    *, session: Session, clock: Clock, settings: Settings, actor: Actor, person_id: int, new: str
) -> int:
    """An administrator sets a new password; the person's sessions all end and throttling clears."""
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    check_password_policy(new, settings)
    set_password(session=session, person_id=person_id, password=new, clock=clock)
    ended = revoke_all_sessions(session=session, clock=clock, person_id=person_id, reason="password reset")
    throttle = session.get(LoginThrottle, person.username)
    if throttle is not None:
        throttle.failures = 0
        throttle.locked_until = None
        throttle.next_allowed_at = None
    audit.record(session=session, clock=clock, actor=actor, action="auth.reset_password", object_type="person",
                 object_id=person_id, detail={"sessions_ended": ended})
    return ended


def begin_totp_enrollment(*, session: Session, clock: Clock, actor: Actor, issuer: str) -> str:
    """Return a provisioning URI; the factor is only enforced once a code is confirmed."""
    if actor.person_id is None:
        raise Forbidden("only a person can enrol a second factor")
    cred = session.get(Credential, actor.person_id)
    if cred is None:
        raise Invalid("set a password first")
    cred.totp_secret = pyotp.random_base32()
    cred.totp_enabled = False
    cred.totp_last_step = None
    audit.record(session=session, clock=clock, actor=actor, action="auth.totp_begin", object_type="person",
                 object_id=actor.person_id)
    return str(pyotp.TOTP(cred.totp_secret).provisioning_uri(name=actor.username, issuer_name=issuer))


def confirm_totp(*, session: Session, clock: Clock, actor: Actor, code: str) -> None:
    cred = session.get(Credential, actor.person_id) if actor.person_id is not None else None
    if cred is None or not cred.totp_secret:
        raise Invalid("start enrolment first")
    cred.totp_enabled = True
    if not _verify_totp(cred, code, clock.now()):
        cred.totp_enabled = False
        raise Invalid("the code does not match; check the device's clock", field="code")
    audit.record(session=session, clock=clock, actor=actor, action="auth.totp_confirm", object_type="person",
                 object_id=actor.person_id)
