"""Pending sign-ins (one-time state), which IdP subject is which person, assertions already used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class SsoLoginState(Base):
    """One sign-in started here and not finished yet; consumed once, so a replayed callback fails."""

    __tablename__ = "sso_login_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(60))
    nonce: Mapped[str | None] = mapped_column(String(120))
    code_verifier: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SsoIdentity(Base):
    """The identity provider's subject for a person, learned at sign-in (for back-channel logout)."""

    __tablename__ = "sso_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    last_sign_in_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("provider", "subject", name="uq_sso_identities_provider_subject"),)


class SsoSeenAssertion(Base):
    """SAML assertion ids already accepted, kept until they expire: the same assertion twice is a replay."""

    __tablename__ = "sso_seen_assertions"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(60))
    assertion_id: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("provider", "assertion_id", name="uq_sso_seen_assertions_provider_id"),)
