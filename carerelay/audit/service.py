"""Writing, searching and verifying the audit log.

Each entry's hash covers its own content and the previous entry's hash, and entries carry a
gap-free sequence number, so ``verify_chain`` can tell an altered entry (its hash no longer
matches its content), a removed one (a gap in the sequence) and an inserted one (a link that
does not match its predecessor). Appends are serialized: on SQLite by ``BEGIN IMMEDIATE``, on
PostgreSQL by locking the single chain-head row for the rest of the transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carerelay.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock


def _entry_hash(
    *,
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor_name: str,
    action: str,
    object_type: str,
    object_id: str | None,
    outcome: str,
    ip: str | None,
    detail: dict[str, Any],
    prev_hash: str,
) -> str:
    payload = json.dumps(
        [
            seq,
            at.isoformat(timespec="microseconds"),
            actor_id,
            actor_name,
            action,
            object_type,
            object_id,
            outcome,
            ip,
            detail,
            prev_hash,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _lock_head(session: Session) -> AuditChainHead:
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditChainHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    return head


def record(
    *,
    session: Session,
    clock: Clock,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction, so it commits or rolls back with the change."""
    head = _lock_head(session)
    at = clock.now()
    fields: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "at": at,
        "actor_id": actor.person_id,
        "actor_name": actor.username,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "outcome": outcome,
        "ip": actor.ip,
        "detail": json.loads(json.dumps(detail or {}, default=str)),
        "prev_hash": head.last_hash,
    }
    digest = _entry_hash(**fields)
    entry = AuditEntry(**fields, hash=digest)
    session.add(entry)
    head.last_seq = fields["seq"]
    head.last_hash = digest
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    problem: str | None = None
    seq: int | None = None


def _iter_entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = (
            session.execute(select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch))
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify_chain(*, session: Session) -> ChainReport:
    """Walk the chain in order and report the first entry that was altered, inserted or removed."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in _iter_entries(session):
        if entry.seq != expected_seq:
            problem = f"entries {expected_seq}..{entry.seq - 1} were removed (sequence gap before {entry.seq})"
            if entry.seq < expected_seq:
                problem = f"entry {entry.seq} was inserted (sequence repeats)"
            return ChainReport(False, count, problem, entry.seq)
        recomputed = _entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor_id=entry.actor_id,
            actor_name=entry.actor_name,
            action=entry.action,
            object_type=entry.object_type,
            object_id=entry.object_id,
            outcome=entry.outcome,
            ip=entry.ip,
            detail=entry.detail,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            return ChainReport(False, count, f"entry {entry.seq} was altered (its content no longer matches its "
                               "hash), or renumbered to make room for an inserted entry", entry.seq)
        if entry.prev_hash != expected_prev:
            return ChainReport(False, count, f"entry {entry.seq} was inserted or re-linked (it does not follow "
                               f"entry {entry.seq - 1})", entry.seq)
        expected_prev = entry.hash
        expected_seq += 1
        count += 1
    head = session.get(AuditChainHead, 1)
    if head is not None and head.last_seq != count:
        return ChainReport(False, count, f"entries {count + 1}..{head.last_seq} were removed from the end",
                           count + 1)
    return ChainReport(True, count)


def search_entries(
    *,
    session: Session,
    actor_id: int | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.seq > after_seq)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    return list(session.execute(query.order_by(AuditEntry.seq).limit(limit)).scalars())


def count_entries(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())
