"""Conversations and messages: send, read, receipts, forwarding, windows and search.

Privacy rules, each enforced by the query under its number:
  (1) Only members of a conversation see it or its messages; anyone else gets "not found".
  (2) A clinician sees messages from the last ``visible_hours`` (default 24) and searches text of the
      last ``search_hours`` (default 72); compliance officers use the discovery functions instead.
  (3) Receipts of a message are visible to its sender and to the recipient they belong to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Table,
    and_,
    bindparam,
    column,
    exists,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert, AlertRecipient
from carerelay.audit import service as audit
from carerelay.core import locks
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import UTCDateTime, dialect_insert, flushed_connection
from carerelay.core.errors import Conflict, Forbidden, Invalid, NotFound
from carerelay.core.prepared import Prepared, PreparedRows, bind_rows, binds, built
from carerelay.directory.models import Person
from carerelay.escalation.engine import on_notify
from carerelay.messaging import policy
from carerelay.messaging.models import (
    Attachment,
    AttachmentBlob,
    Conversation,
    ConversationKind,
    ConversationMember,
    IdempotencyKey,
    Message,
    MessageKind,
    OrgPolicy,
    Priority,
    Receipt,
)
from carerelay.patients.models import Patient
from carerelay.realtime import service as realtime
from carerelay.routing.resolver import Resolution, people_recipients, resolve, scheme

MAX_TEXT = 10_000
MESSAGE_ALERT = "message"
NEW_CONVERSATION_FOR_PATIENT = (
    "this conversation is about another patient; start a new conversation for this patient"
)


# -- organization policy -----------------------------------------------------------------------

def get_policy(*, session: Session) -> OrgPolicy:
    """The one policy row, created with the pocket guide's defaults on first use (concurrent first
    uses must not collide: ON CONFLICT DO NOTHING)."""
    row = session.get(OrgPolicy, 1)
    if row is None:
        create = dialect_insert(session, OrgPolicy)
        session.execute(create.values(id=1, visible_hours=24, search_hours=72, retention_years=18,
                                      orders_in_text="warn", critical_results_in_text="warn",
                                      courtesy_replies_silent=True, attachment_max_bytes=10 * 1024 * 1024,
                                      extra={}).on_conflict_do_nothing())
        row = session.get_one(OrgPolicy, 1)
    return row


_TEXT_POLICY = Prepared(select(OrgPolicy.orders_in_text, OrgPolicy.critical_results_in_text,
                               OrgPolicy.courtesy_replies_silent).where(OrgPolicy.id == 1))


def _text_policy(session: Session) -> tuple[str, str, bool]:
    """What every send checks its text against, read as three columns (a fifth of the cost of loading
    the row as an entity). A policy row this session holds, edits included, is the one that counts."""
    held = session.identity_map.get(session.identity_key(OrgPolicy, 1))
    if not isinstance(held, OrgPolicy):
        rows = _TEXT_POLICY.rows(session.connection())
        if rows:
            return rows[0][0], rows[0][1], bool(rows[0][2])
        held = get_policy(session=session)
    return held.orders_in_text, held.critical_results_in_text, held.courtesy_replies_silent


def update_policy(*, session: Session, clock: Clock, actor: Actor, changes: dict[str, Any]) -> OrgPolicy:
    row = get_policy(session=session)
    before = {k: getattr(row, k) for k in changes}
    for key, value in changes.items():
        setattr(row, key, value)
    audit.record(session=session, clock=clock, actor=actor, action="messaging.update_policy", object_type="policy",
                 object_id=1, detail={"before": before, "after": changes})
    return row


# -- shapes returned to adapters ---------------------------------------------------------------

@dataclass(frozen=True)
class AttachmentView:
    id: int
    content_type: str
    size: int


@dataclass(frozen=True)
class MessageView:
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    sender_name: str
    kind: str
    text: str
    priority: str
    needs_ack: bool
    silent: bool
    patient_id: int | None
    created_at: datetime
    original_author_id: int | None
    original_author_name: str | None
    original_sent_at: datetime | None
    forwarded_from_id: int | None
    warnings_confirmed: list[str]
    attachments: list[AttachmentView]

    def as_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["created_at"] = self.created_at.isoformat()
        data["original_sent_at"] = self.original_sent_at.isoformat() if self.original_sent_at else None
        data["attachments"] = [a.__dict__ for a in self.attachments]
        return data


_NAMES = select(Person.id, Person.display_name).where(Person.id.in_(bindparam("ids", expanding=True)))


def _names(session: Session, ids: set[int], known: dict[int, str] | None = None) -> dict[int, str]:
    """``known``: names the caller already has (the signed-in sender's); people this session holds
    (loaded by signing in) need no query either."""
    names = {pid: name for pid, name in (known or {}).items() if pid in ids and name}
    for pid in ids - names.keys():
        person = session.identity_map.get(session.identity_key(Person, pid))
        if isinstance(person, Person):
            names[pid] = person.display_name
    missing = ids - names.keys()
    if missing:
        names.update((pid, name) for pid, name in session.execute(_NAMES, {"ids": sorted(missing)}))
    return names


def views(session: Session, messages: Sequence[Message], *, with_attachments: bool = True,
          known_names: dict[int, str] | None = None) -> list[MessageView]:
    """``with_attachments=False`` when the caller knows there are none (a send without any)."""
    if not messages:
        return []
    ids = [m.id for m in messages]
    names = _names(session, {m.sender_id for m in messages} | {m.original_author_id for m in messages
                                                                 if m.original_author_id}, known_names)
    attached: dict[int, list[AttachmentView]] = {i: [] for i in ids}
    rows = session.execute(
        select(Attachment.id, Attachment.message_id, AttachmentBlob.content_type, AttachmentBlob.size)
        .join(AttachmentBlob, AttachmentBlob.id == Attachment.blob_id)
        .where(Attachment.message_id.in_(ids)).order_by(Attachment.id)
    ) if with_attachments else ()
    for att_id, message_id, content_type, size in rows:
        if message_id is not None:
            attached[message_id].append(AttachmentView(att_id, content_type, size))
    return [
        MessageView(
            id=m.id, conversation_id=m.conversation_id, seq=m.seq, sender_id=m.sender_id,
            sender_name=names.get(m.sender_id, "?"), kind=m.kind, text=m.body, priority=m.priority,
            needs_ack=m.needs_ack, silent=m.silent, patient_id=m.patient_id, created_at=m.created_at,
            original_author_id=m.original_author_id,
            original_author_name=names.get(m.original_author_id) if m.original_author_id else None,
            original_sent_at=m.original_sent_at, forwarded_from_id=m.forwarded_from_id,
            warnings_confirmed=list(m.warnings_confirmed or []), attachments=attached[m.id],
        )
        for m in messages
    ]


def content_hash(view: MessageView) -> str:
    """What the send's audit entry records, so an export can prove the message is unaltered."""
    return _content_hash(view.as_json())


def _content_hash(payload: dict[str, Any]) -> str:
    core = {k: v for k, v in payload.items() if k not in ("sender_name", "original_author_name")}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


# -- conversations -----------------------------------------------------------------------------

def _require_person(actor: Actor) -> int:
    if actor.person_id is None:
        raise Forbidden("only a signed-in person can do this")
    return actor.person_id


def _active_people(session: Session, ids: set[int]) -> list[int]:
    rows = session.execute(select(Person.id, Person.active, Person.display_name).where(Person.id.in_(ids))).all()
    found = {r.id for r in rows}
    missing = sorted(ids - found)
    if missing:
        raise Invalid(f"no person with id {', '.join(map(str, missing))}", field="member_ids")
    inactive = [r.display_name for r in rows if not r.active]
    if inactive:
        raise Invalid(f"{', '.join(sorted(inactive))} is deactivated and cannot receive messages", field="member_ids")
    return sorted(found)


def _resolve_address(session: Session, address: str, at: datetime) -> Resolution:
    """Any address routing knows (person, group, team, role, pager…), resolved now."""
    resolution = resolve(session, address, at)
    if resolution.empty:
        raise Invalid(f"{address} reaches no one right now: {resolution.explain()}", field="address")
    return resolution


def _stored_resolution(resolution: Resolution, exclude: int) -> dict[str, Any]:
    """What an address conversation keeps of its resolution: who, why, and the notes (no contacts)."""
    return {"address": resolution.address, "at": resolution.at.isoformat(),
            "recipients": [{"person_id": r.person_id, "name": r.name, "reason": r.reason}
                           for r in resolution.recipients if r.person_id != exclude],
            "notes": resolution.notes}


MEMBER_REASON = "member of the conversation"


def message_resolution(conversation: Conversation | Appending, members: Sequence[int],
                       sender_id: int) -> dict[str, Any]:
    """Why each recipient (each receipt row) got the message: the reason the conversation's address
    gave for them, else ``default``. Only the specific reasons are listed, so a message to a big
    group stays small."""
    known = {str(r["person_id"]): r["reason"] for r in (conversation.resolution or {}).get("recipients", [])}
    present = {str(p) for p in members if p != sender_id}
    return {"address": conversation.address or f"conversation:{conversation.id}", "default": MEMBER_REASON,
            "reasons": {p: reason for p, reason in known.items() if p in present}}


def _check_patient(session: Session, patient_id: int | None) -> None:
    if patient_id is not None and session.get(Patient, patient_id) is None:
        raise Invalid(f"no patient {patient_id}", field="patient_id")


def create_conversation(
    *, session: Session, clock: Clock, actor: Actor, kind: ConversationKind, member_ids: Sequence[int] = (),
    address: str | None = None, title: str | None = None, patient_id: int | None = None,
) -> Conversation:
    me = _require_person(actor)
    resolution: dict[str, Any] | None = None
    if kind == ConversationKind.ADDRESS:
        if not address:
            raise Invalid("an addressed conversation needs an address", field="address")
        resolved = _resolve_address(session, address, clock.now())
        others = set(resolved.person_ids) - {me}
        resolution = _stored_resolution(resolved, me)
    else:
        others = set(member_ids) - {me}
    if not others:
        raise Invalid("a conversation needs at least one other person", field="member_ids")
    if kind == ConversationKind.DIRECT and len(others) != 1:
        raise Invalid("a direct conversation is between two people; use a group", field="member_ids")
    members = _active_people(session, others | {me})
    _check_patient(session, patient_id)
    if kind == ConversationKind.DIRECT:
        existing = _find_direct(session, me, next(iter(others)), patient_id)
        if existing is not None:
            return existing
    now = clock.now()
    conversation = Conversation(kind=kind, title=title, address=address, patient_id=patient_id, created_by=me,
                                created_at=now, last_message_at=None, last_seq=0, resolution=resolution)
    session.add(conversation)
    session.flush()
    session.add_all(ConversationMember(conversation_id=conversation.id, person_id=pid, joined_at=now, added_by=me)
                    for pid in members)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="conversation.create", object_type="conversation",
                 object_id=conversation.id, detail={"kind": kind, "members": members, "address": address,
                                                    "patient_id": patient_id, "resolution": resolution})
    realtime.emit(session=session, clock=clock, person_ids=members, kind="conversation.new",
                  payload=conversation_event(session, conversation))
    return conversation


def _find_direct(session: Session, a: int, b: int, patient_id: int | None) -> Conversation | None:
    ma, mb = ConversationMember.__table__.alias("ma"), ConversationMember.__table__.alias("mb")
    query = (
        select(Conversation)
        .join(ma, and_(ma.c.conversation_id == Conversation.id, ma.c.person_id == a))
        .join(mb, and_(mb.c.conversation_id == Conversation.id, mb.c.person_id == b))
        .where(Conversation.kind == ConversationKind.DIRECT)
    )
    query = query.where(Conversation.patient_id.is_(None) if patient_id is None
                        else Conversation.patient_id == patient_id)
    return session.execute(query.limit(1)).scalar_one_or_none()


# Built once: every send runs these (no statement construction or cache-key work per call).
_AS_MEMBER = (select(Conversation).join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
              .where(Conversation.id == bindparam("conversation_id"), ConversationMember.person_id == bindparam("me")))
_CONVERSATIONS = cast(Table, Conversation.__table__)
_MEMBERS_TABLE = cast(Table, ConversationMember.__table__)
_MESSAGES = cast(Table, Message.__table__)
_RECEIPTS = cast(Table, Receipt.__table__)
# The UPDATE that locks the conversation row (until commit) is the one that reserves the sequence
# numbers, and it checks membership (1) and reads what appending needs, all in one statement.
_OPEN_FOR_APPEND = Prepared(
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("conversation_id"),
           exists().where(_MEMBERS_TABLE.c.conversation_id == _CONVERSATIONS.c.id,
                          _MEMBERS_TABLE.c.person_id == bindparam("me")))
    .values(last_seq=_CONVERSATIONS.c.last_seq + bindparam("count", type_=Integer), last_message_at=bindparam("now"))
    .returning(_CONVERSATIONS.c.kind, _CONVERSATIONS.c.address, _CONVERSATIONS.c.patient_id,
               _CONVERSATIONS.c.resolution, _CONVERSATIONS.c.last_seq))
_SET_PATIENT = Prepared(update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("conversation_id"))
                        .values(patient_id=bindparam("patient_id")))
_MEMBER_IDS = Prepared(select(ConversationMember.person_id)
                       .where(ConversationMember.conversation_id == bindparam("conversation_id"))
                       .order_by(ConversationMember.person_id))
_MESSAGE_COLUMNS = ("conversation_id", "seq", "sender_id", "kind", "body", "priority", "needs_ack", "silent",
                    "patient_id", "created_at", "original_author_id", "original_sent_at", "forwarded_from_id",
                    "warnings_confirmed", "resolution")
_INSERT_MESSAGE = Prepared(insert(_MESSAGES).values(binds(_MESSAGES, _MESSAGE_COLUMNS)).returning(_MESSAGES.c.id))
_RECEIPT_COLUMNS = ("message_id", "person_id", "sent_at")
_INSERT_RECEIPTS = PreparedRows(lambda n: insert(_RECEIPTS).values(bind_rows(_RECEIPTS, _RECEIPT_COLUMNS, n)),
                                _RECEIPT_COLUMNS)


def _message_with_receipts() -> Any:
    """PostgreSQL: the message and its receipts (one per recipient of an array) as one statement, a round
    trip fewer on every send."""
    message = insert(_MESSAGES).values(binds(_MESSAGES, _MESSAGE_COLUMNS)).returning(_MESSAGES.c.id).cte("message")
    recipient = func.unnest(bindparam("recipients", type_=postgresql.ARRAY(Integer))).column_valued("recipient")
    receipts = insert(_RECEIPTS).from_select(_RECEIPT_COLUMNS, select(
        message.c.id, recipient, bindparam("sent_at", type_=_RECEIPTS.c.sent_at.type)).select_from(message))
    return select(message.c.id).add_cte(receipts.cte("receipts"))


_INSERT_MESSAGE_WITH_RECEIPTS = Prepared(_message_with_receipts())


def member_ids(session: Session, conversation_id: int) -> list[int]:
    return [pid for (pid,) in _MEMBER_IDS.rows(flushed_connection(session), {"conversation_id": conversation_id})]


def conversation_json(session: Session, conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id, "kind": conversation.kind, "title": conversation.title,
        "address": conversation.address, "patient_id": conversation.patient_id,
        "member_ids": member_ids(session, conversation.id),
        "resolution": conversation.resolution,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat() if conversation.last_message_at else None,
    }


def conversation_event(session: Session, conversation: Conversation) -> dict[str, Any]:
    """A conversation as its events carry it: whole up to ``realtime.PEOPLE_LISTED_MAX`` members; past
    that ``partial`` and without the member list and resolution, which GET /api/conversations/{id} gives."""
    data = conversation_json(session, conversation)
    data["member_count"] = len(data["member_ids"])
    data["partial"] = data["member_count"] > realtime.PEOPLE_LISTED_MAX
    if data["partial"]:
        data["member_ids"], data["resolution"] = None, None
    return data


def access_conversation(*, session: Session, actor: Actor, conversation_id: int) -> Conversation:
    """(1) Members only; a non-member cannot tell the conversation exists."""
    me = _require_person(actor)
    conversation = session.execute(_AS_MEMBER, {"conversation_id": conversation_id, "me": me}).scalar_one_or_none()
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    return conversation


def add_member(
    *, session: Session, clock: Clock, actor: Actor, conversation_id: int, person_id: int
) -> Conversation:
    conversation = access_conversation(session=session, actor=actor, conversation_id=conversation_id)
    if conversation.kind == ConversationKind.DIRECT:
        raise Invalid("people cannot be added to a direct conversation; forward it or start a group",
                      field="person_id")
    _active_people(session, {person_id})
    if session.get(ConversationMember, (conversation_id, person_id)) is None:
        session.add(ConversationMember(conversation_id=conversation_id, person_id=person_id, joined_at=clock.now(),
                                       added_by=actor.person_id))
        session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="conversation.add_member",
                 object_type="conversation", object_id=conversation_id, detail={"person_id": person_id})
    realtime.emit(session=session, clock=clock, person_ids=member_ids(session, conversation_id),
                  kind="conversation.changed", payload=conversation_event(session, conversation))
    return conversation


# -- sending -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendRequest:
    conversation_id: int
    text: str
    priority: Priority = Priority.ROUTINE
    needs_ack: bool = False
    patient_id: int | None = None
    attachment_ids: tuple[int, ...] = ()
    confirm: tuple[str, ...] = ()
    findings: policy.TextFindings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", policy.findings(self.text))

    def fingerprint(self) -> str:
        data = json.dumps([self.conversation_id, self.text, self.priority, self.needs_ack, self.patient_id,
                           sorted(self.attachment_ids)], default=str)
        return hashlib.sha256(data.encode()).hexdigest()


class ConfirmationRequired(Invalid):
    """The text trips a policy the sender may override; the client shows the warning and resends."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__(" ".join(policy.WARNING_TEXT[policy.Warning_(w)] for w in warnings), field="confirm")
        self.warnings = warnings


def check_text(*, session: Session, text: str, confirm: Sequence[str]) -> tuple[list[str], bool]:
    """Returns (warnings confirmed, silent); raises when blocked or not yet confirmed."""
    return _check_text(session, text, policy.findings(text), confirm)


def _check_text(session: Session, text: str, found: policy.TextFindings,
                confirm: Sequence[str]) -> tuple[list[str], bool]:
    if not text.strip():
        raise Invalid("the message is empty", field="text")
    if len(text) > MAX_TEXT:
        raise Invalid(f"the message is longer than {MAX_TEXT} characters", field="text")
    orders, critical_results, courtesy_silent = _text_policy(session)
    modes = {policy.Warning_.ORDERS: orders, policy.Warning_.CRITICAL_RESULT: critical_results}
    raised = [w for w in found.warnings if modes[w] != "off"]
    blocked = [w for w in raised if modes[w] == "block"]
    if blocked:
        raise Invalid("Not sent. " + " ".join(policy.BLOCKED_TEXT[w] for w in blocked), field="text")
    unconfirmed = [w.value for w in raised if w.value not in confirm]
    if unconfirmed:
        raise ConfirmationRequired(unconfirmed)
    silent = courtesy_silent and found.courtesy
    return [w.value for w in raised], silent


def _idempotency(session: Session, person_id: int, key: str, fingerprint: str) -> int | None:
    """Returns the message a finished earlier request made, or claims the key for this one."""
    if not locks.try_hold(session, f"idempotency:{person_id}:{key}"):
        raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly",
                       field="Idempotency-Key")
    row = session.get(IdempotencyKey, (person_id, key))
    if row is not None:
        if row.request_hash != fingerprint:
            raise Invalid("this Idempotency-Key was used for a different message", field="Idempotency-Key")
        return row.message_id
    return None


def send_message(
    *, session: Session, clock: Clock, actor: Actor, request: SendRequest, idempotency_key: str | None = None
) -> tuple[MessageView, bool]:
    """Store one immutable message with a receipt per recipient; returns (message, replayed)."""
    me = _require_person(actor)
    if idempotency_key is not None:
        earlier = _idempotency(session, me, idempotency_key, request.fingerprint())
        if earlier is not None:
            return views(session, [session.get_one(Message, earlier)])[0], True
    confirmed, silent = _check_text(session, request.text, request.findings, request.confirm)
    conversation = _open_for_append(session, clock, me, request.conversation_id, count=1)
    patient_id = _settle_patient(session, conversation, request.patient_id)
    attachments = _claim_attachments(session, me, request.attachment_ids)
    message, members = _append(session, conversation, sender_id=me, kind=MessageKind.TEXT,
                               body=request.text, priority=request.priority, needs_ack=request.needs_ack,
                               silent=silent, patient_id=patient_id, warnings=confirmed)
    for attachment in attachments:
        attachment.message_id = message.id
    if idempotency_key is not None:
        session.add(IdempotencyKey(person_id=me, key=idempotency_key, request_hash=request.fingerprint(),
                                   message_id=message.id, created_at=clock.now()))
    view = _publish(session, clock, actor, conversation, message, members, action="message.send",
                    with_attachments=bool(attachments))
    if message.needs_ack:
        _escalate(session, clock, actor, conversation, message, view)
    return view, False


def _escalate(
    session: Session, clock: Clock, actor: Actor, conversation: Appending, message: Message, view: MessageView
) -> None:
    """A message that needs acknowledgement escalates like an alert until a recipient acknowledges it."""
    address = conversation.address or f"conversation:{conversation.id}"
    alerts.raise_alert(
        session=session, clock=clock, actor=actor, kind=MESSAGE_ALERT, priority=message.priority,
        title=f"{view.sender_name}: {message.body[:120]}", body=message.body, address=address, source="message",
        source_ref=f"message:{message.id}", patient_id=message.patient_id,
        data={"message_id": message.id, "conversation_id": conversation.id, "raised_by": message.sender_id},
    )


@scheme("conversation")
def _conversation_members(session: Session, ref: str, at: datetime, depth: int) -> Resolution:
    if not ref.isdigit() or session.get(Conversation, int(ref)) is None:
        raise Invalid(f"no conversation {ref}", field="address")
    return people_recipients(session, f"conversation:{ref}", at,
                             [(pid, "member of the conversation") for pid in member_ids(session, int(ref))])


@on_notify(MESSAGE_ALERT)
def _bring_into_conversation(session: Session, clock: Clock, alert: Alert, person_ids: list[int]) -> None:
    """Whoever an escalating message reaches joins its conversation, so they can read and acknowledge it."""
    conversation = session.get_one(Conversation, alert.data["conversation_id"])
    message_id = alert.data["message_id"]
    now = clock.now()
    joined = [pid for pid in person_ids if session.get(ConversationMember, (conversation.id, pid)) is None]
    if not joined:
        return
    _record_joined(session, conversation, alert, joined)
    session.add_all(ConversationMember(conversation_id=conversation.id, person_id=pid, joined_at=now, added_by=None)
                    for pid in joined)
    session.add_all(Receipt(message_id=message_id, person_id=pid, sent_at=now) for pid in joined)
    session.flush()
    message = views(session, [session.get_one(Message, message_id)])[0]
    realtime.emit(session=session, clock=clock, person_ids=joined, kind="conversation.new",
                  payload=conversation_event(session, conversation))
    realtime.emit(session=session, clock=clock, person_ids=joined, kind="message.new", payload=message.as_json())


def _record_joined(session: Session, conversation: Conversation, alert: Alert, joined: list[int]) -> None:
    """The conversation's resolution gains who the escalation brought in, and why."""
    reasons: dict[int, str] = {pid: reason for pid, reason in session.execute(
        select(AlertRecipient.person_id, AlertRecipient.reason)
        .where(AlertRecipient.alert_id == alert.id, AlertRecipient.person_id.in_(joined)))}
    names = _names(session, set(joined))
    stored = dict(conversation.resolution or {"address": conversation.address, "at": None, "recipients": [],
                                              "notes": []})
    stored["recipients"] = [*stored.get("recipients", []), *(
        {"person_id": pid, "name": names.get(pid, "?"), "reason": f"escalation: {reasons.get(pid, 'reached')}"}
        for pid in joined)]
    conversation.resolution = stored


@alerts.on_acknowledge(MESSAGE_ALERT)
def _acknowledge_message(session: Session, clock: Clock, alert: Alert, person_id: int) -> None:
    receipt = session.get(Receipt, (alert.data["message_id"], person_id))
    if receipt is None or receipt.acknowledged_at is not None:
        return
    now = clock.now()
    receipt.delivered_at = receipt.delivered_at or now
    receipt.read_at = receipt.read_at or now
    receipt.acknowledged_at = now
    message = session.get_one(Message, alert.data["message_id"])
    realtime.emit(session=session, clock=clock, person_ids=[message.sender_id, person_id], kind="receipt.changed",
                  payload={"receipts": [_receipt_json(receipt, message)]})


def _settle_patient(session: Session, conversation: Appending, patient_id: int | None) -> int | None:
    """A conversation is about at most one patient; the first message naming one sets it."""
    if patient_id is None:
        return conversation.patient_id
    _check_patient(session, patient_id)
    if conversation.patient_id is None:
        _SET_PATIENT.run(session.connection(), {"conversation_id": conversation.id, "patient_id": patient_id})
        conversation.patient_id = patient_id
        conversation.sync_held(session, patient_id=patient_id)
    elif conversation.patient_id != patient_id:
        raise Conflict(NEW_CONVERSATION_FOR_PATIENT, field="patient_id")
    return patient_id


def _claim_attachments(session: Session, me: int, ids: Sequence[int]) -> list[Attachment]:
    if not ids:
        return []
    rows = session.execute(select(Attachment).where(Attachment.id.in_(ids)).with_for_update()).scalars().all()
    found = {a.id: a for a in rows}
    for attachment_id in ids:
        attachment = found.get(attachment_id)
        if attachment is None or attachment.owner_id != me:
            raise Invalid(f"no attachment {attachment_id} of yours to send", field="attachment_ids")
        if attachment.message_id is not None:
            raise Invalid(f"attachment {attachment_id} was already sent", field="attachment_ids")
    return [found[i] for i in ids]


@dataclass
class Appending:
    """A conversation locked for new messages, with their sequence numbers reserved: what writing into it
    needs, read by the UPDATE that locks it instead of loading (and later flushing) its ORM row."""

    id: int
    kind: str
    address: str | None
    patient_id: int | None
    resolution: dict[str, Any] | None
    members: list[int]
    opened_at: datetime
    next_seq: int

    def take_seq(self) -> int:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        return seq

    def sync_held(self, session: Session, **values: Any) -> None:
        """A Conversation row this session already holds sees what the statements changed, as committed
        state (it has nothing to flush for them)."""
        held = session.identity_map.get(session.identity_key(Conversation, self.id))
        if isinstance(held, Conversation):
            for key, value in values.items():
                set_committed_value(held, key, value)


def _open_for_append(session: Session, clock: Clock, me: int, conversation_id: int, *, count: int) -> Appending:
    """(1) Members only, as ``access_conversation``; locks the row until commit, so seq is gap-free."""
    conn = flushed_connection(session)
    now = clock.now()
    rows = _OPEN_FOR_APPEND.rows(conn, {"conversation_id": conversation_id, "me": me, "count": count, "now": now})
    if not rows:
        raise NotFound(f"no conversation {conversation_id}")
    kind, address, patient_id, resolution, last_seq = rows[0]
    members = member_ids(session, conversation_id)
    appending = Appending(id=conversation_id, kind=kind, address=address, patient_id=patient_id, resolution=resolution,
                          members=members, opened_at=now, next_seq=last_seq - count + 1)
    appending.sync_held(session, last_seq=last_seq, last_message_at=now)
    return appending


def _append(
    session: Session, conversation: Appending, *, sender_id: int, kind: str, body: str,
    priority: str, needs_ack: bool, silent: bool, patient_id: int | None, warnings: list[str],
    original_author_id: int | None = None, original_sent_at: datetime | None = None,
    forwarded_from_id: int | None = None,
) -> tuple[Message, list[int]]:
    """The one place a message row is written, with the next of the sequence numbers the conversation's
    lock reserved. A statement straight through the driver: messages are never changed, so no
    unit-of-work state is needed.

    Returns the message and the conversation's members, which every caller needs next.
    """
    now = conversation.opened_at
    members = conversation.members
    values: dict[str, Any] = dict(
        conversation_id=conversation.id, seq=conversation.take_seq(), sender_id=sender_id, kind=kind, body=body,
        priority=priority, needs_ack=needs_ack, silent=silent, patient_id=patient_id, created_at=now,
        original_author_id=original_author_id, original_sent_at=original_sent_at, forwarded_from_id=forwarded_from_id,
        warnings_confirmed=warnings, resolution=message_resolution(conversation, members, sender_id))
    conn = session.connection()
    recipients = [pid for pid in members if pid != sender_id]
    if conn.dialect.name == "postgresql":
        inserted = _INSERT_MESSAGE_WITH_RECEIPTS.rows(conn, {**values, "recipients": recipients, "sent_at": now})
        return built(Message, {"id": inserted[0][0], **values}), members
    message = built(Message, {"id": _INSERT_MESSAGE.rows(conn, values)[0][0], **values})
    if recipients:
        _INSERT_RECEIPTS.rows(conn, [{"message_id": message.id, "person_id": pid, "sent_at": now}
                                     for pid in recipients])
    return message, members


def _publish(
    session: Session, clock: Clock, actor: Actor, conversation: Appending, message: Message,
    members: list[int], *, action: str, with_attachments: bool = True,
) -> MessageView:
    session.flush()
    known = {actor.person_id: actor.display_name} if actor.person_id is not None else None
    view = views(session, [message], with_attachments=with_attachments, known_names=known)[0]
    payload = view.as_json()
    detail: dict[str, Any] = {"message_id": message.id, "seq": message.seq, "content_sha256": _content_hash(payload),
                              "priority": message.priority, "patient_id": message.patient_id}
    if conversation.kind == ConversationKind.ADDRESS:
        detail["resolution"] = message.resolution
    audit.record(session=session, clock=clock, actor=actor, action=action, object_type="conversation",
                 object_id=conversation.id, detail=detail)
    realtime.emit(session=session, clock=clock, person_ids=members, kind="message.new", payload=payload)
    return view


# -- reading -----------------------------------------------------------------------------------

def visible_since(session: Session, clock: Clock) -> datetime:
    return clock.now() - timedelta(hours=get_policy(session=session).visible_hours)


def list_conversations(*, session: Session, clock: Clock, actor: Actor) -> list[Conversation]:
    """(1)(2) The member's conversations with activity inside the visible window, newest first."""
    me = _require_person(actor)
    since = visible_since(session, clock)
    rows = session.execute(
        select(Conversation)
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .where(ConversationMember.person_id == me,
               func.coalesce(Conversation.last_message_at, Conversation.created_at) >= since)
        .order_by(func.coalesce(Conversation.last_message_at, Conversation.created_at).desc())
        .limit(200)
    )
    return list(rows.scalars())


def read_messages(
    *, session: Session, clock: Clock, actor: Actor, conversation_id: int, after_seq: int = 0, limit: int = 100
) -> list[MessageView]:
    """(1)(2) Messages of the visible window; every read is audited."""
    conversation = access_conversation(session=session, actor=actor, conversation_id=conversation_id)
    since = visible_since(session, clock)
    rows = session.execute(
        select(Message).where(Message.conversation_id == conversation.id, Message.seq > after_seq,
                              Message.created_at >= since)
        .order_by(Message.seq).limit(limit)
    ).scalars().all()
    audit.record(session=session, clock=clock, actor=actor, action="conversation.read", object_type="conversation",
                 object_id=conversation_id, detail={"after_seq": after_seq, "returned": len(rows),
                                                    "patient_id": conversation.patient_id})
    return views(session, rows)


_STATES = ("delivered", "read", "acknowledged")


def mark_receipts(
    *, session: Session, clock: Clock, actor: Actor, message_ids: Sequence[int], state: str
) -> int:
    """Record delivered/read/acknowledged for the caller's own receipts; later states imply earlier ones."""
    me = _require_person(actor)
    if state not in _STATES:
        raise Invalid(f"state must be one of {', '.join(_STATES)}", field="state")
    now = clock.now()
    rows = session.execute(
        select(Receipt, Message).join(Message, Message.id == Receipt.message_id)
        .where(Receipt.message_id.in_(message_ids), Receipt.person_id == me)
    ).all()
    if len(rows) != len(set(message_ids)):
        raise NotFound("some of these messages were not sent to you")
    changed: dict[int, list[dict[str, Any]]] = {}
    for receipt, message in rows:
        if state == "acknowledged" and not message.needs_ack:
            raise Invalid(f"message {message.id} does not ask for acknowledgement", field="state")
        before = (receipt.delivered_at, receipt.read_at, receipt.acknowledged_at)
        receipt.delivered_at = receipt.delivered_at or now
        if state in ("read", "acknowledged"):
            receipt.read_at = receipt.read_at or now
        if state == "acknowledged":
            receipt.acknowledged_at = receipt.acknowledged_at or now
        if before != (receipt.delivered_at, receipt.read_at, receipt.acknowledged_at):
            changed.setdefault(message.sender_id, []).append(_receipt_json(receipt, message))
    session.flush()
    for sender_id, updates in changed.items():
        realtime.emit(session=session, clock=clock, person_ids=[sender_id, me], kind="receipt.changed",
                      payload={"receipts": updates})
    for _, message in rows:
        if not message.needs_ack:
            continue
        linked = alerts.find_by_source(session=session, source="message", source_ref=f"message:{message.id}")
        if linked is None:
            continue
        if state == "acknowledged":
            alerts.acknowledge_alert(session=session, clock=clock, actor=actor, alert=linked)
        else:
            alerts.note_receipt(session=session, clock=clock, alert=linked, person_id=me, state=state)
    by_conversation: dict[int, list[int]] = {}
    for updates in changed.values():
        for change in updates:
            by_conversation.setdefault(change["conversation_id"], []).append(change["message_id"])
    for conv_id, ids in sorted(by_conversation.items()):
        audit.record(session=session, clock=clock, actor=actor, action=f"message.{state}", object_type="conversation",
                     object_id=conv_id, detail={"message_ids": sorted(ids)})
    return sum(len(u) for u in changed.values())


def _receipt_json(receipt: Receipt, message: Message) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    stored = message.resolution or {}
    reason = stored.get("reasons", {}).get(str(receipt.person_id)) or stored.get("default")
    return {"message_id": message.id, "conversation_id": message.conversation_id, "person_id": receipt.person_id,
            "reason": reason, "sent_at": iso(receipt.sent_at), "delivered_at": iso(receipt.delivered_at),
            "read_at": iso(receipt.read_at), "acknowledged_at": iso(receipt.acknowledged_at)}


def receipts_of(*, session: Session, actor: Actor, message_id: int) -> list[dict[str, Any]]:
    """(3) The sender sees every recipient's receipt; a recipient sees only their own."""
    me = _require_person(actor)
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    conversation = access_conversation(session=session, actor=actor, conversation_id=message.conversation_id)
    query = select(Receipt).where(Receipt.message_id == message_id).order_by(Receipt.person_id)
    if message.sender_id != me:
        query = query.where(Receipt.person_id == me)
    later = {str(r["person_id"]): r["reason"] for r in (conversation.resolution or {}).get("recipients", [])}
    out = []
    for receipt in session.execute(query).scalars():
        row = _receipt_json(receipt, message)
        if str(receipt.person_id) not in (message.resolution or {}).get("reasons", {}):
            row["reason"] = later.get(str(receipt.person_id), row["reason"])  # brought in after it was sent
        out.append(row)
    return out


# -- forwarding --------------------------------------------------------------------------------

def forward(
    *, session: Session, clock: Clock, actor: Actor, to_conversation_id: int, message_ids: Sequence[int] = (),
    conversation_id: int | None = None,
) -> list[MessageView]:
    """Copy messages into another conversation, keeping each one's original author and time."""
    me = _require_person(actor)
    if conversation_id is not None:
        source = access_conversation(session=session, actor=actor, conversation_id=conversation_id)
        since = visible_since(session, clock)
        originals = list(session.execute(
            select(Message).where(Message.conversation_id == source.id, Message.created_at >= since)
            .order_by(Message.seq)).scalars())
    else:
        originals = list(session.execute(select(Message).where(Message.id.in_(message_ids))
                                         .order_by(Message.conversation_id, Message.seq)).scalars())
        if len(originals) != len(set(message_ids)):
            raise NotFound("some of these messages do not exist")
        for conv_id in {m.conversation_id for m in originals}:
            access_conversation(session=session, actor=actor, conversation_id=conv_id)
    if not originals:
        raise Invalid("nothing to forward", field="message_ids")
    target = _open_for_append(session, clock, me, to_conversation_id, count=len(originals))
    out = []
    for original in originals:
        patient_id = _settle_patient(session, target, original.patient_id)
        message, members = _append(
            session, target, sender_id=me, kind=MessageKind.FORWARD, body=original.body,
            priority=original.priority, needs_ack=False, silent=original.silent, patient_id=patient_id,
            warnings=list(original.warnings_confirmed or []),
            original_author_id=original.original_author_id or original.sender_id,
            original_sent_at=original.original_sent_at or original.created_at,
            forwarded_from_id=original.id,
        )
        for source_attachment in session.execute(
                select(Attachment).where(Attachment.message_id == original.id).order_by(Attachment.id)).scalars():
            session.add(Attachment(blob_id=source_attachment.blob_id, message_id=message.id, owner_id=me,
                                   created_at=clock.now()))
        out.append(_publish(session, clock, actor, target, message, members, action="message.forward"))
    return out


# -- search ------------------------------------------------------------------------------------

def text_matches(session: Session, query: str, *, since: datetime | None = None) -> ColumnElement[bool]:
    """A condition on ``messages`` for full-text search (FTS5 on SQLite, tsvector on PostgreSQL).

    It is a filter inside the caller's query, never a capped list of matching ids taken first: with a
    cap, the newest matches across the whole hospital would crowd out a person's own older ones.
    ``since`` lets SQLite's index skip matches older than the window: no message of the window has an
    id below the smallest id written since then, so the bound is exact.
    """
    words = [w for w in "".join(ch if ch.isalnum() else " " for ch in query).split() if w]
    if not words:
        raise Invalid("search for at least one word", field="q")
    if session.get_bind().dialect.name == "postgresql":
        # Words are letters and digits only here, so the tsquery syntax cannot be injected.
        tsquery = func.to_tsquery(literal_column("'simple'"), " & ".join(f"{w}:*" for w in words))
        return literal_column("messages.search_vector").bool_op("@@")(tsquery)
    sql = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :fts_query"
    params: list[BindParameter[Any]] = [bindparam("fts_query", " ".join(f'"{w}"*' for w in words))]
    if since is not None:
        sql += " AND rowid >= (SELECT min(+id) FROM messages WHERE created_at >= :fts_since)"
        params.append(bindparam("fts_since", since, type_=UTCDateTime()))
    return Message.id.in_(text(sql).bindparams(*params).columns(column("rowid", Integer)))


def search_messages(*, session: Session, clock: Clock, actor: Actor, query: str, limit: int = 50) -> list[MessageView]:
    """(1)(2) Full-text search of the caller's conversations over the last ``search_hours``.

    Membership, the window and the words are one query, so every match the caller may see is a
    candidate, however common the word is elsewhere.
    """
    me = _require_person(actor)
    since = clock.now() - timedelta(hours=get_policy(session=session).search_hours)
    rows = list(session.execute(
        select(Message)
        .join(ConversationMember, and_(ConversationMember.conversation_id == Message.conversation_id,
                                       ConversationMember.person_id == me))
        .where(Message.created_at >= since, text_matches(session, query, since=since))
        .order_by(Message.id.desc()).limit(limit)
    ).scalars())
    audit.record(session=session, clock=clock, actor=actor, action="message.search", object_type="person",
                 object_id=me, detail={"query": query, "results": len(rows)})
    return views(session, rows)
