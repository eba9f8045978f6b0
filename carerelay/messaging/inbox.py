"""Summaries a client shows around messages: the inbox (last message, unread count, who, which
patient) and a thread's receipts, each in a few queries rather than one per conversation or message.

The privacy rules are messaging's (service.py): (1) members only, (2) the visible window, (3) a
message's receipts go to its sender, a recipient sees only their own. The inbox shows message text
and patient names, so it is audited like a read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.directory.models import Person
from carerelay.messaging import service
from carerelay.messaging.models import ConversationMember, Message, Receipt
from carerelay.patients.models import Patient


@dataclass(frozen=True)
class InboxRow:
    conversation_id: int
    kind: str
    title: str | None
    address: str | None
    patient_id: int | None
    patient_name: str | None
    patient_mrn: str | None
    others: list[str]
    last_text: str | None
    last_sender: str | None
    last_priority: str | None
    last_at: datetime
    unread: int


def member_names(session: Session, conversation_ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
    out: dict[int, list[tuple[int, str]]] = {cid: [] for cid in conversation_ids}
    if not conversation_ids:
        return out
    rows = session.execute(
        select(ConversationMember.conversation_id, Person.id, Person.display_name)
        .join(Person, Person.id == ConversationMember.person_id)
        .where(ConversationMember.conversation_id.in_(list(conversation_ids)))
        .order_by(ConversationMember.conversation_id, Person.family_key, Person.given_key)
    )
    for cid, pid, name in rows:
        out[cid].append((pid, name))
    return out


def inbox(*, session: Session, clock: Clock, actor: Actor) -> list[InboxRow]:
    """(1)(2) The caller's conversations active in the visible window, newest first."""
    conversations = service.list_conversations(session=session, clock=clock, actor=actor)
    me = actor.person_id
    ids = [c.id for c in conversations]
    if not ids:
        return []
    since = service.visible_since(session, clock)
    latest = (select(Message.conversation_id, func.max(Message.seq).label("seq"))
              .where(Message.conversation_id.in_(ids), Message.created_at >= since)
              .group_by(Message.conversation_id).subquery())
    last = {m.conversation_id: m for m in session.execute(
        select(Message).join(latest, (latest.c.conversation_id == Message.conversation_id)
                             & (latest.c.seq == Message.seq))).scalars()}
    unread = dict(session.execute(
        select(Message.conversation_id, func.count())
        .join(Receipt, Receipt.message_id == Message.id)
        .where(Message.conversation_id.in_(ids), Receipt.person_id == me, Receipt.read_at.is_(None),
               Message.created_at >= since)
        .group_by(Message.conversation_id)).all())
    names = member_names(session, ids)
    senders = dict(session.execute(select(Person.id, Person.display_name)
                                   .where(Person.id.in_({m.sender_id for m in last.values()}))).all()) if last else {}
    patient_ids = {c.patient_id for c in conversations if c.patient_id is not None}
    patients = {p.id: p for p in session.execute(select(Patient).where(Patient.id.in_(patient_ids))).scalars()} \
        if patient_ids else {}
    rows = []
    for c in conversations:
        message = last.get(c.id)
        patient = patients.get(c.patient_id) if c.patient_id is not None else None
        rows.append(InboxRow(
            conversation_id=c.id, kind=c.kind, title=c.title, address=c.address, patient_id=c.patient_id,
            patient_name=f"{patient.family_name}, {patient.given_name}".strip(", ") if patient else None,
            patient_mrn=patient.mrn if patient else None,
            others=[n for pid, n in names[c.id] if pid != me],
            last_text=message.body if message else None,
            last_sender=senders.get(message.sender_id) if message else None,
            last_priority=message.priority if message else None,
            last_at=c.last_message_at or c.created_at, unread=int(unread.get(c.id, 0))))
    audit.record(session=session, clock=clock, actor=actor, action="conversation.list", object_type="person",
                 object_id=me, detail={"conversations": len(rows), "patient_ids": sorted(patient_ids)})
    return rows


@dataclass
class ReceiptLine:
    person_id: int
    name: str
    sent_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None
    acknowledged_at: datetime | None

    @property
    def state(self) -> str:
        if self.acknowledged_at:
            return "acknowledged"
        if self.read_at:
            return "read"
        return "delivered" if self.delivered_at else "sent"


@dataclass
class ThreadReceipts:
    """Per message: every recipient's receipt if the viewer sent it, else the viewer's own."""

    by_message: dict[int, list[ReceiptLine]] = field(default_factory=dict)

    def mine(self, message_id: int, person_id: int) -> ReceiptLine | None:
        return next((r for r in self.by_message.get(message_id, []) if r.person_id == person_id), None)


def thread_receipts(*, session: Session, actor: Actor, messages: Sequence[service.MessageView]) -> ThreadReceipts:
    """(3) Receipts of messages the caller already read through ``service.read_messages``."""
    me = actor.person_id
    out = ThreadReceipts({m.id: [] for m in messages})
    if not messages:
        return out
    mine = [m.id for m in messages if m.sender_id == me]
    others = [m.id for m in messages if m.sender_id != me]
    query = (select(Receipt, Person.display_name).join(Person, Person.id == Receipt.person_id)
             .order_by(Receipt.message_id, Person.family_key, Person.given_key))
    rows: list[tuple[Receipt, str]] = []
    if mine:
        rows += [(r, n) for r, n in session.execute(query.where(Receipt.message_id.in_(mine)))]
    if others:
        rows += [(r, n) for r, n in session.execute(query.where(Receipt.message_id.in_(others),
                                                                Receipt.person_id == me))]
    for receipt, name in rows:
        out.by_message[receipt.message_id].append(ReceiptLine(
            person_id=receipt.person_id, name=name, sent_at=receipt.sent_at, delivered_at=receipt.delivered_at,
            read_at=receipt.read_at, acknowledged_at=receipt.acknowledged_at))
    return out
