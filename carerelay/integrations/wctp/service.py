"""The WCTP server's operations: one request in, one answer out, never an exception for what the
sender got wrong.

- SubmitRequest / SubmitClientMessage: sender and security code checked, the message handed to the
  paging intake (which records it, maps its recipient, applies the rules and raises the alert);
  StatusInfo QUEUED owed at once when asked for.
- PollForMessages: acknowledgements taken, then what waits for the poller handed out.
- ClientQuery: what waits for one tracking number.
- LookupSubscriber: whether a recipient id means anything here.
- StatusInfo / MessageReply *to* us: a paging carrier reporting on a page we sent through it.
- VersionQuery: the releases we speak.

Every refusal is kept in the feed monitor with its code and reason (paging.refuse).
The alert hooks at the bottom turn a clinician's answer into a MessageReply and a device's
delivered/read into StatusInfo, through the outbox (sent after commit).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import CarerelayError
from carerelay.directory.models import Person
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.models import Channel, PagingMessage
from carerelay.integrations.wctp import build, outbox
from carerelay.integrations.wctp.gateways import Gateway
from carerelay.integrations.wctp.model import (
    CANNOT_PARSE,
    INVALID_RECIPIENT,
    INVALID_SENDER,
    SUCCESS,
    UNKNOWN_TRACKING,
    ClientQuery,
    Document,
    LookupSubscriber,
    MessageReply,
    PollForMessages,
    StatusInfo,
    SubmitRequest,
    VersionQuery,
    WctpError,
    localize,
    operation_name,
    read_document,
)
from carerelay.notifications import service as notifications

log = logging.getLogger("carerelay.wctp")

CHANNEL = Channel.WCTP.value
CLIENT_QUERY_WINDOW = timedelta(days=7)
_SECRETS = re.compile(rb"""\b(securityCode|wctpToken|authorizationCode)(\s*=\s*)("[^"]*"|'[^']*')""")
_CLIENT_PASSWORD = re.compile(rb"""(<wctp-ClientOriginator\b[^>]*\bmiscInfo\s*=\s*)("[^"]*"|'[^']*')""")


def redact(raw: bytes) -> bytes:
    """What the feed monitor keeps of a request: everything but the codes senders authenticate with."""
    return _CLIENT_PASSWORD.sub(rb'\1"***"', _SECRETS.sub(rb'\1\2"***"', raw))


@dataclass(frozen=True)
class ServerConfig:
    responder: str = "carerelay"
    max_bytes: int = 1024 * 1024
    poll_interval: int = 5
    gateways: tuple[Gateway, ...] = ()


@dataclass(frozen=True)
class Answer:
    body: bytes
    code: int
    operation: str | None = None
    paging_message_id: int | None = None


def handle_request(*, session: Session, clock: Clock, raw: bytes, peer: str | None, config: ServerConfig,
                   declared_size: int | None = None) -> Answer:
    """``declared_size``: the body was over the limit and was not read further (it is refused unparsed)."""
    try:
        if declared_size is not None:
            raise WctpError(CANNOT_PARSE, f"request of {declared_size} bytes is over the {config.max_bytes}-byte "
                                          f"limit")
        document = read_document(raw, max_bytes=config.max_bytes)
    except WctpError as exc:
        name = operation_name(raw, max_bytes=config.max_bytes) if declared_size is None else None
        text = exc.text
        refused = paging.refuse(session=session, clock=clock, code=exc.code, reason=text,
                                page=paging.Page(channel=CHANNEL, recipient_id=None, text="", peer=peer,
                                                 operation=name, raw=redact(raw)))
        return Answer(build.confirmation(exc.code, None, detail=text), exc.code, name, refused.message.id)
    op = document.operation
    if isinstance(op, SubmitRequest):
        return _submit(session, clock, document, op, raw, peer)
    if isinstance(op, PollForMessages):
        return _poll(session, clock, document, op, peer, config)
    if isinstance(op, VersionQuery):
        body = build.version_response(responder=config.responder, inquirer=op.inquirer, asked_at=op.date_time,
                                      now=clock.now(), version=document.version)
        return Answer(body, SUCCESS, document.name)
    if isinstance(op, ClientQuery):
        return _client_query(session, clock, document, op, peer)
    if isinstance(op, LookupSubscriber):
        return _lookup(session, clock, document, op, peer)
    assert isinstance(op, StatusInfo | MessageReply)
    return _report(session, clock, document, op, raw, peer, config)


def _refused(session: Session, clock: Clock, document: Document, peer: str | None, raw: bytes | None, code: int,
             reason: str, *, sender: str | None = None, recipient: str | None = None,
             message_id: str | None = None) -> int:
    return paging.refuse(session=session, clock=clock, code=code, reason=reason, page=paging.Page(
        channel=CHANNEL, recipient_id=recipient, text="", sender_id=sender, peer=peer, operation=document.name,
        message_id=message_id, raw=redact(raw) if raw is not None else None)).message.id


# ------------------------------------------------------------------ submit


def _submit(session: Session, clock: Clock, document: Document, op: SubmitRequest, raw: bytes,
            peer: str | None) -> Answer:
    code_given = op.originator.security_code or document.token
    sender, code, reason = paging.check_sender(session=session, sender_id=op.originator.sender_id,
                                               security_code=code_given, channel=CHANNEL)
    zone = paging.sender_zone(sender)
    control = op.control
    page = paging.Page(
        channel=CHANNEL, recipient_id=op.recipient_id, text=op.payload.text, sender_id=op.originator.sender_id,
        peer=peer, operation=document.name, message_id=control.message_id, transaction_id=control.transaction_id,
        choices=op.payload.choices, priority=control.priority, submitted_at=localize(op.submitted_at, zone),
        deliver_after=localize(control.deliver_after, zone), deliver_before=localize(control.deliver_before, zone),
        allow_response=control.allow_response, notify_queued=control.notify_queued,
        notify_delivered=control.notify_delivered, notify_read=control.notify_read, raw=redact(raw),
        tracking=op.client)
    if sender is None:
        outcome = paging.refuse(session=session, clock=clock, page=page, code=code, reason=reason)
    else:
        outcome = paging.receive_page(session=session, clock=clock, page=page)
        if outcome.accepted and not outcome.duplicate and control.notify_queued:
            outbox.enqueue(session=session, clock=clock, message=outcome.message, kind="status",
                           notification="QUEUED")
    if op.client:
        body = build.submit_client_response(outcome.code, outcome.text, outcome.message.tracking_number,
                                            version=document.version)
    else:
        body = build.confirmation(outcome.code, None, detail=outcome.text, version=document.version)
    return Answer(body, outcome.code, document.name, outcome.message.id)


# ------------------------------------------------------------------ polling and queries


def _poll(session: Session, clock: Clock, document: Document, op: PollForMessages, peer: str | None,
          config: ServerConfig) -> Answer:
    sender, code, reason = paging.check_sender(session=session, sender_id=op.poller_id,
                                               security_code=op.security_code or document.token, channel=CHANNEL)
    if sender is None:
        refused = _refused(session, clock, document, peer, None, code, reason, sender=op.poller_id)
        return Answer(build.poll_response([], failure=(code, reason), version=document.version), code,
                      document.name, refused)
    outbox.acknowledge(session=session, clock=clock, sender_id=sender.sender_id, received=op.received)
    rows = outbox.hand_out(session=session, clock=clock, sender_id=sender.sender_id, limit=op.max_messages)
    body = build.poll_response([(r.id, outbox.element_of(r)) for r in rows], min_next_poll=config.poll_interval,
                               version=document.version)
    return Answer(body, SUCCESS, document.name)


def _client_query(session: Session, clock: Clock, document: Document, op: ClientQuery, peer: str | None) -> Answer:
    """The tracking number is the capability (it is random); a sender's own messageID works too."""
    message = session.execute(select(PagingMessage).where(PagingMessage.tracking_number == op.tracking_number)
                              ).scalar_one_or_none()
    if message is None:
        message = paging.find_accepted(session=session, sender_id=op.sender_id, message_id=op.tracking_number,
                                       since=clock.now() - CLIENT_QUERY_WINDOW)
    if message is None or message.sender_id != op.sender_id:
        reason = f"no message with trackingNumber {op.tracking_number[:40]!r} from {op.sender_id[:40]!r}"
        _refused(session, clock, document, peer, None, UNKNOWN_TRACKING, reason, sender=op.sender_id,
                 recipient=op.recipient_id)
        return Answer(build.client_query_response([], failure=(UNKNOWN_TRACKING, reason), version=document.version),
                      UNKNOWN_TRACKING, document.name)
    rows = outbox.waiting_for(session=session, clock=clock, message_id=message.id)
    body = build.client_query_response([outbox.element_of(r) for r in rows], version=document.version)
    return Answer(body, SUCCESS, document.name, message.id)


def _lookup(session: Session, clock: Clock, document: Document, op: LookupSubscriber, peer: str | None) -> Answer:
    sender, code, reason = paging.check_sender(session=session, sender_id=op.originator.sender_id,
                                               security_code=op.originator.security_code or document.token,
                                               channel=CHANNEL)
    found = sender is not None and paging.find_target(session=session, recipient_id=op.recipient_id) is not None
    failure = None
    if sender is None:
        failure = (code, reason)
    elif not found:
        failure = (INVALID_RECIPIENT, f"recipient {op.recipient_id[:60]!r} is not known here")
    if failure is not None:
        _refused(session, clock, document, peer, None, failure[0], failure[1], sender=op.originator.sender_id,
                 recipient=op.recipient_id, message_id=op.message_id)
    body = build.lookup_response(response_to=op.message_id, originator=op.recipient_id,
                                 recipient=op.originator.sender_id, found=found, max_length=paging.MAX_TEXT,
                                 failure=failure, version=document.version)
    return Answer(body, failure[0] if failure else SUCCESS, document.name)


# ------------------------------------------------------------------ carriers reporting on our pages


def _report(session: Session, clock: Clock, document: Document, op: StatusInfo | MessageReply, raw: bytes,
            peer: str | None, config: ServerConfig) -> Answer:
    """A carrier tells us about a page we sent (responseToMessageID is our CR<delivery id>)."""
    header = op.header
    delivery = None
    if header.response_to_message_id.startswith("CR") and header.response_to_message_id[2:].isdigit():
        delivery = notifications.find_delivery(session=session, delivery_id=int(header.response_to_message_id[2:]))
    gateway = next((g for g in config.gateways if g.sender_id == header.recipient_id), None)
    pager_id = delivery.address.partition("@")[0] if delivery is not None else None
    problem = None
    if delivery is None or delivery.channel != "pager":
        problem = (UNKNOWN_TRACKING, f"no page of ours with messageID {header.response_to_message_id[:40]!r}")
    elif gateway is None:
        problem = (INVALID_RECIPIENT, f"{header.recipient_id[:60]!r} is not one of our gateway sender ids")
    elif header.originator.sender_id != pager_id:
        problem = (INVALID_SENDER, f"{header.originator.sender_id[:40]!r} is not the pager that page went to")
    elif gateway.inbound_security_code and header.originator.security_code != gateway.inbound_security_code:
        problem = (402, "wrong security code for this gateway")
    if problem is not None:
        ref = _refused(session, clock, document, peer, raw, problem[0], problem[1],
                       sender=header.originator.sender_id, recipient=header.recipient_id,
                       message_id=header.response_to_message_id)
        return Answer(build.confirmation(problem[0], None, detail=problem[1], version=document.version), problem[0],
                      document.name, ref)
    assert delivery is not None and gateway is not None
    apply_report(session=session, clock=clock, delivery_id=delivery.id, report=op, gateway=gateway.name)
    return Answer(build.confirmation(SUCCESS, "Report received", version=document.version), SUCCESS, document.name)


def apply_report(*, session: Session, clock: Clock, delivery_id: int, report: StatusInfo | MessageReply,
                 gateway: str) -> None:
    """The trail learns what the pager did; a reply the alert offers as a choice answers the alert
    as the pager's holder (accept, reject, call back — the same closed loop as the app)."""
    delivery = notifications.find_delivery(session=session, delivery_id=delivery_id)
    if delivery is None or delivery.alert_id is None:
        return
    if isinstance(report, StatusInfo):
        kind = f"pager_{report.notification.lower()}" if report.notification else "pager_failed"
        alerts.note(session=session, clock=clock, alert_id=delivery.alert_id, kind=kind, person_id=delivery.person_id,
                    gateway=gateway, delivery_id=delivery.id,
                    **({"error": f"{report.failure[0]} {report.failure[1]}"} if report.failure else {}))
        return
    text = report.payload.text.strip()
    alerts.note(session=session, clock=clock, alert_id=delivery.alert_id, kind="pager_reply",
                person_id=delivery.person_id, gateway=gateway, delivery_id=delivery.id, text=text[:500])
    person = session.get(Person, delivery.person_id) if delivery.person_id else None
    if person is None:
        return
    actor = Actor(person_id=person.id, username=person.username, roles=person.role_names)
    try:
        with session.begin_nested():
            alerts.respond(session=session, clock=clock, actor=actor, alert_id=delivery.alert_id, choice=text)
    except CarerelayError as exc:
        alerts.note(session=session, clock=clock, alert_id=delivery.alert_id, kind="pager_reply_unused",
                    person_id=person.id, reason=exc.message)


# ------------------------------------------------------------------ hooks: clinicians answering


def _message_of(session: Session, alert: Alert) -> PagingMessage | None:
    message_id = alert.data.get("paging_message_id")
    return session.get(PagingMessage, message_id) if message_id is not None else None


def _responder(session: Session, person_id: int) -> str | None:
    person = session.get(Person, person_id)
    return f"{person.display_name} ({person.username})"[:255] if person is not None else None


def _seen(session: Session, clock: Clock, message: PagingMessage, person_id: int, state: str) -> None:
    """DELIVERED once (the first device), READ once (the first person to open it), each if asked for."""
    now = clock.now()
    if message.delivered_at is None:
        message.delivered_at = now
        if message.notify_delivered:
            outbox.enqueue(session=session, clock=clock, message=message, kind="status", notification="DELIVERED",
                           person_id=person_id, responder=_responder(session, person_id))
    if state == "read" and message.read_at is None:
        message.read_at = now
        if message.notify_read:
            outbox.enqueue(session=session, clock=clock, message=message, kind="status", notification="READ",
                           person_id=person_id, responder=_responder(session, person_id))


@alerts.on_receipt(CHANNEL)
def _device_receipt(session: Session, clock: Clock, alert: Alert, person_id: int, state: str) -> None:
    message = _message_of(session, alert)
    if message is not None:
        _seen(session, clock, message, person_id, state)


@alerts.on_response(CHANNEL)
def _clinician_answered(session: Session, clock: Clock, alert: Alert, person_id: int, choice: str) -> None:
    """An answer implies the alert was delivered and read; the choice goes back as a MessageReply."""
    message = _message_of(session, alert)
    if message is None:
        return
    _seen(session, clock, message, person_id, "read")
    if message.allow_response:
        outbox.enqueue(session=session, clock=clock, message=message, kind="reply", reply_text=choice,
                       person_id=person_id, responder=_responder(session, person_id))
