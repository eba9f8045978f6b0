"""The message store: receive (store raw, dedupe, decide the ACK), process in arrival order,
search, reprocess, purge, and watch feeds for silence.

Services in the house style: keyword-only, given a session, never committing. The listener (and the
CLI, and the HTTP API) are the units of work around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from carerelay.audit.service import record
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import dialect_insert
from carerelay.core.errors import Invalid, NotFound
from carerelay.integrations.hl7.ack import ErrorLocation
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.models import Hl7FeedState, Hl7Message, MessageStatus
from carerelay.integrations.hl7.parser import Header, HL7Error, header_of, parse
from carerelay.integrations.hl7.presenting import PresentingRules
from carerelay.integrations.hl7.processor import Outcome, check_message, mrn_of, process_message
from carerelay.patients.service import ResultPolicy, provider_matches_remembered

log = logging.getLogger("carerelay.hl7")


def feed_actor(feed: str) -> Actor:
    return Actor(person_id=None, username=f"hl7:{feed}", roles=frozenset({"system"}), ip=None)


@dataclass(frozen=True)
class Inbound:
    feed: Feed
    raw: bytes
    peer: str | None


@dataclass
class Receipt:
    """What to answer: the ACK code and where the error is; ``message_id`` once stored."""

    message_id: int | None
    header: Header | None
    code: str  # AA, AE, AR
    text: str = ""
    error: ErrorLocation | None = None
    duplicate: bool = False
    charset: str = "utf-8"

    @property
    def to_process(self) -> bool:
        return self.message_id is not None and not self.duplicate and self.code == "AA"


def _inspect(item: Inbound) -> tuple[Receipt, dict[str, object]]:
    """Parse and check one message; the row's values and the ACK decision (nothing stored yet)."""
    values: dict[str, object] = {"feed": item.feed.name, "peer": item.peer, "raw": item.raw, "size": len(item.raw),
                                 "sending_app": "", "sending_facility": "", "control_id": None}
    try:
        parsed = parse(item.raw, item.feed.charset)
    except HL7Error as exc:
        values.update(status=MessageStatus.ERROR, error=exc.text, ack_code="AR")
        return Receipt(None, None, "AR", exc.text, ErrorLocation(exc.segment, exc.seq, exc.field, exc.code)), values
    header = header_of(parsed)
    values.update(sending_app=header.sending_app[:180], sending_facility=header.sending_facility[:180],
                  control_id=header.control_id[:199] or None, message_type=header.message_type[:30] or None,
                  version=header.version[:20], charset=parsed.codec, mrn=mrn_of(parsed)[:80] or None)
    problem = check_message(parsed, item.feed)
    if problem is not None:
        code = "AR" if problem.reject else "AE"
        values.update(status=MessageStatus.ERROR, error=problem.text, ack_code=code)
        return Receipt(None, header, code, problem.text,
                       ErrorLocation(problem.segment, problem.seq, problem.field, problem.code),
                       charset=parsed.codec), values
    note = "bytes were not valid in the declared charset; decoded as Latin-1" if parsed.fallback else None
    values.update(status=MessageStatus.RECEIVED, error=note, ack_code="AA")
    return Receipt(None, header, "AA", charset=parsed.codec), values


def receive_messages(*, session: Session, clock: Clock, items: Sequence[Inbound]) -> list[Receipt]:
    """Store every message (raw bytes included) and decide its ACK; duplicates (same MSH-3, MSH-4,
    MSH-10 as an accepted message) are not stored again, only counted, and ACKed AA again.

    The caller commits before sending any ACK: that is the durability promise. This is the hot path
    of the listener, so it inserts with one multi-row INSERT … RETURNING instead of ORM objects.
    """
    now = clock.now()
    conn = session.connection()  # Core on the session's connection: no ORM bookkeeping on the hot path
    inspected = [_inspect(item) for item in items]
    keys = {(v["sending_app"], v["sending_facility"], v["control_id"]) for _, v in inspected if v["control_id"]}
    existing: dict[tuple[object, object, object], tuple[int, str | None]] = {}
    if keys:
        for row_id, app, facility, control, ack in conn.execute(_EXISTING, {"keys": list(keys)}).all():
            existing[(app, facility, control)] = (row_id, ack)
    new_rows: list[dict[str, object]] = []
    new_receipts: list[Receipt] = []
    in_batch: dict[tuple[object, object, object], int] = {}  # key -> index in new_rows
    dup_of_new: list[tuple[Receipt, int]] = []
    dup_counts: dict[int, int] = {}
    for receipt, values in inspected:
        key = (values["sending_app"], values["sending_facility"], values["control_id"])
        prior = existing.get(key) if values["control_id"] else None
        batch_index = in_batch.get(key) if values["control_id"] else None
        accepted_before = (prior is not None and prior[1] == "AA") or (
            batch_index is not None and new_rows[batch_index]["ack_code"] == "AA")
        if accepted_before:
            receipt.duplicate, receipt.code = True, "AA"
            receipt.text, receipt.error = "duplicate of an accepted message: not processed again", None
            if batch_index is not None:
                dup_of_new.append((receipt, batch_index))
            else:
                assert prior is not None
                receipt.message_id = prior[0]
                dup_counts[prior[0]] = dup_counts.get(prior[0], 0) + 1
            continue
        if prior is not None:  # a resend of a message we refused: it replaces the refused copy
            session.execute(update(Hl7Message).where(Hl7Message.id == prior[0]).values(
                **values, received_at=now, attempts=0, processed_at=None))
            existing[key] = (prior[0], str(values["ack_code"]))
            receipt.message_id = prior[0]
            continue
        row = {"received_at": now, "attempts": 0, "duplicates": 0, "message_type": None, "version": None,
               "charset": None, "mrn": None, **values}
        if batch_index is not None:  # a resend, in this batch, of a message refused earlier in it: replaces it
            new_rows[batch_index] = row
            dup_of_new.append((receipt, batch_index))
            continue
        if values["control_id"]:
            in_batch[key] = len(new_rows)
        new_rows.append(row)
        new_receipts.append(receipt)
    if new_rows:
        ids = _insert(conn, new_rows)
        for receipt, row_id in zip(new_receipts, ids, strict=True):
            receipt.message_id = row_id
        for receipt, index in dup_of_new:
            receipt.message_id = ids[index]
            if receipt.duplicate:
                dup_counts[ids[index]] = dup_counts.get(ids[index], 0) + 1
    for row_id, n in dup_counts.items():
        session.execute(update(Hl7Message).where(Hl7Message.id == row_id)
                        .values(duplicates=Hl7Message.duplicates + n))
    for receipt, values in inspected:
        if receipt.code != "AA":
            log.warning("hl7 message refused", extra={"feed": values["feed"], "message_id": receipt.message_id,
                                                      "ack": receipt.code, "error": receipt.text,
                                                      "control_id": values["control_id"]})
    where = str(session.get_bind().engine.url)
    for feed in {item.feed.name for item in items}:
        # "last heard from" only needs minute precision: one write per feed per few seconds, not per batch
        if not timedelta(0) <= now - _last_touch.get((where, feed), _EPOCH) < TOUCH_EVERY:
            _touch_feed(session, feed, now)
            _last_touch[(where, feed)] = now
    return [r for r, _ in inspected]


# Built once: the hot path reuses SQLAlchemy's compiled cache instead of constructing statements per batch.
_EXISTING = select(Hl7Message.id, Hl7Message.sending_app, Hl7Message.sending_facility, Hl7Message.control_id,
                   Hl7Message.ack_code).where(
    tuple_(Hl7Message.sending_app, Hl7Message.sending_facility, Hl7Message.control_id)
    .in_(bindparam("keys", expanding=True)))
_TABLE = cast(Table, Hl7Message.__table__)
_INSERT = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
_INSERT_KEYED = insert(_TABLE).returning(_TABLE.c.id, _TABLE.c.sending_app, _TABLE.c.sending_facility,
                                         _TABLE.c.control_id)


def _insert(conn: Connection, rows: list[dict[str, object]]) -> list[int]:
    """The new rows' ids, in order. Rows that all have a duplicate key (the usual case) go in one
    multi-row INSERT whose RETURNING is matched back by key; SQLAlchemy would otherwise insert row by
    row to return ids in order."""
    if not all(r["control_id"] for r in rows):
        return list(conn.execute(_INSERT, rows).scalars())
    ids = {(app, facility, control): row_id for row_id, app, facility, control in conn.execute(_INSERT_KEYED, rows)}
    return [ids[(r["sending_app"], r["sending_facility"], r["control_id"])] for r in rows]
TOUCH_EVERY = timedelta(seconds=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_last_touch: dict[tuple[str, str], datetime] = {}  # (database, feed)


def _touch_feed(session: Session, feed: str, now: datetime) -> None:
    updated = session.execute(update(Hl7FeedState).where(Hl7FeedState.feed == feed)
                              .values(last_message_at=now, silent_since=None, silence_reported_at=None))
    if getattr(updated, "rowcount", 1) == 0:  # the feed's first message; another node may be writing it too
        values = {"last_message_at": now, "silent_since": None, "silence_reported_at": None}
        session.execute(dialect_insert(session, Hl7FeedState).values(feed=feed, **values)
                        .on_conflict_do_update(index_elements=["feed"], set_=values))


# ---------------------------------------------------------------- processing


@dataclass(frozen=True)
class Processed:
    message_id: int
    status: str
    note: str


def process_pending(*, session: Session, clock: Clock, feeds: dict[str, Feed], policy: ResultPolicy,
                    stat_priorities: tuple[str, ...], limit: int = 20,
                    presenting: PresentingRules | None = None) -> list[Processed]:
    """Process stored messages in arrival (id) order, each in a savepoint: one failure marks that
    message ``error`` with the reason and does not undo the others.

    Rows are locked (FOR UPDATE on PostgreSQL; SQLite's write lock is already held), so two nodes
    never process the same message, and a node waits for the one ahead instead of overtaking it.
    The batch shares one lookup per provider id and one audit chain append (at the commit); the
    outcomes are written in one statement at the end.
    """
    rows = session.execute(_RECEIVED, {"limit": limit}).all()
    if not rows:
        return []
    done: list[Processed] = []
    outcomes: list[dict[str, object]] = []
    default = next(iter(feeds.values()))
    with provider_matches_remembered(session):
        for row_id, feed_name, raw, charset in rows:
            feed = feeds.get(feed_name) or Feed(name=feed_name, port=0, charset=default.charset,
                                                timezone=default.timezone, provider_fields=default.provider_fields,
                                                message_types=("*",), routing=default.routing)
            try:
                with session.begin_nested():
                    parsed = parse(raw, charset or feed.charset)
                    outcome = process_message(session=session, clock=clock, actor=feed_actor(feed_name),
                                              parsed=parsed, feed=feed, policy=policy,
                                              stat_priorities=stat_priorities, message_id=row_id,
                                              presenting=presenting)
            except Exception as exc:  # any failure is recorded on the message, never lost
                text = exc.text if isinstance(exc, HL7Error) else getattr(exc, "message", None) or \
                    f"{type(exc).__name__}: {exc}"
                outcome = Outcome(MessageStatus.ERROR, str(text)[:2000])
                log.warning("hl7 processing failed", extra={"message_id": row_id, "feed": feed_name, "error": text})
            outcomes.append({"row_id": row_id, "outcome": outcome.status, "note": outcome.note or None,
                             "at": clock.now()})
            done.append(Processed(row_id, outcome.status, outcome.note))
    session.execute(_OUTCOME, outcomes)
    return done


_RECEIVED = (select(_TABLE.c.id, _TABLE.c.feed, _TABLE.c.raw, _TABLE.c.charset)
             .where(_TABLE.c.status == MessageStatus.RECEIVED).order_by(_TABLE.c.id)
             .limit(bindparam("limit")).with_for_update())
_OUTCOME = (update(_TABLE).where(_TABLE.c.id == bindparam("row_id"))
            .values(status=bindparam("outcome"), error=bindparam("note"), processed_at=bindparam("at"),
                    attempts=_TABLE.c.attempts + 1))


# ---------------------------------------------------------------- monitor: search, reprocess, purge


@dataclass(frozen=True)
class MessageQuery:
    message_type: str | None = None
    mrn: str | None = None
    control_id: str | None = None
    status: str | None = None
    feed: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: MessageQuery):  # type: ignore[no-untyped-def]
    stmt = select(Hl7Message)
    if query.message_type:
        mt = query.message_type.upper()
        stmt = stmt.where(or_(Hl7Message.message_type == mt, Hl7Message.message_type.like(f"{mt}^%")))
    if query.mrn:
        stmt = stmt.where(Hl7Message.mrn == query.mrn)
    if query.control_id:
        stmt = stmt.where(Hl7Message.control_id == query.control_id)
    if query.status:
        stmt = stmt.where(Hl7Message.status == query.status)
    if query.feed:
        stmt = stmt.where(Hl7Message.feed == query.feed)
    if query.since:
        stmt = stmt.where(Hl7Message.received_at >= query.since)
    if query.until:
        stmt = stmt.where(Hl7Message.received_at < query.until)
    return stmt


def search_messages(*, session: Session, clock: Clock, actor: Actor, query: MessageQuery, before_id: int | None = None,
                    limit: int = 100) -> list[Hl7Message]:
    """Newest first; page with ``before_id``. Messages carry patient data, so the search is audited."""
    stmt = _filtered(query)
    if before_id is not None:
        stmt = stmt.where(Hl7Message.id < before_id)
    rows = list(session.execute(stmt.order_by(Hl7Message.id.desc()).limit(limit)).scalars())
    record(session=session, clock=clock, actor=actor, action="hl7.message.search", object_type="hl7_message",
           detail={"mrn": query.mrn, "control_id": query.control_id, "type": query.message_type,
                   "results": len(rows)})
    return rows


def access_message(*, session: Session, clock: Clock, actor: Actor, message_id: int) -> Hl7Message:
    row = session.get(Hl7Message, message_id)
    if row is None:
        raise NotFound(f"no HL7 message {message_id}")
    record(session=session, clock=clock, actor=actor, action="hl7.message.read", object_type="hl7_message",
           object_id=message_id, detail={"mrn": row.mrn})
    return row


def reprocess_messages(*, session: Session, clock: Clock, actor: Actor, ids: Sequence[int] = (),
                       query: MessageQuery | None = None, limit: int = 10_000) -> list[int]:
    """Put messages back in the queue (status received): by id, or every match of ``query``
    (default: those in error). They are processed again in arrival order."""
    if not ids and query is None:
        raise Invalid("name message ids or a filter", field="ids")
    if ids:
        stmt = select(Hl7Message.id).where(Hl7Message.id.in_(list(ids)))
    else:
        assert query is not None
        q = query if query.status else MessageQuery(**{**query.__dict__, "status": MessageStatus.ERROR})
        stmt = _filtered(q).with_only_columns(Hl7Message.id)
    found = sorted(session.execute(stmt.order_by(Hl7Message.id).limit(limit)).scalars())
    missing = sorted(set(ids) - set(found))
    if missing:
        raise NotFound(f"no HL7 message {missing[0]}")
    if found:
        session.execute(update(Hl7Message).where(Hl7Message.id.in_(found))
                        .values(status=MessageStatus.RECEIVED, error=None, processed_at=None, ack_code="AA"))
    record(session=session, clock=clock, actor=actor, action="hl7.message.reprocess", object_type="hl7_message",
           detail={"ids": found[:1000], "count": len(found)})
    return found


def purge_messages(*, session: Session, clock: Clock, actor: Actor, older_than_days: int) -> int:
    """Delete stored messages received more than N days ago (not those still waiting to be processed).
    Results, orders and patients they produced stay."""
    if older_than_days < 1:
        raise Invalid("older_than_days must be at least 1", field="older_than_days")
    cutoff = clock.now() - timedelta(days=older_than_days)
    condition = (Hl7Message.received_at < cutoff, Hl7Message.status != MessageStatus.RECEIVED)
    count = session.execute(select(func.count()).select_from(Hl7Message).where(*condition)).scalar_one()
    session.execute(delete(Hl7Message).where(*condition))
    record(session=session, clock=clock, actor=actor, action="hl7.message.purge", object_type="hl7_message",
           detail={"older_than_days": older_than_days, "cutoff": cutoff.isoformat(), "deleted": count})
    return int(count)


def message_counts(*, session: Session) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for feed, status, n in session.execute(select(Hl7Message.feed, Hl7Message.status, func.count())
                                           .group_by(Hl7Message.feed, Hl7Message.status)).all():
        out.setdefault(feed, {})[status] = n
    return out


# ---------------------------------------------------------------- feed silence


@dataclass(frozen=True)
class FeedHealth:
    feed: str
    silence_minutes: int
    last_message_at: datetime | None
    silent_since: datetime | None
    newly_silent: bool = False


SilenceHook = Callable[[Session, Clock, FeedHealth], None]
_silence_hooks: list[SilenceHook] = []


def on_feed_silent(hook: SilenceHook) -> None:
    """Register a callback run (in the checker's transaction) when a feed first goes silent; the
    alerts domain registers one that alerts the integration admins."""
    _silence_hooks.append(hook)


def check_feeds(*, session: Session, clock: Clock, feeds: Sequence[Feed]) -> list[FeedHealth]:
    """Per feed: when it last spoke and whether it is past its silence threshold. A feed that goes
    silent is recorded once (``silence_reported_at``), logged, and handed to the registered hooks."""
    now = clock.now()
    states = {s.feed: s for s in session.execute(select(Hl7FeedState)).scalars()}
    out: list[FeedHealth] = []
    for feed in feeds:
        state = states.get(feed.name)
        if state is None:  # never heard from: the watch starts now, so a feed that never speaks is reported too
            session.execute(dialect_insert(session, Hl7FeedState).values(feed=feed.name, silent_since=now)
                            .on_conflict_do_nothing())  # two nodes starting together both get here
            out.append(FeedHealth(feed.name, feed.silence_minutes, None, None))
            continue
        newly = False
        silent_since: datetime | None = None
        if feed.silence_minutes:
            reference = state.last_message_at or state.silent_since
            if reference is not None and now - reference >= timedelta(minutes=feed.silence_minutes):
                silent_since = reference
                if state.silence_reported_at is None:
                    state.silence_reported_at = now
                    newly = True
        health = FeedHealth(feed.name, feed.silence_minutes, state.last_message_at, silent_since, newly)
        if newly:
            log.warning("hl7 feed silent", extra={"feed": feed.name, "since": silent_since.isoformat()
                                                  if silent_since else None, "threshold_minutes": feed.silence_minutes})
            for hook in list(_silence_hooks):
                hook(session, clock, health)
        out.append(health)
    session.flush()
    return out
