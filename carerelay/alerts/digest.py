"""Digests: many small events, one alert every N minutes (presenting-patient rules that batch).

An item is stored with its digest key (the rule's name), target and wait; the first item of a key
with no digest pending schedules a durable timer N minutes out. When it fires, every item of that
key still waiting becomes one alert (one line each) to the first target that reaches someone then,
escalated like any other alert. Items and timer live in the database, so a restart loses nothing;
the timer's effects commit exactly once. Adding an item locks the pending timer (PostgreSQL), so it
cannot fire between the item's check and its commit; a twin timer (two nodes racing to schedule)
finds nothing left to send and sends nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import DigestItem
from carerelay.core.actor import SYSTEM
from carerelay.core.clock import Clock
from carerelay.escalation.engine import DEFAULT_FALLBACK
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.patients.models import ClinicalHandoff

DIGEST_TIMER = "alerts.digest"
PRIORITY_ORDER = ("routine", "urgent", "stat", "critical")


def timer_key(digest_key: str) -> str:
    return f"digest:{digest_key}"[:200]


def add(*, session: Session, clock: Clock, handoff: ClinicalHandoff) -> DigestItem:
    """Hold a presenting-patient hand-off for its rule's next digest."""
    detail = handoff.detail or {}
    key = str(detail.get("rule") or handoff.kind)[:120]
    minutes = max(1, int(detail.get("digest_minutes") or 1))
    item = DigestItem(digest_key=key, target=handoff.target, kind=handoff.kind,
                      priority=str(detail.get("priority") or "urgent"), minutes=minutes,
                      line=str(detail.get("line") or handoff.summary)[:500], patient_id=handoff.patient_id,
                      source_ref=f"handoff:{handoff.id}", created_at=clock.now())
    session.add(item)
    session.flush()
    # Locked: were the pending digest fired before this item commits, the item would wait unsent.
    if not jobs.pending(session=session, key=timer_key(key), lock=True):
        jobs.schedule(session=session, clock=clock, kind=DIGEST_TIMER, due_at=clock.now() + timedelta(minutes=minutes),
                      params={"digest_key": key}, key=timer_key(key))
    return item


def waiting(*, session: Session, digest_key: str) -> list[DigestItem]:
    return list(session.execute(select(DigestItem).where(DigestItem.digest_key == digest_key,
                                                         DigestItem.sent_at.is_(None))
                                .order_by(DigestItem.id)).scalars())


@jobs.HANDLERS.register(DIGEST_TIMER)
def send_digest(session: Session, clock: Clock, timer: Timer) -> None:
    key = str(timer.params["digest_key"])
    # FOR UPDATE: a second node firing a twin timer waits here, then finds every item already sent.
    items = list(session.execute(select(DigestItem).where(DigestItem.digest_key == key, DigestItem.sent_at.is_(None))
                                 .order_by(DigestItem.id).with_for_update()).scalars())
    if not items:
        return
    targets = [t.strip() for t in items[-1].target.split(",") if t.strip()]
    address, notes = alerts.first_reachable(session=session, at=clock.now(), addresses=targets)
    priority = max((i.priority for i in items), key=lambda p: PRIORITY_ORDER.index(p) if p in PRIORITY_ORDER else 1)
    first = min(i.created_at for i in items)
    lines = "\n".join(f"- {i.line}" for i in items)
    alert = alerts.raise_alert(
        session=session, clock=clock, actor=SYSTEM, kind=items[0].kind, priority=priority,
        title=f"{key}: {len(items)} patient{'s' if len(items) != 1 else ''} since {first:%H:%M} UTC"[:300],
        body=f"{lines}{''.join(' ' + n for n in notes)}", address=address or DEFAULT_FALLBACK, source="hl7",
        source_ref=f"digest:{key}:{timer.id}"[:200], choices=["Accept"],
        data={"digest_key": key, "patient_ids": [i.patient_id for i in items], "items": [i.id for i in items]},
    )
    now = clock.now()
    for item in items:
        item.sent_at, item.alert_id = now, alert.id
    session.flush()
