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
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from carerelay.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import dialect_insert
from carerelay.core.prepared import Prepared, PreparedRows, bind_rows
from carerelay.core.write_group import BEFORE_GROUP_COMMIT, write_group_of


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


_ENTRIES = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)


def _lock_head(conn: Connection) -> tuple[int, str]:
    """The chain's tip, locked for the rest of the transaction (PostgreSQL; SQLite holds its write lock)."""
    rows = _HEAD_FOR_UPDATE.rows(conn)
    if not rows:
        create = dialect_insert(conn, _HEAD)
        conn.execute(create.values(id=1, last_seq=0, last_hash=GENESIS_HASH).on_conflict_do_nothing())
        rows = _HEAD_FOR_UPDATE.rows(conn)
    last_seq, last_hash = rows[0]
    return int(last_seq), str(last_hash)


PENDING_KEY = "audit_pending"


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
) -> None:
    """Append one entry in the caller's transaction, so it commits or rolls back with the change.

    The entry is chained when the transaction commits (``append_pending``, a before-commit hook):
    the chain's head is then locked for the last statements before COMMIT only, not for the rest of
    the request — on PostgreSQL every transaction that audits takes turns on that one row.
    """
    fields: dict[str, Any] = {
        "at": clock.now(),
        "actor_id": actor.person_id,
        "actor_name": actor.username,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "outcome": outcome,
        "ip": actor.ip,
        "detail": json.loads(json.dumps(detail or {}, default=str)),
    }
    session.info.setdefault(PENDING_KEY, []).append((fields, session.get_nested_transaction()))


def pending_entries(session: Session) -> int:
    """Entries recorded in this transaction that its commit will append."""
    return len(session.info.get(PENDING_KEY, ()))


@event.listens_for(Session, "before_commit")
def append_pending(session: Session) -> None:
    """Chain this transaction's entries, in the order recorded: lock the tip, insert, move the tip.

    Runs before every commit; called directly by code that must read its own entries back in the
    same transaction (the database copy verifies the chain it is about to commit).
    """
    if session.in_nested_transaction():
        return  # a savepoint's release: the entries wait for the real commit, so the head is locked last
    if write_group_of(session) is not None:
        return  # a member of a SQLite write group: the group's COMMIT chains them (``_defer_to_group``)
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    _append(session.connection(), [fields for fields, _ in pending])


@event.listens_for(Session, "after_commit")
def _defer_to_group(session: Session) -> None:
    """A write group member's entries, once its work is kept, wait for the group's COMMIT: one head
    lock, insert and head update for the whole group, in turn order (= commit order)."""
    group = write_group_of(session)
    if group is None or session.in_nested_transaction():
        return  # a savepoint's release inside the member: its work may still roll back
    pending = session.info.pop(PENDING_KEY, None)
    if pending:
        group.defer(PENDING_KEY, [fields for fields, _ in pending])


def _append_for_group(conn: Connection, deferred: dict[str, list[Any]]) -> None:
    entries = deferred.get(PENDING_KEY)
    if entries:
        _append(conn, entries)


BEFORE_GROUP_COMMIT.append(_append_for_group)

# Prepared once (core/prepared.py): every audited commit runs them.
_HEAD_FOR_UPDATE = Prepared(select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == 1).with_for_update())
_ENTRY_COLUMNS = ("seq", "at", "actor_id", "actor_name", "action", "object_type", "object_id", "outcome", "ip",
                  "detail", "prev_hash", "hash")
_CHUNK = 50  # entries a statement inserts at most
_INSERT_ENTRIES = PreparedRows(lambda n: insert(_ENTRIES).values(bind_rows(_ENTRIES, _ENTRY_COLUMNS, n)),
                               _ENTRY_COLUMNS, most=_CHUNK)
_MOVE = update(_HEAD).where(_HEAD.c.id == 1).values(
    last_seq=bindparam("seq", type_=_HEAD.c.last_seq.type), last_hash=bindparam("tip", type_=_HEAD.c.last_hash.type))
_MOVE_HEAD = Prepared(_MOVE)
# PostgreSQL: the last entries and the tip's move in one statement, a round trip fewer on every audited
# commit while the tip is locked (every auditing transaction takes its turn on that row).
_INSERT_AND_MOVE = PreparedRows(
    lambda n: _MOVE.add_cte(insert(_ENTRIES).values(bind_rows(_ENTRIES, _ENTRY_COLUMNS, n)).cte("entries")),
    _ENTRY_COLUMNS, most=_CHUNK)


def _append(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Lock the tip, insert the entries chained in order, move the tip."""
    last_seq, last_hash = _lock_head(conn)
    rows = []
    for fields in entries:
        last_seq += 1
        row = {**fields, "seq": last_seq, "prev_hash": last_hash}
        last_hash = _entry_hash(**row)
        rows.append({**row, "hash": last_hash})
    tip = {"seq": last_seq, "tip": last_hash}
    if conn.dialect.name == "postgresql":
        last = (len(rows) - 1) // _CHUNK * _CHUNK
        _INSERT_ENTRIES.rows(conn, rows[:last])
        _INSERT_AND_MOVE.rows(conn, rows[last:], tip)
    else:
        _INSERT_ENTRIES.rows(conn, rows)
        _MOVE_HEAD.run(conn, tip)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    """Entries recorded inside a savepoint that rolled back describe changes that never happened."""
    pending = session.info.get(PENDING_KEY)
    if not pending:
        return
    if not rolled_back.nested:
        pending.clear()
        return

    def inside(savepoint: SessionTransaction | None) -> bool:
        while savepoint is not None:
            if savepoint is rolled_back:
                return True
            savepoint = savepoint.parent
        return False

    pending[:] = [p for p in pending if not inside(p[1])]


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
