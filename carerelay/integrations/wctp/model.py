"""The WCTP 1.3 element model: reading operations into plain values, checking them against the DTD's
shape and the field limits, and the error codes we answer with.

Reading is tolerant where real gateways differ and strict where the meaning would change:
unknown attributes are ignored, ``wctp-ClientOriginator`` is taken where ``wctp-Originator`` belongs
(some gateways send it), ``wctp-Message`` is taken for ``wctp-MessageText`` inside an MCR, and the
version may be written ``wctp-dtd-v1r3``, ``1.3`` or any older release. Elements in the wrong place,
missing required attributes and out-of-range values are refused with the standard code.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from lxml import etree

from carerelay.integrations.wctp.xml import XmlRefused, local_name, parse_document

# ------------------------------------------------------------------ codes

SUCCESS = 200
UNKNOWN_ERROR = 300
CANNOT_PARSE = 301
XML_VALIDATION = 302
VERSION_NOT_SUPPORTED = 303
OPERATION_NOT_SUPPORTED = 304
INVALID_SENDER = 401
INVALID_SECURITY_CODE = 402
INVALID_RECIPIENT = 403
UNKNOWN_TRACKING = 404
DATE_TIME_FORMAT = 405
EXPIRED = 408
MESSAGE_TOO_LONG = 411
SERVICE_UNAVAILABLE = 600
INTERNAL_ERROR = 604

CODE_TEXT = {
    SUCCESS: "Message accepted",
    UNKNOWN_ERROR: "Unknown error",
    CANNOT_PARSE: "Cannot parse input",
    XML_VALIDATION: "XML validation error",
    VERSION_NOT_SUPPORTED: "Version not supported",
    OPERATION_NOT_SUPPORTED: "Operation not supported",
    INVALID_SENDER: "Invalid senderID",
    INVALID_SECURITY_CODE: "Invalid securityCode",
    INVALID_RECIPIENT: "Invalid recipientID",
    UNKNOWN_TRACKING: "Unknown trackingNumber or messageID",
    DATE_TIME_FORMAT: "Date/time format error",
    EXPIRED: "Message expired (deliveryBefore has passed)",
    MESSAGE_TOO_LONG: "Message too long",
    SERVICE_UNAVAILABLE: "Service temporarily unavailable; send again",
    INTERNAL_ERROR: "Internal error; send again",
}

# ------------------------------------------------------------------ limits and versions

MAX_ID = 128
MAX_MESSAGE_ID = 32
MAX_PAYLOAD = 65_535
MAX_CHOICES = 16

CURRENT_VERSION = "wctp-dtd-v1r3"
VERSIONS = {
    "wctp-dtd-v1r3": "wctp-dtd-v1r3", "1.3": "wctp-dtd-v1r3", "wctp-dtd-v1r3.dtd": "wctp-dtd-v1r3",
    "wctp-dtd-v1r2": "wctp-dtd-v1r2", "1.2": "wctp-dtd-v1r2", "wctp-dtd-v1r2.dtd": "wctp-dtd-v1r2",
    "wctp-dtd-v1r1": "wctp-dtd-v1r1", "1.1": "wctp-dtd-v1r1", "wctp-dtd-v1r1.dtd": "wctp-dtd-v1r1",
    "wctp-dtd-v1r0": "wctp-dtd-v1r0", "wctpv1-0": "wctp-dtd-v1r0", "1.0": "wctp-dtd-v1r0",
}
"""Every spelling of a release we answer; anything else is 303."""

PRIORITIES = ("HIGH", "NORMAL", "LOW")


class WctpError(Exception):
    """A refusal with its WCTP code; ``text`` says what exactly was wrong (it goes back as errorText)."""

    def __init__(self, code: int, text: str | None = None) -> None:
        self.code = code
        self.text = (text or CODE_TEXT.get(code, "Error"))[:500]
        super().__init__(f"{code} {self.text}")


# ------------------------------------------------------------------ plain values


@dataclass(frozen=True)
class Originator:
    sender_id: str
    security_code: str | None = None
    misc_info: str | None = None


@dataclass(frozen=True)
class MessageControl:
    message_id: str | None
    transaction_id: str | None = None
    send_responses_to_id: str | None = None
    allow_response: bool = True
    notify_queued: bool = False
    notify_delivered: bool = False
    notify_read: bool = False
    priority: str = "NORMAL"
    deliver_after: datetime | None = None
    deliver_before: datetime | None = None
    preformatted: bool = False
    allow_truncation: bool = True


@dataclass(frozen=True)
class Payload:
    """``kind`` alphanumeric | mcr | transparent; ``text`` is what a person reads."""

    kind: str
    text: str
    choices: tuple[str, ...] = ()
    data: bytes | None = None
    data_type: str | None = None


@dataclass(frozen=True)
class SubmitRequest:
    originator: Originator
    control: MessageControl
    recipient_id: str
    payload: Payload
    submitted_at: datetime | None = None
    authorization_code: str | None = None
    client: bool = False  # wctp-SubmitClientMessage: answered with a trackingNumber


@dataclass(frozen=True)
class VersionQuery:
    inquirer: str
    date_time: str | None = None


@dataclass(frozen=True)
class Received:
    """A poller's acknowledgement of one message it was given (wctp-MessageReceived)."""

    sequence_no: int
    success: bool
    code: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class PollForMessages:
    poller_id: str
    security_code: str | None
    max_messages: int
    received: tuple[Received, ...] = ()


@dataclass(frozen=True)
class ClientQuery:
    sender_id: str
    recipient_id: str
    tracking_number: str


@dataclass(frozen=True)
class LookupSubscriber:
    originator: Originator
    message_id: str
    recipient_id: str


@dataclass(frozen=True)
class ResponseHeader:
    response_to_message_id: str
    originator: Originator
    message_id: str | None
    recipient_id: str
    responded_at: datetime | None = None


@dataclass(frozen=True)
class StatusInfo:
    """``notification`` QUEUED | DELIVERED | READ, or ``failure`` (code, text)."""

    header: ResponseHeader
    notification: str | None = None
    failure: tuple[int, str] | None = None


@dataclass(frozen=True)
class MessageReply:
    header: ResponseHeader
    payload: Payload
    mcr: bool = False


Operation = (SubmitRequest | VersionQuery | PollForMessages | ClientQuery | LookupSubscriber | StatusInfo
             | MessageReply)


@dataclass(frozen=True)
class Document:
    version: str
    token: str | None
    operation: Operation
    name: str = field(default="")


# ------------------------------------------------------------------ reading


def _children(node: etree._Element) -> list[etree._Element]:
    return [c for c in node if isinstance(c.tag, str)]


def _attr(node: etree._Element, name: str, *, required: bool = False, limit: int = MAX_ID,
          code: int = XML_VALIDATION) -> str | None:
    value = node.get(name)
    if value is None or value.strip() == "":
        if required:
            raise WctpError(XML_VALIDATION, f"{local_name(node)} needs the {name} attribute")
        return None
    value = str(value).strip()
    if len(value) > limit:
        raise WctpError(code, f"{local_name(node)} {name} is longer than {limit} characters")
    return value


def _bool(node: etree._Element, name: str, default: bool) -> bool:
    value = node.get(name)
    if value is None or value.strip() == "":
        return default
    lowered = str(value).strip().lower()
    if lowered not in ("true", "false"):
        raise WctpError(XML_VALIDATION, f"{local_name(node)} {name} must be true or false, not {value[:20]!r}")
    return lowered == "true"


_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(value: str, what: str) -> datetime:
    """WCTP writes ``YYYY-MM-DDThh:mm:ss``. A time without an offset comes back naive: it is in the
    sender's zone, which only the service knows (``localize``)."""
    match = _TIME.match(value.strip())
    if match is None:
        raise WctpError(DATE_TIME_FORMAT, f"{what} {value[:40]!r} is not YYYY-MM-DDThh:mm:ss")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                          int(float(fraction) * 1_000_000) if fraction else 0)
    except ValueError:
        raise WctpError(DATE_TIME_FORMAT, f"{what} {value[:40]!r} is not a real date and time") from None
    if offset is None:
        return moment
    if offset == "Z":
        return moment.replace(tzinfo=UTC)
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    minutes = sign * (int(digits[:2]) * 60 + int(digits[2:]))
    try:
        return moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).astimezone(UTC)
    except ValueError:
        raise WctpError(DATE_TIME_FORMAT, f"{what} {value[:40]!r} has an impossible offset") from None


def localize(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A WCTP time in UTC: naive ones are read in ``zone`` (the sender's)."""
    if moment is None:
        return None
    return (moment.replace(tzinfo=zone) if moment.tzinfo is None else moment).astimezone(UTC)


def _time_attr(node: etree._Element, name: str) -> datetime | None:
    value = node.get(name)
    if value is None or not value.strip():
        return None
    return parse_time(str(value), f"{local_name(node)} {name}")


def _expect(node: etree._Element, names: tuple[str, ...], where: str) -> list[etree._Element]:
    """The children in the DTD's order; a missing, extra or misplaced element is a 302."""
    kids = _children(node)
    found = [local_name(k) for k in kids]
    if found != list(names):
        raise WctpError(XML_VALIDATION, f"{where} must contain {', '.join(names)} in that order "
                                        f"(found {', '.join(found) or 'nothing'})")
    return kids


def _text(node: etree._Element) -> str:
    if _children(node):
        raise WctpError(XML_VALIDATION, f"{local_name(node)} holds text, not elements")
    return node.text or ""


def _originator(node: etree._Element) -> Originator:
    name = local_name(node)
    if name not in ("wctp-Originator", "wctp-ClientOriginator"):
        raise WctpError(XML_VALIDATION, f"expected wctp-Originator, found {name}")
    sender = _attr(node, "senderID", required=True, code=INVALID_SENDER)
    assert sender is not None
    code = _attr(node, "securityCode")
    misc = _attr(node, "miscInfo", limit=255)
    if name == "wctp-ClientOriginator" and code is None:
        code = misc  # transient clients carry their password in miscInfo
    return Originator(sender, code, misc)


def _control(node: etree._Element, *, message_id_required: bool) -> MessageControl:
    priority = (node.get("deliveryPriority") or "NORMAL").strip().upper()
    if priority not in PRIORITIES:
        raise WctpError(XML_VALIDATION, f"deliveryPriority must be HIGH, NORMAL or LOW, not {priority[:20]!r}")
    return MessageControl(
        message_id=_attr(node, "messageID", required=message_id_required, limit=MAX_MESSAGE_ID),
        transaction_id=_attr(node, "transactionID"),
        send_responses_to_id=_attr(node, "sendResponsesToID"),
        allow_response=_bool(node, "allowResponse", True),
        notify_queued=_bool(node, "notifyWhenQueued", False),
        notify_delivered=_bool(node, "notifyWhenDelivered", False),
        notify_read=_bool(node, "notifyWhenRead", False),
        priority=priority,
        deliver_after=_time_attr(node, "deliveryAfter"),
        deliver_before=_time_attr(node, "deliveryBefore"),
        preformatted=_bool(node, "preformatted", False),
        allow_truncation=_bool(node, "allowTruncation", True),
    )


def _recipient(node: etree._Element) -> tuple[str, str | None]:
    if local_name(node) != "wctp-Recipient":
        raise WctpError(XML_VALIDATION, f"expected wctp-Recipient, found {local_name(node)}")
    recipient = _attr(node, "recipientID", required=True, code=INVALID_RECIPIENT)
    assert recipient is not None
    return recipient, _attr(node, "authorizationCode")


def _check_length(text: str) -> str:
    if len(text) > MAX_PAYLOAD:
        raise WctpError(MESSAGE_TOO_LONG, f"payload of {len(text)} characters is over {MAX_PAYLOAD}")
    return text


def _payload(node: etree._Element) -> Payload:
    if local_name(node) != "wctp-Payload":
        raise WctpError(XML_VALIDATION, f"expected wctp-Payload, found {local_name(node)}")
    kids = _children(node)
    if len(kids) != 1:
        raise WctpError(XML_VALIDATION, "wctp-Payload holds exactly one of wctp-Alphanumeric, wctp-MCR, "
                                        "wctp-TransparentData")
    body = kids[0]
    kind = local_name(body)
    if kind == "wctp-Alphanumeric":
        return Payload("alphanumeric", _check_length(_text(body)))
    if kind == "wctp-TransparentData":
        return _transparent(body)
    if kind == "wctp-MCR":
        return _mcr(body)
    raise WctpError(XML_VALIDATION, f"unknown payload {kind}")


def _transparent(node: etree._Element) -> Payload:
    encoding = (node.get("encoding") or "base64").strip().lower()
    raw = _text(node)
    if encoding == "base64":
        try:
            data = base64.b64decode("".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            raise WctpError(XML_VALIDATION, "wctp-TransparentData is not valid base64") from None
    elif encoding == "standard":
        data = raw.encode("utf-8")
    else:
        raise WctpError(XML_VALIDATION, f"wctp-TransparentData encoding must be base64 or standard, not "
                                        f"{encoding[:20]!r}")
    if len(data) > MAX_PAYLOAD:
        raise WctpError(MESSAGE_TOO_LONG, f"transparent data of {len(data)} bytes is over {MAX_PAYLOAD}")
    text = data.decode("utf-8", errors="replace")
    return Payload("transparent", text, data=data, data_type=(node.get("type") or "OPAQUE").strip()[:20])


def _mcr(node: etree._Element) -> Payload:
    kids = _children(node)
    if not kids or local_name(kids[0]) not in ("wctp-MessageText", "wctp-Message"):
        raise WctpError(XML_VALIDATION, "wctp-MCR starts with wctp-MessageText")
    text = _check_length(_text(kids[0]))
    choices: list[str] = []
    for kid in kids[1:]:
        name = local_name(kid)
        if name == "wctp-Choice":
            choice = _text(kid).strip()
        elif name == "wctp-ChoicePair":
            pair = _children(kid)
            if not pair or local_name(pair[0]) != "wctp-SendChoice" or len(pair) > 2 or (
                    len(pair) == 2 and local_name(pair[1]) != "wctp-ReplyChoice"):
                raise WctpError(XML_VALIDATION, "wctp-ChoicePair holds wctp-SendChoice, then wctp-ReplyChoice")
            choice = _text(pair[0]).strip()
        else:
            raise WctpError(XML_VALIDATION, f"wctp-MCR holds wctp-Choice or wctp-ChoicePair, not {name}")
        if not choice or len(choice) > 40:
            raise WctpError(XML_VALIDATION, "each choice has 1 to 40 characters")
        choices.append(choice)
    if not choices:
        raise WctpError(XML_VALIDATION, "wctp-MCR needs at least one choice")
    if len(choices) > MAX_CHOICES:
        raise WctpError(XML_VALIDATION, f"at most {MAX_CHOICES} choices")
    return Payload("mcr", text, tuple(choices))


def _submit(node: etree._Element, *, client: bool) -> SubmitRequest:
    header_name = "wctp-SubmitClientHeader" if client else "wctp-SubmitHeader"
    header, payload = _expect(node, (header_name, "wctp-Payload"), local_name(node))
    parts = _children(header)
    if client and len(parts) == 2:  # wctp-ClientMessageControl is optional
        originator_node, recipient_node = parts
        control = MessageControl(message_id=None)
    elif len(parts) == 3:
        originator_node, control_node, recipient_node = parts
        want = "wctp-ClientMessageControl" if client else "wctp-MessageControl"
        if local_name(control_node) not in (want, "wctp-MessageControl"):
            raise WctpError(XML_VALIDATION, f"{header_name} holds an originator, {want}, then wctp-Recipient "
                                            f"(found {local_name(control_node)} second)")
        control = _control(control_node, message_id_required=not client)
    else:
        raise WctpError(XML_VALIDATION, f"{header_name} holds an originator, a message control and a recipient")
    recipient, authorization = _recipient(recipient_node)
    return SubmitRequest(originator=_originator(originator_node), control=control, recipient_id=recipient,
                         payload=_payload(payload), submitted_at=_time_attr(header, "submitTimestamp"),
                         authorization_code=authorization, client=client)


def _poll(node: etree._Element) -> PollForMessages:
    poller = _attr(node, "pollerID", required=True, code=INVALID_SENDER)
    assert poller is not None
    batch_text = (node.get("maxMessagesInBatch") or "10").strip()
    if not batch_text.isdigit():
        raise WctpError(XML_VALIDATION, "maxMessagesInBatch must be a number")
    received = []
    for kid in _children(node):
        if local_name(kid) != "wctp-MessageReceived":
            raise WctpError(XML_VALIDATION, f"wctp-PollForMessages holds wctp-MessageReceived, not {local_name(kid)}")
        seq = (kid.get("sequenceNo") or "").strip()
        if not seq.isdigit() or len(seq) > 18:
            raise WctpError(XML_VALIDATION, "wctp-MessageReceived needs a numeric sequenceNo")
        [outcome] = _expect_one(kid, ("wctp-Success", "wctp-Failure"))
        ok = local_name(outcome) == "wctp-Success"
        code = outcome.get("successCode" if ok else "errorCode")
        received.append(Received(int(seq), ok, int(code) if code and code.strip().isdigit() else None,
                                 outcome.get("successText" if ok else "errorText")))
    return PollForMessages(poller, _attr(node, "securityCode"), max(1, min(100, int(batch_text))),
                           tuple(received))


def _expect_one(node: etree._Element, names: tuple[str, ...]) -> list[etree._Element]:
    kids = _children(node)
    if len(kids) != 1 or local_name(kids[0]) not in names:
        raise WctpError(XML_VALIDATION, f"{local_name(node)} holds one of {', '.join(names)}")
    return kids


def _response_header(node: etree._Element) -> ResponseHeader:
    if local_name(node) != "wctp-ResponseHeader":
        raise WctpError(XML_VALIDATION, f"expected wctp-ResponseHeader, found {local_name(node)}")
    originator_node, control_node, recipient_node = _expect(
        node, ("wctp-Originator", "wctp-MessageControl", "wctp-Recipient"), "wctp-ResponseHeader")
    response_to = _attr(node, "responseToMessageID", required=True, limit=MAX_MESSAGE_ID)
    assert response_to is not None
    recipient, _ = _recipient(recipient_node)
    return ResponseHeader(response_to, _originator(originator_node),
                          _attr(control_node, "messageID", limit=MAX_MESSAGE_ID), recipient,
                          _time_attr(node, "responseTimestamp"))


def _status_info(node: etree._Element) -> StatusInfo:
    kids = _children(node)
    if len(kids) != 2:
        raise WctpError(XML_VALIDATION, "wctp-StatusInfo holds wctp-ResponseHeader, then wctp-Notification or "
                                        "wctp-Failure")
    header = _response_header(kids[0])
    detail = kids[1]
    if local_name(detail) == "wctp-Notification":
        kind = (detail.get("type") or "").strip().upper()
        if kind not in ("QUEUED", "DELIVERED", "READ"):
            raise WctpError(XML_VALIDATION, "wctp-Notification type is QUEUED, DELIVERED or READ")
        return StatusInfo(header, notification=kind)
    if local_name(detail) == "wctp-Failure":
        code = (detail.get("errorCode") or "").strip()
        return StatusInfo(header, failure=(int(code) if code.isdigit() else UNKNOWN_ERROR,
                                           (detail.get("errorText") or detail.text or "")[:500]))
    raise WctpError(XML_VALIDATION, f"wctp-StatusInfo holds wctp-Notification or wctp-Failure, not "
                                    f"{local_name(detail)}")


def _message_reply(node: etree._Element) -> MessageReply:
    header, payload = _expect(node, ("wctp-ResponseHeader", "wctp-Payload"), "wctp-MessageReply")
    return MessageReply(_response_header(header), _payload(payload), _bool(node, "MCRMessageReply", False))


def _lookup(node: etree._Element) -> LookupSubscriber:
    originator, control, recipient = _expect(
        node, ("wctp-Originator", "wctp-LookupMessageControl", "wctp-Recipient"), "wctp-LookupSubscriber")
    message_id = _attr(control, "messageID", required=True, limit=MAX_MESSAGE_ID)
    assert message_id is not None
    return LookupSubscriber(_originator(originator), message_id, _recipient(recipient)[0])


def _client_query(node: etree._Element) -> ClientQuery:
    values = [_attr(node, name, required=True) for name in ("senderID", "recipientID", "trackingNumber")]
    sender, recipient, tracking = (v or "" for v in values)
    if _children(node):
        raise WctpError(XML_VALIDATION, "wctp-ClientQuery is empty")
    return ClientQuery(sender, recipient, tracking)


def _version_query(node: etree._Element) -> VersionQuery:
    inquirer = _attr(node, "inquirer", required=True)
    assert inquirer is not None
    return VersionQuery(inquirer, _attr(node, "dateTime", limit=40))


READERS: dict[str, Callable[[etree._Element], Operation]] = {
    "wctp-SubmitRequest": lambda n: _submit(n, client=False),
    "wctp-SubmitClientMessage": lambda n: _submit(n, client=True),
    "wctp-VersionQuery": _version_query,
    "wctp-PollForMessages": _poll,
    "wctp-ClientQuery": _client_query,
    "wctp-LookupSubscriber": _lookup,
    "wctp-StatusInfo": _status_info,
    "wctp-MessageReply": _message_reply,
}
KNOWN_OPERATIONS = {"wctp-ClientQueryResponse", "wctp-Confirmation", "wctp-LookupResponse", "wctp-DeviceLocation",
                    "wctp-DeviceLocationResponse", "wctp-PollResponse", "wctp-ReturnToSvc", "wctp-SendMsgMulti",
                    "wctp-SendMsgMultiResponse", "wctp-SubmitClientResponse", "wctp-VersionResponse", *READERS}


def operation_name(raw: bytes, *, max_bytes: int) -> str | None:
    """The operation a document names, for logging a refusal; None when unreadable."""
    try:
        root = parse_document(raw, max_bytes=max_bytes)
    except XmlRefused:
        return None
    kids = _children(root)
    return local_name(kids[0]) if kids else None


def read_document(raw: bytes, *, max_bytes: int) -> Document:
    """Parse and check one wctp-Operation. Raises ``WctpError`` with the code to answer."""
    try:
        root = parse_document(raw, max_bytes=max_bytes)
    except XmlRefused as exc:
        raise WctpError(exc.code, exc.text) from None
    if local_name(root) != "wctp-Operation":
        raise WctpError(XML_VALIDATION, f"the root element is {local_name(root)}, not wctp-Operation")
    declared = (root.get("wctpVersion") or "").strip()
    if not declared:
        raise WctpError(XML_VALIDATION, "wctp-Operation needs the wctpVersion attribute")
    version = VERSIONS.get(declared.lower())
    if version is None:
        raise WctpError(VERSION_NOT_SUPPORTED, f"wctpVersion {declared[:40]!r} is not supported; we speak "
                                               f"wctp-dtd-v1r3 (1.3) and the releases before it")
    kids = _children(root)
    if len(kids) != 1:
        raise WctpError(XML_VALIDATION, "wctp-Operation holds exactly one operation")
    name = local_name(kids[0])
    reader = READERS.get(name)
    if reader is None:
        if name in KNOWN_OPERATIONS:
            raise WctpError(OPERATION_NOT_SUPPORTED, f"{name} is not supported here")
        raise WctpError(XML_VALIDATION, f"unknown operation {name}")
    return Document(version, _attr(root, "wctpToken"), reader(kids[0]), name)


def read_element(node: etree._Element) -> Operation:
    """One operation element found inside another (a poll answer's wctp-Message)."""
    reader = READERS.get(local_name(node))
    if reader is None:
        raise WctpError(OPERATION_NOT_SUPPORTED, f"{local_name(node)} is not supported here")
    return reader(node)
