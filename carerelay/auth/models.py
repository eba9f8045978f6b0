"""Credentials, server-side sessions and sign-in throttling."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class Credential(Base):
    __tablename__ = "credentials"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # A short PIN that unlocks a locked session on the person's own device (argon2, like passwords).
    pin_hash: Mapped[str | None] = mapped_column(String(200))


class AuthSession(Base):
    """An opaque session: the client holds a random token, we keep only its SHA-256."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    # A personal-device session locks when idle for a while; the PIN unlocks it, the password is not needed.
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginThrottle(Base):
    """Failed sign-ins per user name (also for names that do not exist, so nothing leaks)."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_allowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeviceBinding(Base):
    """Who is signed in on a shared device, through which session.

    The binding is what the realtime layer follows: alerts go to the person's live sessions (this one
    among them while it lasts), never to the device itself. It ends when the person signs out, the
    next person signs in on the device, the session idles out or is revoked.
    """

    __tablename__ = "device_bindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    auth_session_id: Mapped[int] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(120))


class AuthPolicy(Base):
    """The organization's session policy (one row). An empty value means the CARERELAY_* setting applies,
    so an installation that never touches it behaves exactly as its configuration says."""

    __tablename__ = "auth_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shared_device_idle_minutes: Mapped[int | None] = mapped_column(Integer)
    pin_lock_minutes: Mapped[int | None] = mapped_column(Integer)
