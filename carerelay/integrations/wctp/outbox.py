"""StatusInfo and MessageReply owed to originators: written in the transaction that caused them,
sent after it committed (style habit 3).

A sender with a ``reply_url`` gets them pushed: a worker claims due rows under a lease (SKIP LOCKED
on PostgreSQL), POSTs each outside any transaction and records the outcome; a refusal that a retry
cannot fix (a 3xx–5xx WCTP code) fails the row at once, anything else is retried with back-off and,
after the last attempt, written into the alert's trail. A sender without one polls: each
PollForMessages hands out what is waiting, in order, until the poller acknowledges it with
wctp-MessageReceived (the row id is the sequenceNo).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from lxml import etree
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.metrics import WCTP_REPLIES
from carerelay.integrations.paging.models import PagingMessage
from carerelay.integrations.wctp import build
from carerelay.integrations.wctp.client import WctpFailure
from carerelay.integrations.wctp.model import Received
from carerelay.integrations.wctp.models import WctpOutbound

log = logging.getLogger("carerelay.wctp")

PENDING, SENDING, SENT, HANDED, ACKNOWLEDGED, FAILED = "pending", "sending", "sent", "handed", "acknowledged", "failed"
LEASE = timedelta(seconds=60)
MAX_PUSH_ATTEMPTS = 8
MAX_HANDOUTS = 5


def enqueue(*, session: Session, clock: Clock, message: PagingMessage, kind: str, notification: str | None = None,
            reply_text: str | None = None, person_id: int | None = None,
            responder: str | None = None) -> WctpOutbound | None:
    """One StatusInfo (``kind`` status) or MessageReply (``kind`` reply) about ``message`` to its sender."""
    sender = paging.find_sender(session=session, sender_id=message.sender_id) if message.sender_id else None
    if sender is None:
        log.warning("no sender to answer", extra={"paging_message_id": message.id, "sender": message.sender_id})
        return None
    now = clock.now()
    row = WctpOutbound(paging_message_id=message.id, sender_id=sender.sender_id, kind=kind, notification=notification,
                       reply_text=reply_text, mcr=bool(message.choices) and kind == "reply", person_id=person_id,
                       body="", delivery="push" if sender.reply_url else "poll", status=PENDING, attempts=0,
                       created_at=now, next_attempt_at=now)
    session.add(row)
    session.flush()
    header = build.Header(response_to=message.message_id or message.tracking_number or str(message.id),
                          originator=message.recipient_id or "", message_id=f"CR{row.id}",
                          recipient=sender.sender_id, responded_at=now, responding_to_at=message.submitted_at,
                          security_code=sender.reply_security_code, misc_info=responder)
    element = (build.message_reply(header, reply_text or "", mcr=row.mcr) if kind == "reply"
               else build.status_info(header, notification=notification))
    row.body = etree.tostring(element).decode()
    return row


def element_of(row: WctpOutbound) -> etree._Element:
    return etree.fromstring(row.body.encode())


# ------------------------------------------------------------------ polling


def hand_out(*, session: Session, clock: Clock, sender_id: str, limit: int) -> list[WctpOutbound]:
    """What this poller has waiting, oldest first. Unacknowledged messages are handed out again at the
    next poll, up to MAX_HANDOUTS times, then given up (and logged)."""
    now = clock.now()
    rows = list(session.execute(
        select(WctpOutbound).where(WctpOutbound.sender_id == sender_id, WctpOutbound.delivery == "poll",
                                   WctpOutbound.status.in_((PENDING, HANDED)))
        .order_by(WctpOutbound.id).limit(limit)
    ).scalars())
    given: list[WctpOutbound] = []
    for row in rows:
        if row.attempts >= MAX_HANDOUTS:
            row.status, row.last_error = FAILED, f"handed out {row.attempts} times and never acknowledged"
            log.error("wctp poller never acknowledged", extra={"outbound_id": row.id, "sender": sender_id})
            continue
        row.status, row.attempts, row.sent_at = HANDED, row.attempts + 1, now
        given.append(row)
    return given


def acknowledge(*, session: Session, clock: Clock, sender_id: str, received: Sequence[Received]) -> int:
    done = 0
    for item in received:
        row = session.get(WctpOutbound, item.sequence_no)
        if row is None or row.sender_id != sender_id or row.status not in (PENDING, HANDED):
            continue
        WCTP_REPLIES.labels("poll", "acknowledged" if item.success else "refused").inc()
        if item.success:
            row.status = ACKNOWLEDGED
        else:
            row.status, row.last_error = FAILED, f"poller refused it: {item.code} {item.text or ''}".strip()
            _trail_failure(session, clock, row)
        done += 1
    return done


def waiting_for(*, session: Session, clock: Clock, message_id: int) -> list[WctpOutbound]:
    """Everything not yet collected about one message (ClientQuery: collected by asking)."""
    rows = list(session.execute(
        select(WctpOutbound).where(WctpOutbound.paging_message_id == message_id, WctpOutbound.delivery == "poll",
                                   WctpOutbound.status.in_((PENDING, HANDED))).order_by(WctpOutbound.id)
    ).scalars())
    for row in rows:
        row.status, row.sent_at, row.attempts = ACKNOWLEDGED, clock.now(), row.attempts + 1
    return rows


# ------------------------------------------------------------------ pushing


@dataclass(frozen=True)
class Push:
    id: int
    url: str
    document: bytes


Post = Callable[[str, bytes], tuple[int, str]]


def _claim(db: Database, clock: Clock, limit: int) -> list[Push]:
    with db.unit_of_work() as session:
        now = clock.now()
        query = (select(WctpOutbound)
                 .where(WctpOutbound.delivery == "push",
                        or_(WctpOutbound.status == PENDING,
                            (WctpOutbound.status == SENDING) & (WctpOutbound.lease_until < now)),
                        WctpOutbound.next_attempt_at <= now)
                 .order_by(WctpOutbound.next_attempt_at, WctpOutbound.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed: list[Push] = []
        for row in session.execute(query).scalars():
            sender = paging.find_sender(session=session, sender_id=row.sender_id)
            if sender is None or not sender.reply_url:  # reconfigured to poll meanwhile
                row.delivery = "poll"
                continue
            row.status, row.lease_until, row.attempts = SENDING, now + LEASE, row.attempts + 1
            claimed.append(Push(row.id, sender.reply_url, build.reply_document(element_of(row))))
        return claimed


def _record(db: Database, clock: Clock, push_id: int, error: WctpFailure | None) -> None:
    with db.unit_of_work() as session:
        row = session.get_one(WctpOutbound, push_id)
        now = clock.now()
        row.lease_until = None
        if error is None:
            row.status, row.sent_at = SENT, now
            WCTP_REPLIES.labels("push", "sent").inc()
            return
        row.last_error = str(error)[:2000]
        if error.retryable and row.attempts < MAX_PUSH_ATTEMPTS:
            row.status = PENDING
            row.next_attempt_at = now + timedelta(seconds=min(300, 2 * 2 ** (row.attempts - 1)))
            return
        row.status = FAILED
        WCTP_REPLIES.labels("push", "failed").inc()
        log.error("wctp reply could not be delivered", extra={"outbound_id": row.id, "sender": row.sender_id,
                                                              "error": row.last_error})
        _trail_failure(session, clock, row)


def _trail_failure(session: Session, clock: Clock, row: WctpOutbound) -> None:
    message = session.get(PagingMessage, row.paging_message_id)
    if message is not None and message.alert_id is not None:
        alerts.note(session=session, clock=clock, alert_id=message.alert_id, kind="wctp_reply_failed",
                    sender=row.sender_id, what=row.notification or "MessageReply", error=row.last_error)


def push_due(*, db: Database, clock: Clock, post: Post, limit: int = 50) -> int:
    """Send what is due to originators' URLs; returns how many were attempted."""
    claimed = _claim(db, clock, limit)
    for item in claimed:
        try:
            post(item.url, item.document)
        except WctpFailure as exc:
            _record(db, clock, item.id, exc)
        else:
            _record(db, clock, item.id, None)
    return len(claimed)
