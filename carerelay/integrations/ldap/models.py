"""Which directory entry each synced person came from, and where the last run stopped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carerelay.core.db import Base, UTCDateTime


class LdapLink(Base):
    """A person kept in step with one LDAP entry, known by its stable id (entryUUID / objectGUID)."""

    __tablename__ = "ldap_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(300))
    entry_key: Mapped[str] = mapped_column(String(120))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), unique=True)
    dn: Mapped[str] = mapped_column(String(1000))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the sync deactivated the person because the entry left; a returning entry reactivates
    # only such people, never someone an administrator deactivated.
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("source", "entry_key", name="uq_ldap_links_source_entry_key"),)


class LdapSyncState(Base):
    """The incremental watermark of one source (highest modifyTimestamp or uSNChanged seen)."""

    __tablename__ = "ldap_sync_state"

    source: Mapped[str] = mapped_column(String(300), primary_key=True)
    watermark: Mapped[str | None] = mapped_column(String(40))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_full_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
