"""The delivery outbox: queued in the caller's transaction, sent after commit, retried, never silent.

A worker claims due deliveries under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them
outside any transaction, and records the outcome. A node that dies mid-send leaves the lease to
expire and another sends again: outbound channels are at-least-once, with our delivery id as the
reference so gateways can drop repeats. A delivery that cannot succeed is marked failed with the
reason and written into its alert's trail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from carerelay.alerts import trail
from carerelay.audit import service as audit
from carerelay.config import Settings
from carerelay.core.actor import SYSTEM
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.directory.models import ContactPoint
from carerelay.notifications.channels import Channel, ChannelError, Outgoing
from carerelay.notifications.channels.email import SmtpChannel
from carerelay.notifications.channels.pager import pager_channel
from carerelay.notifications.channels.sms import SmsGateway
from carerelay.notifications.models import Delivery

log = logging.getLogger("carerelay.notifications")

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 8
PENDING, SENDING, SENT, FAILED, CANCELLED = "pending", "sending", "sent", "failed", "cancelled"


def build_channels(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    if settings.sms_gateway_url:
        channels["sms"] = SmsGateway(settings.sms_gateway_url, settings.sms_gateway_token)
    pager = pager_channel(settings)
    if pager is not None:
        channels["pager"] = pager
    if settings.smtp_host:
        channels["email"] = SmtpChannel(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                                        starttls=settings.smtp_starttls, username=settings.smtp_username,
                                        password=settings.smtp_password)
    return channels


def contact_for(session: Session, person_id: int, kind: str) -> str | None:
    return session.execute(
        select(ContactPoint.value).where(ContactPoint.person_id == person_id, ContactPoint.kind == kind,
                                         ContactPoint.active.is_(True)).order_by(ContactPoint.rank).limit(1)
    ).scalar_one_or_none()


def enqueue(
    *, session: Session, clock: Clock, person_id: int | None, channel: str, address: str, subject: str, body: str,
    alert_id: int | None = None,
) -> Delivery:
    now = clock.now()
    delivery = Delivery(person_id=person_id, alert_id=alert_id, channel=channel, address=address,
                        subject=subject[:300], body=body, status=PENDING, attempts=0, created_at=now,
                        next_attempt_at=now)
    session.add(delivery)
    session.flush()
    return delivery


def cancel_for_alert(*, session: Session, alert_id: int) -> int:
    """Acknowledged: follow-ups not yet sent are not sent."""
    result = session.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.status == PENDING)
                             .values(status=CANCELLED))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claimed:
    outgoing: Outgoing
    channel: str


def _claim(db: Database, clock: Clock, limit: int) -> list[Claimed]:
    with db.unit_of_work() as session:
        now = clock.now()
        query = (select(Delivery)
                 .where(or_(Delivery.status == PENDING, (Delivery.status == SENDING) & (Delivery.lease_until < now)),
                        Delivery.next_attempt_at <= now)
                 .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.execute(query).scalars())
        for row in rows:
            row.status = SENDING
            row.lease_until = now + LEASE
            row.attempts += 1
        return [Claimed(Outgoing(r.id, r.address, r.subject, r.body, r.alert_id), r.channel) for r in rows]


def _record(db: Database, clock: Clock, delivery_id: int, provider_ref: str | None, error: ChannelError | None) -> None:
    with db.unit_of_work() as session:
        row = session.get_one(Delivery, delivery_id)
        now = clock.now()
        row.lease_until = None
        if error is None:
            row.status, row.sent_at, row.provider_ref = SENT, now, provider_ref
            if row.alert_id is not None:
                _alert_step(session, clock, row, "delivery_sent", provider_ref=provider_ref)
            return
        row.last_error = str(error)[:2000]
        if error.retryable and row.attempts < MAX_ATTEMPTS:
            row.status = PENDING
            row.next_attempt_at = now + timedelta(seconds=min(600, 5 * 2 ** (row.attempts - 1)))
            return
        row.status = FAILED
        log.error("delivery failed for good", extra={"delivery_id": row.id, "channel": row.channel,
                                                      "error": row.last_error})
        if row.alert_id is not None:
            _alert_step(session, clock, row, "delivery_failed", error=row.last_error)


def _alert_step(session: Session, clock: Clock, row: Delivery, kind: str, **detail: object) -> None:
    """A follow-up's outcome is an escalation step: in the alert's trail and in the audit log."""
    assert row.alert_id is not None
    detail = {"channel": row.channel, "address": row.address, "delivery_id": row.id, **detail}
    trail.record_event(session, clock, row.alert_id, kind, row.person_id, detail)
    audit.record(session=session, clock=clock, actor=SYSTEM, action=f"alert.{kind}", object_type="alert",
                 object_id=row.alert_id, detail={"person_id": row.person_id, **detail})


def deliver_due(*, db: Database, clock: Clock, channels: Mapping[str, Channel], limit: int = 100) -> int:
    """Send what is due; returns how many were attempted."""
    claimed = _claim(db, clock, limit)
    for item in claimed:
        channel = channels.get(item.channel)
        try:
            if channel is None:
                raise ChannelError(f"no {item.channel} channel is configured", retryable=False)
            ref = channel.send(item.outgoing)
        except ChannelError as exc:
            _record(db, clock, item.outgoing.delivery_id, None, exc)
        else:
            _record(db, clock, item.outgoing.delivery_id, ref, None)
    return len(claimed)


def deliveries_for_alert(*, session: Session, alert_id: int) -> list[Delivery]:
    return list(session.execute(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id)).scalars())


def find_delivery(*, session: Session, delivery_id: int) -> Delivery | None:
    return session.get(Delivery, delivery_id)
