"""The paging intake: every device alert and page (WCTP, TAP, SNPP, e-mail, the operator's web
page) becomes an alert here, through one path.

``receive_page`` records the message (accepted or refused, always with the reason: the feed monitor),
finds what its recipient id means (a mapped recipient, a virtual pager number, a bed), picks the
first matching rule (by sender, channel, recipient and text) for the alert kind, priority, tone,
response choices, target and escalation, and raises the alert in the same transaction. Nothing is
refused silently and nothing routed twice: a sender's repeat of a message id it already had
accepted is answered as before and not raised again.

Senders, recipient maps and rules are managed here too (audited), for the API and the demo.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert
from carerelay.audit import service as audit
from carerelay.core import locks
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.core.errors import CarerelayError, Conflict, Invalid, NotFound
from carerelay.core.prepared import PreparedInsert, PreparedLoad, PreparedUpdate
from carerelay.directory.models import VirtualPager
from carerelay.escalation.engine import DEFAULT_FALLBACK, TARGET
from carerelay.integrations.paging.metrics import PAGING_MESSAGES
from carerelay.integrations.paging.models import (
    Channel,
    MessageStatus,
    PagingMessage,
    PagingRecipient,
    PagingRule,
    PagingSender,
)
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.messaging.models import Priority
from carerelay.patients import service as patients
from carerelay.routing.resolver import check_address

log = logging.getLogger("carerelay.paging")

# Codes are WCTP's (the richest vocabulary of the four protocols); TAP, SNPP and SMTP map them.
ACCEPTED, INVALID_SENDER, INVALID_CODE, INVALID_RECIPIENT, EXPIRED, TOO_LONG = 200, 401, 402, 403, 408, 411
BAD_REQUEST, INTERNAL = 400, 604

DEDUPE_WINDOW = timedelta(hours=24)
MAX_TEXT = 65_535
RAW_KEPT = 64 * 1024
DELIVER_TIMER = "paging.deliver"
DEFAULT_CHOICES = ("Accept", "Reject", "Call back")
WCTP_PRIORITY = {"HIGH": Priority.STAT.value, "NORMAL": Priority.URGENT.value, "LOW": Priority.ROUTINE.value}
DEFAULT_KIND = {Channel.WCTP.value: "device_alert"}
PLACEHOLDERS = ("address", "recipient", "unit", "room", "bed", "sender")


def intake_actor(channel: str, sender_id: str | None) -> Actor:
    return Actor(person_id=None, username=f"{channel}:{sender_id or 'anonymous'}"[:120], roles=frozenset({"system"}))


# ------------------------------------------------------------------ senders


def _hash_code(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {name!r}", field="timezone") from None
    return name


def _check_channels(channels: Sequence[str]) -> list[str]:
    known = {c.value for c in Channel}
    bad = [c for c in channels if c not in known]
    if bad or not channels:
        raise Invalid(f"channels are some of {', '.join(sorted(known))}", field="channels")
    return list(dict.fromkeys(channels))


def create_sender(
    *, session: Session, clock: Clock, actor: Actor, sender_id: str, security_code: str | None,
    channels: Sequence[str] = (Channel.WCTP.value,), label: str | None = None, reply_url: str | None = None,
    reply_security_code: str | None = None, timezone: str = "UTC",
) -> PagingSender:
    if find_sender(session=session, sender_id=sender_id) is not None:
        raise Conflict(f"sender {sender_id} exists", field="sender_id")
    now = clock.now()
    sender = PagingSender(sender_id=sender_id, label=label, channels=_check_channels(channels), reply_url=reply_url,
                          reply_security_code=reply_security_code, timezone=_check_zone(timezone), active=True,
                          created_at=now, updated_at=now)
    _set_code(sender, security_code)
    session.add(sender)
    flush_or_conflict(session, f"sender {sender_id} exists")
    audit.record(session=session, clock=clock, actor=actor, action="paging.create_sender", object_type="paging_sender",
                 object_id=sender.id, detail={"sender_id": sender_id, "channels": sender.channels,
                                              "reply_url": reply_url, "security_code": security_code is not None})
    return sender


def _set_code(sender: PagingSender, code: str | None) -> None:
    if code is None:
        sender.code_salt = sender.code_hash = None
        return
    sender.code_salt = secrets.token_hex(16)
    sender.code_hash = _hash_code(sender.code_salt, code)


SENDER_FIELDS = ("label", "channels", "reply_url", "reply_security_code", "timezone", "active", "security_code")


def update_sender(*, session: Session, clock: Clock, actor: Actor, sender_id: str,
                  changes: dict[str, Any]) -> PagingSender:
    sender = find_sender(session=session, sender_id=sender_id)
    if sender is None:
        raise NotFound(f"no sender {sender_id}")
    for name, value in changes.items():
        if name not in SENDER_FIELDS:
            raise Invalid(f"unknown field {name}", field=name)
        if name == "security_code":
            _set_code(sender, value)
        elif name == "channels":
            sender.channels = _check_channels(value)
        elif name == "timezone":
            sender.timezone = _check_zone(value)
        else:
            setattr(sender, name, value)
    sender.updated_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="paging.update_sender", object_type="paging_sender",
                 object_id=sender.id, detail={"sender_id": sender_id, "fields": sorted(changes)})
    return sender


# The statements every submit runs, built once (building one costs more than running it).
_INSERT_MESSAGE = PreparedInsert(PagingMessage)
_ROUTED = PreparedUpdate(PagingMessage, ("alert_id", "rule_id", "address", "status", "error_text"))
_ACCEPTED = PreparedLoad(select(PagingMessage)
                         .where(PagingMessage.sender_id == bindparam("sender_id"),
                                PagingMessage.message_id == bindparam("message_id"),
                                or_(PagingMessage.status == MessageStatus.ACCEPTED.value,
                                    PagingMessage.status == MessageStatus.SCHEDULED.value),
                                PagingMessage.received_at >= bindparam("since"))
                         .order_by(PagingMessage.id.desc()).limit(1))
_MAPPED = PreparedLoad(select(PagingRecipient).where(PagingRecipient.recipient_key == bindparam("key"),
                                                     PagingRecipient.active.is_(True)))
_PAGER = PreparedLoad(select(VirtualPager).where(VirtualPager.number == bindparam("number"),
                                                 VirtualPager.active.is_(True)))
_SENDER = PreparedLoad(select(PagingSender).where(PagingSender.sender_id == bindparam("sender_id")))
_ACTIVE_RULES = PreparedLoad(select(PagingRule).where(PagingRule.active.is_(True))
                             .order_by(PagingRule.position, PagingRule.id))


def find_sender(*, session: Session, sender_id: str) -> PagingSender | None:
    sender: PagingSender | None = _SENDER.first(session, {"sender_id": sender_id})
    return sender


def list_senders(*, session: Session) -> list[PagingSender]:
    return list(session.execute(select(PagingSender).order_by(PagingSender.sender_id)).scalars())


def check_sender(*, session: Session, sender_id: str | None, security_code: str | None,
                 channel: str) -> tuple[PagingSender | None, int, str]:
    """The sender if it may send on this channel with this code; else None, the code and the reason."""
    if not sender_id:
        return None, INVALID_SENDER, "no senderID"
    sender = find_sender(session=session, sender_id=sender_id)
    if sender is None or not sender.active or channel not in sender.channels:
        return None, INVALID_SENDER, f"sender {sender_id[:60]!r} is not configured for {channel}"
    if sender.code_hash is not None:
        given = _hash_code(sender.code_salt or "", security_code or "")
        if not hmac.compare_digest(given, sender.code_hash):
            return None, INVALID_CODE, f"wrong security code for sender {sender_id}"
    return sender, ACCEPTED, ""


def sender_zone(sender: PagingSender | None, default: str = "UTC") -> ZoneInfo:
    try:
        return ZoneInfo(sender.timezone if sender is not None else default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# ------------------------------------------------------------------ recipients


@dataclass(frozen=True)
class Target:
    """What a recipient id reaches: an address and, for beds and units, where."""

    recipient_id: str
    address: str
    kind: str  # mapped | pager | bed
    unit: str | None = None
    room: str | None = None
    bed: str | None = None
    department_id: int | None = None
    label: str | None = None

    @property
    def location(self) -> str | None:
        parts = [p for p in (self.unit, self.room, self.bed) if p]
        return "-".join(parts) if parts else None


def _bed_address(unit: str, room: str, bed: str, role: str = "nurse") -> str:
    return f"location:{unit}/{room}/{bed}/{role}"


def create_recipient(
    *, session: Session, clock: Clock, actor: Actor, recipient_id: str, address: str | None = None,
    unit: str | None = None, room: str | None = None, bed: str | None = None, label: str | None = None,
) -> PagingRecipient:
    """A bed (unit, room, bed), a unit (unit only) or any address (person, group, team, role, pager…)."""
    key = recipient_id.strip().lower()
    if session.execute(select(PagingRecipient.id).where(PagingRecipient.recipient_key == key)).first():
        raise Conflict(f"recipient {recipient_id} is already mapped", field="recipient_id")
    department_id = None
    if bed or room:
        if not (unit and room and bed):
            raise Invalid("a bed needs unit, room and bed", field="bed")
        found = patients.find_bed_by_code(session=session, unit_code=unit, room=room, bed=bed)
        if found is None:
            raise Invalid(f"no bed {unit}-{room}-{bed}", field="bed")
        department_id = found[0].department_id
        address = address or _bed_address(unit, room, bed)
    elif unit:
        found_unit = patients.find_unit(session=session, code=unit)
        if found_unit is None:
            raise Invalid(f"no unit {unit}", field="unit")
        department_id = found_unit.department_id
    if not address:
        raise Invalid("give an address (or a bed)", field="address")
    check_address(address)
    now = clock.now()
    row = PagingRecipient(recipient_id=recipient_id.strip(), recipient_key=key, address=address, unit=unit,
                          room=room, bed=bed, department_id=department_id, label=label, active=True,
                          created_at=now, updated_at=now)
    session.add(row)
    flush_or_conflict(session, f"recipient {recipient_id} is already mapped")
    audit.record(session=session, clock=clock, actor=actor, action="paging.create_recipient",
                 object_type="paging_recipient", object_id=row.id,
                 detail={"recipient_id": recipient_id, "address": address, "location": [unit, room, bed]})
    return row


def update_recipient(*, session: Session, clock: Clock, actor: Actor, recipient_id: str, address: str | None = None,
                     label: str | None = None, active: bool | None = None) -> PagingRecipient:
    row = session.execute(select(PagingRecipient).where(
        PagingRecipient.recipient_key == recipient_id.strip().lower())).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no recipient {recipient_id}")
    if address is not None:
        check_address(address)
        row.address = address
    if label is not None:
        row.label = label
    if active is not None:
        row.active = active
    row.updated_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="paging.update_recipient",
                 object_type="paging_recipient", object_id=row.id,
                 detail={"recipient_id": recipient_id, "address": address, "active": active})
    return row


def list_recipients(*, session: Session) -> list[PagingRecipient]:
    return list(session.execute(select(PagingRecipient).order_by(PagingRecipient.recipient_key)).scalars())


def find_target(*, session: Session, recipient_id: str) -> Target | None:
    """A mapped recipient first, then a virtual pager number, then a bed written UNIT-ROOM-BED."""
    key = recipient_id.strip()
    mapped: PagingRecipient | None = _MAPPED.first(session, {"key": key.lower()})
    if mapped is not None:
        return Target(key, mapped.address, "mapped", mapped.unit, mapped.room, mapped.bed, mapped.department_id,
                      mapped.label)
    pager: VirtualPager | None = _PAGER.first(session, {"number": key})
    if pager is not None:
        return Target(key, f"pager:{pager.number}", "pager", label=pager.label)
    parts = key.rsplit("-", 2)
    if len(parts) == 3 and all(parts):
        found = patients.find_bed_by_code(session=session, unit_code=parts[0], room=parts[1], bed=parts[2])
        if found is not None:
            unit, bed = found
            return Target(key, _bed_address(unit.code, bed.room, bed.bed), "bed", unit.code, bed.room, bed.bed,
                          unit.department_id)
    return None


# ------------------------------------------------------------------ rules


@lru_cache(maxsize=512)
def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(value, re.IGNORECASE)


def _check_pattern(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        _pattern(value)
    except re.error as exc:
        raise Invalid(f"{name} is not a valid regular expression: {exc}", field=name) from None
    return value


def _check_template(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    unknown = set(re.findall(r"\{(\w*)\}", value)) - set(PLACEHOLDERS)
    if unknown:
        raise Invalid(f"{name} may use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; not "
                      f"{', '.join(sorted(unknown))}", field=name)
    scheme = value.partition(":")[0]
    if not scheme.startswith("{"):
        check_address(fill_template(value, {p: "x" for p in PLACEHOLDERS}))
    return value


def _check_escalation(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    steps = value.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) and s.get("address") for s in steps):
        raise Invalid("escalation needs steps: [{address, wait_minutes}, …]", field="escalation")
    for step in steps:
        if step["address"] != TARGET:
            _check_template(str(step["address"]), "escalation")
        if not 0 <= float(step.get("wait_minutes", 5)) <= 24 * 60:
            raise Invalid("wait_minutes is between 0 and 1440", field="escalation")
    if value.get("fallback"):
        _check_template(str(value["fallback"]), "escalation")
    return value


RULE_FIELDS = ("position", "active", "sender_id", "channel", "recipient_pattern", "text_pattern", "alert_kind",
               "priority", "tone", "choices", "target", "escalation")


def _apply_rule(rule: PagingRule, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name not in RULE_FIELDS:
            raise Invalid(f"unknown field {name}", field=name)
        if name in ("recipient_pattern", "text_pattern"):
            value = _check_pattern(value, name)
        elif name == "target":
            value = _check_template(value, name)
        elif name == "escalation":
            value = _check_escalation(value)
        elif name == "priority" and value is not None and value not in {p.value for p in Priority}:
            raise Invalid("priority is routine, urgent, stat or critical", field="priority")
        elif name == "channel" and value is not None and value not in {c.value for c in Channel}:
            raise Invalid(f"unknown channel {value}", field="channel")
        setattr(rule, name, value)


def create_rule(*, session: Session, clock: Clock, actor: Actor, name: str, alert_kind: str,
                **values: Any) -> PagingRule:
    if session.execute(select(PagingRule.id).where(PagingRule.name == name)).first():
        raise Conflict(f"rule {name!r} exists", field="name")
    now = clock.now()
    rule = PagingRule(name=name, alert_kind=alert_kind, position=100, active=True, created_at=now, updated_at=now)
    _apply_rule(rule, values)
    session.add(rule)
    flush_or_conflict(session, f"rule {name!r} exists")
    audit.record(session=session, clock=clock, actor=actor, action="paging.create_rule", object_type="paging_rule",
                 object_id=rule.id, detail={"name": name, **{k: v for k, v in values.items() if v is not None}})
    return rule


def update_rule(*, session: Session, clock: Clock, actor: Actor, rule_id: int, changes: dict[str, Any]) -> PagingRule:
    rule = session.get(PagingRule, rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    _apply_rule(rule, changes)
    rule.updated_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="paging.update_rule", object_type="paging_rule",
                 object_id=rule.id, detail={"fields": sorted(changes)})
    return rule


def list_rules(*, session: Session) -> list[PagingRule]:
    return list(session.execute(select(PagingRule).order_by(PagingRule.position, PagingRule.id)).scalars())


def match_rule(*, session: Session, channel: str, sender_id: str | None, recipient_id: str,
               text: str) -> PagingRule | None:
    def matches(rule: PagingRule) -> bool:
        return ((rule.channel is None or rule.channel == channel)
                and (rule.sender_id is None or rule.sender_id == sender_id)
                and (rule.recipient_pattern is None or bool(_pattern(rule.recipient_pattern).search(recipient_id)))
                and (rule.text_pattern is None or bool(_pattern(rule.text_pattern).search(text))))

    found: PagingRule | None = _ACTIVE_RULES.first(session, where=matches)
    return found


def fill_template(template: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(name)
        return values[name]

    return re.sub(r"\{(\w+)\}", one, template)


# ------------------------------------------------------------------ intake


@dataclass(frozen=True)
class Page:
    """One inbound page or device alert, as any channel hands it over (times aware UTC)."""

    channel: str
    recipient_id: str | None
    text: str
    sender_id: str | None = None
    peer: str | None = None
    operation: str | None = None
    message_id: str | None = None
    transaction_id: str | None = None
    choices: tuple[str, ...] = ()
    priority: str | None = None  # WCTP HIGH|NORMAL|LOW, or one of ours
    submitted_at: datetime | None = None
    deliver_after: datetime | None = None
    deliver_before: datetime | None = None
    allow_response: bool = False
    notify_queued: bool = False
    notify_delivered: bool = False
    notify_read: bool = False
    raw: bytes | None = None
    tracking: bool = False
    sender_type: str = "system"
    raised_by: int | None = None


@dataclass
class Outcome:
    message: PagingMessage
    code: int
    text: str
    alert: Alert | None = None
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.code < 300


def _row(page: Page, now: datetime, status: str) -> PagingMessage:
    raw = page.raw if page.raw is None or len(page.raw) <= RAW_KEPT else page.raw[:RAW_KEPT]
    return PagingMessage(
        channel=page.channel, received_at=now, peer=(page.peer or None) and page.peer[:100],
        operation=page.operation, sender_id=page.sender_id[:128] if page.sender_id else None,
        recipient_id=page.recipient_id[:128] if page.recipient_id else None,
        message_id=page.message_id[:32] if page.message_id else None,
        transaction_id=page.transaction_id[:128] if page.transaction_id else None, text=page.text[:MAX_TEXT],
        choices=list(page.choices), priority_in=page.priority, submitted_at=page.submitted_at,
        deliver_after=page.deliver_after, deliver_before=page.deliver_before, allow_response=page.allow_response,
        notify_queued=page.notify_queued, notify_delivered=page.notify_delivered, notify_read=page.notify_read,
        status=status, raw=raw, size=len(page.raw) if page.raw is not None else len(page.text.encode()),
    )


def refuse(*, session: Session, clock: Clock, page: Page, code: int, reason: str) -> Outcome:
    """Keep a refused message with its reason: the feed monitor shows every one (never a silent drop)."""
    row = _row(page, clock.now(), MessageStatus.REFUSED)
    row.error_code, row.error_text = code, reason[:2000]
    _INSERT_MESSAGE.add(session, row)
    PAGING_MESSAGES.labels(page.channel, "refused").inc()
    log.warning("page refused", extra={"channel": page.channel, "sender": page.sender_id,
                                       "recipient": page.recipient_id, "message_id": page.message_id,
                                       "code": code, "reason": reason, "paging_message_id": row.id})
    return Outcome(row, code, reason)


def _lock_message_id(session: Session, sender_id: str, message_id: str) -> None:
    """Two copies of one message at the same moment must not both be routed (SQLite serializes writers)."""
    locks.hold(session, f"paging:{sender_id}:{message_id}")


def find_accepted(*, session: Session, sender_id: str, message_id: str, since: datetime) -> PagingMessage | None:
    message: PagingMessage | None = _ACCEPTED.first(session, {"sender_id": sender_id, "message_id": message_id,
                                                              "since": since})
    return message


def receive_page(*, session: Session, clock: Clock, page: Page) -> Outcome:
    """Record, check, route. The caller authenticated the sender; the caller's unit of work commits."""
    now = clock.now()
    if page.sender_id and page.message_id:
        _lock_message_id(session, page.sender_id, page.message_id)
        earlier = find_accepted(session=session, sender_id=page.sender_id, message_id=page.message_id,
                                since=now - DEDUPE_WINDOW)
        if earlier is not None:
            row = _row(page, now, MessageStatus.DUPLICATE)
            row.alert_id, row.tracking_number = earlier.alert_id, None
            row.error_text = f"repeat of message {earlier.id}: answered again, not routed again"
            _INSERT_MESSAGE.add(session, row)
            PAGING_MESSAGES.labels(page.channel, "duplicate").inc()
            return Outcome(earlier, ACCEPTED, "accepted (a repeat of a message already accepted)", duplicate=True)
    if not page.recipient_id:
        return refuse(session=session, clock=clock, page=page, code=INVALID_RECIPIENT, reason="no recipient")
    if len(page.text) > MAX_TEXT:
        return refuse(session=session, clock=clock, page=page, code=TOO_LONG,
                      reason=f"message of {len(page.text)} characters is over {MAX_TEXT}")
    if page.deliver_before is not None and page.deliver_before <= now:
        return refuse(session=session, clock=clock, page=page, code=EXPIRED,
                      reason=f"deliveryBefore {page.deliver_before:%Y-%m-%d %H:%M:%S} UTC has passed")
    target = find_target(session=session, recipient_id=page.recipient_id)
    if target is None:
        return refuse(session=session, clock=clock, page=page, code=INVALID_RECIPIENT,
                      reason=f"recipient {page.recipient_id[:60]!r} is not a mapped recipient, a virtual pager "
                             f"number or a bed")
    row = _row(page, now, MessageStatus.ACCEPTED)
    if page.tracking:
        row.tracking_number = secrets.token_hex(12)
    _INSERT_MESSAGE.add(session, row)
    PAGING_MESSAGES.labels(page.channel, "accepted").inc()
    if page.deliver_after is not None and page.deliver_after > now:
        row.status = MessageStatus.SCHEDULED
        row.address = target.address
        jobs.schedule(session=session, clock=clock, kind=DELIVER_TIMER, due_at=page.deliver_after,
                      params={"paging_message_id": row.id}, key=f"paging:{row.id}:deliver")
        return Outcome(row, ACCEPTED, f"accepted; held until {page.deliver_after:%Y-%m-%d %H:%M:%S} UTC")
    alert, notes = _route(session, clock, row, target, page)
    return Outcome(row, ACCEPTED, "accepted", alert, notes=notes)


def _priority(rule: PagingRule | None, given: str | None) -> str:
    if rule is not None and rule.priority:
        return rule.priority
    if given in WCTP_PRIORITY:
        return WCTP_PRIORITY[given]
    if given in {p.value for p in Priority}:
        return given
    return Priority.URGENT.value


def _choice_action(choice: str) -> str:
    lowered = choice.lower()
    if any(word in lowered for word in ("reject", "decline", "escalate", "unable", "busy")):
        return alerts.REJECT
    if "call" in lowered:
        return alerts.CALL_BACK
    return alerts.ACCEPT


def _route(session: Session, clock: Clock, row: PagingMessage, target: Target, page: Page) -> tuple[Alert, list[str]]:
    rule = match_rule(session=session, channel=row.channel, sender_id=row.sender_id,
                      recipient_id=target.recipient_id, text=row.text)
    values = {"address": target.address, "recipient": target.recipient_id, "unit": target.unit or "",
              "room": target.room or "", "bed": target.bed or "", "sender": row.sender_id or ""}
    notes: list[str] = []
    address = target.address
    if rule is not None and rule.target:
        try:
            address = fill_template(rule.target, {k: v for k, v in values.items() if v})
        except KeyError as exc:
            notes.append(f"rule {rule.name!r} target needs {{{exc.args[0]}}}, which recipient "
                         f"{target.recipient_id} has not; sent to {target.address}")
    escalation = _escalation(rule, values, notes)
    choices = tuple(rule.choices) if rule is not None and rule.choices else tuple(row.choices) or DEFAULT_CHOICES
    kind = rule.alert_kind if rule is not None else DEFAULT_KIND.get(row.channel, "page")
    first_line = (row.text.strip().splitlines() or [""])[0]
    title = (first_line or f"Page to {target.recipient_id}")[:300]
    where = f" at {target.location}" if target.location else ""
    body = (f"{row.text.strip()}\n\nFrom {row.sender_id or row.channel} ({row.channel}) to {target.recipient_id}"
            f"{' (' + target.label + ')' if target.label else ''}{where}.")[:5000]
    patient_id = None
    if target.unit and target.room and target.bed:
        occupant = patients.patient_in_bed(session=session, unit_code=target.unit, room=target.room, bed=target.bed)
        patient_id = occupant.id if occupant is not None else None
    data: dict[str, Any] = {
        "channel": row.channel, "paging_message_id": row.id, "sender": row.sender_id, "recipient": target.recipient_id,
        "tone": rule.tone if rule is not None else None, "rule": rule.name if rule is not None else None,
        "choice_actions": {c.lower(): _choice_action(c) for c in choices}, "sender_type": page.sender_type,
    }
    if page.raised_by is not None:
        data["raised_by"] = page.raised_by
    priority = _priority(rule, row.priority_in)
    actor = intake_actor(row.channel, row.sender_id)

    def raise_to(candidate: str, plan: dict[str, Any] | None) -> Alert:
        return alerts.raise_alert(session=session, clock=clock, actor=actor, kind=kind, priority=priority, title=title,
                                  body=body, address=candidate, source=row.channel, source_ref=f"paging:{row.id}",
                                  patient_id=patient_id, department_id=target.department_id, location=target.location,
                                  choices=choices, data=data, escalation=plan)

    attempts = list(dict.fromkeys([(address, escalation is not None), (target.address, False),
                                   (DEFAULT_FALLBACK, False)]))
    alert: Alert | None = None
    for tried, (candidate, with_plan) in enumerate(attempts):
        try:
            with session.begin_nested():
                alert = raise_to(candidate, escalation if with_plan else None)
            break
        except CarerelayError as exc:
            if tried == len(attempts) - 1:
                raise
            notes.append(f"routing to {candidate} failed ({exc.message}); trying {attempts[tried + 1][0]}")
            data["routing_note"] = "; ".join(notes)
    assert alert is not None
    _ROUTED.apply(session, row, {"alert_id": alert.id, "rule_id": rule.id if rule else None, "address": alert.address,
                                 "status": MessageStatus.ACCEPTED.value,
                                 "error_text": "; ".join(notes)[:2000] if notes else row.error_text})
    if notes:
        log.warning("page routed with a fallback", extra={"paging_message_id": row.id, "notes": notes})
    return alert, notes


def _escalation(rule: PagingRule | None, values: dict[str, str], notes: list[str]) -> dict[str, Any] | None:
    if rule is None or rule.escalation is None:
        return None
    plan = dict(rule.escalation)
    known = {k: v for k, v in values.items() if v}
    try:
        plan["steps"] = [{**s, "address": s["address"] if s["address"] == TARGET
                          else fill_template(s["address"], known)} for s in plan["steps"]]
        if plan.get("fallback"):
            plan["fallback"] = fill_template(str(plan["fallback"]), known)
    except KeyError as exc:
        notes.append(f"rule {rule.name!r} escalation needs {{{exc.args[0]}}}; the default escalation applies")
        return None
    plan.setdefault("name", f"paging rule {rule.name}")
    plan.setdefault("fallback", DEFAULT_FALLBACK)
    return plan


@jobs.HANDLERS.register(DELIVER_TIMER)
def on_deliver_due(session: Session, clock: Clock, timer: Timer) -> None:
    """deliveryAfter has come: route the held message now (its recipient is looked up again)."""
    row = session.get(PagingMessage, timer.params["paging_message_id"])
    if row is None or row.status != MessageStatus.SCHEDULED or row.recipient_id is None:
        return
    if row.deliver_before is not None and row.deliver_before <= clock.now():
        row.status, row.error_code = MessageStatus.REFUSED, EXPIRED
        row.error_text = f"deliveryBefore {row.deliver_before:%Y-%m-%d %H:%M:%S} UTC passed while it was held"
        log.error("held page expired before delivery", extra={"paging_message_id": row.id})
        return
    target = find_target(session=session, recipient_id=row.recipient_id)
    if target is None:
        row.status, row.error_code = MessageStatus.REFUSED, INVALID_RECIPIENT
        row.error_text = f"recipient {row.recipient_id} was no longer known at delivery time"
        log.error("held page has no recipient any more", extra={"paging_message_id": row.id})
        return
    page = Page(channel=row.channel, recipient_id=row.recipient_id, text=row.text, sender_id=row.sender_id)
    _route(session, clock, row, target, page)


# ------------------------------------------------------------------ the monitor


@dataclass(frozen=True)
class MessageQuery:
    channel: str | None = None
    status: str | None = None
    sender_id: str | None = None
    recipient_id: str | None = None
    message_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search_messages(*, session: Session, clock: Clock, actor: Actor, query: MessageQuery,
                    before_id: int | None = None, limit: int = 100) -> list[PagingMessage]:
    stmt = select(PagingMessage).order_by(PagingMessage.id.desc()).limit(limit)
    for column, value in ((PagingMessage.channel, query.channel), (PagingMessage.status, query.status),
                          (PagingMessage.sender_id, query.sender_id), (PagingMessage.recipient_id, query.recipient_id),
                          (PagingMessage.message_id, query.message_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.since is not None:
        stmt = stmt.where(PagingMessage.received_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(PagingMessage.received_at < query.until)
    if before_id is not None:
        stmt = stmt.where(PagingMessage.id < before_id)
    rows = list(session.execute(stmt).scalars())
    asked = {k: str(v) for k, v in query.__dict__.items() if v is not None}
    audit.record(session=session, clock=clock, actor=actor, action="paging.messages.read", object_type="paging_message",
                 detail={"query": asked, "results": len(rows)})
    return rows


def access_message(*, session: Session, clock: Clock, actor: Actor, message_id: int) -> PagingMessage:
    row = session.get(PagingMessage, message_id)
    if row is None:
        raise NotFound(f"no paging message {message_id}")
    audit.record(session=session, clock=clock, actor=actor, action="paging.message.read", object_type="paging_message",
                 object_id=row.id)
    return row


def purge_messages(*, session: Session, clock: Clock, actor: Actor, older_than_days: int) -> int:
    """Delete monitor rows received more than N days ago (the replies owed about them go with them:
    after a day they are long collected or given up). Alerts and their trails stay; held messages stay."""
    if older_than_days < 1:
        raise Invalid("keep at least one day", field="older_than_days")
    cutoff = clock.now() - timedelta(days=older_than_days)
    result = session.execute(delete(PagingMessage).where(PagingMessage.received_at < cutoff,
                                                         PagingMessage.status != MessageStatus.SCHEDULED))
    deleted = int(result.rowcount)  # type: ignore[attr-defined]
    audit.record(session=session, clock=clock, actor=actor, action="paging.messages.purge",
                 object_type="paging_message", detail={"older_than_days": older_than_days, "deleted": deleted})
    return deleted


def _operator_number(session: Session, number: str) -> str:
    """What an operator typed, or only its digits when those name something and the typing does not
    (a pager number written 555-2000 or (555) 2000)."""
    typed = number.strip()
    digits = re.sub(r"[\s().+-]", "", typed)
    if digits != typed and digits.isdigit() and find_target(session=session, recipient_id=typed) is None:
        return digits
    return typed


def page_from_operator(*, session: Session, clock: Clock, actor: Actor, number: str, text: str,
                       priority: str | None = None) -> Outcome:
    """An operator pages a number (the web's /page, the board's "Page a number", the API): the same
    path as a page from the network, so rules apply and a refused number is kept in the monitor."""
    number = _operator_number(session, number)
    page = Page(channel=Channel.WEB.value, recipient_id=number, text=text, sender_id=actor.username,
                priority=priority, sender_type="operator", raised_by=actor.person_id)
    outcome = receive_page(session=session, clock=clock, page=page)
    audit.record(session=session, clock=clock, actor=actor, action="paging.page", object_type="paging_message",
                 object_id=outcome.message.id, detail={"number": number, "code": outcome.code,
                                                       "alert_id": outcome.alert.id if outcome.alert else None})
    return outcome

