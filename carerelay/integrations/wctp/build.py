"""Writing WCTP 1.3 documents: the answers our server gives and the requests our client sends.

Everything is built as elements and serialized by lxml, so attribute values and text are escaped;
characters XML 1.0 cannot carry (most control characters) are dropped rather than failing the
answer. Times go out in UTC as ``YYYY-MM-DDThh:mm:ss``, the form every gateway reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from carerelay.integrations.wctp.model import CODE_TEXT, CURRENT_VERSION, SUCCESS

DOCTYPE = '<!DOCTYPE wctp-Operation SYSTEM "http://www.wctp.org/release/wctp-dtd-v1r3.dtd">'
SUPPORTED = ("wctp-dtd-v1r3", "wctp-dtd-v1r2", "wctp-dtd-v1r1", "wctp-dtd-v1r0")

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _el(tag: str, parent: etree._Element | None = None, text: str | None = None,
        **attrs: str | None) -> etree._Element:
    values = {k: clean(v) for k, v in attrs.items() if v is not None}
    node = etree.Element(tag, values) if parent is None else etree.SubElement(parent, tag, values)
    if text is not None:
        node.text = clean(text)
    return node


def operation(body: etree._Element, *, version: str = CURRENT_VERSION, token: str | None = None) -> bytes:
    root = _el("wctp-Operation", wctpVersion=version, wctpToken=token)
    root.append(body)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=DOCTYPE))


def outcome(code: int, text: str | None, parent: etree._Element | None = None,
            detail: str | None = None) -> etree._Element:
    """wctp-Success (code below 300) or wctp-Failure, with the standard text when none is given."""
    words = text or CODE_TEXT.get(code, "")
    if code < 300:
        return _el("wctp-Success", parent, detail, successCode=str(code), successText=words)
    return _el("wctp-Failure", parent, detail, errorCode=str(code), errorText=words)


def confirmation(code: int = SUCCESS, text: str | None = None, *, detail: str | None = None,
                 version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-Confirmation")
    outcome(code, text, body, detail)
    return operation(body, version=version)


def submit_client_response(code: int, text: str | None, tracking_number: str | None, *,
                           version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-SubmitClientResponse")
    if code < 300 and tracking_number:
        _el("wctp-ClientSuccess", body, successCode=str(code), successText=text or CODE_TEXT[SUCCESS],
            trackingNumber=tracking_number)
    else:
        outcome(code, text, body)
    return operation(body, version=version)


def version_response(*, responder: str, inquirer: str, asked_at: str | None, now: datetime,
                     contact: str | None = None, version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-VersionResponse", responder=responder, inquirer=inquirer, dateTimeOfReq=asked_at,
               dateTimeOfRsp=stamp(now))
    if contact:
        _el("wctp-ContactInfo", body, info=contact)
    for name in SUPPORTED:
        _el("wctp-DTDSupport", body, dtdName=name, supportType="Supported")
    return operation(body, version=version)


@dataclass(frozen=True)
class Header:
    """A wctp-ResponseHeader: who answers (``originator``), about which message, to whom."""

    response_to: str
    originator: str
    message_id: str
    recipient: str
    responded_at: datetime
    responding_to_at: datetime | None = None
    security_code: str | None = None
    misc_info: str | None = None


def _header(parent: etree._Element, header: Header) -> None:
    node = _el("wctp-ResponseHeader", parent, responseToMessageID=header.response_to,
               responseTimestamp=stamp(header.responded_at),
               respondingToTimestamp=stamp(header.responding_to_at) if header.responding_to_at else None)
    _el("wctp-Originator", node, senderID=header.originator, securityCode=header.security_code,
        miscInfo=header.misc_info)
    _el("wctp-MessageControl", node, messageID=header.message_id)
    _el("wctp-Recipient", node, recipientID=header.recipient)


def status_info(header: Header, *, notification: str | None = None,
                failure: tuple[int, str] | None = None) -> etree._Element:
    node = _el("wctp-StatusInfo")
    _header(node, header)
    if failure is not None:
        outcome(failure[0], failure[1], node)
    else:
        _el("wctp-Notification", node, type=notification or "DELIVERED")
    return node


def message_reply(header: Header, text: str, *, mcr: bool) -> etree._Element:
    node = _el("wctp-MessageReply", MCRMessageReply="true" if mcr else "false")
    _header(node, header)
    payload = _el("wctp-Payload", node)
    _el("wctp-Alphanumeric", payload, text)
    return node


def poll_response(messages: Sequence[tuple[int, etree._Element]], *, failure: tuple[int, str] | None = None,
                  min_next_poll: int | None = None, version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-PollResponse", minNextPollInterval=str(min_next_poll) if min_next_poll else None)
    if failure is not None:
        outcome(failure[0], failure[1], body)
    elif not messages:
        _el("wctp-NoMessages", body)
    for seq, element in messages if failure is None else ():
        holder = _el("wctp-Message", body, sequenceNo=str(seq))
        holder.append(element)
    return operation(body, version=version)


def client_query_response(items: Sequence[etree._Element], *, failure: tuple[int, str] | None = None,
                          version: str = CURRENT_VERSION) -> bytes:
    """Each item a wctp-StatusInfo or wctp-MessageReply, re-dressed as its Client* counterpart."""
    body = _el("wctp-ClientQueryResponse")
    if failure is not None:
        outcome(failure[0], failure[1], body)
    elif not items:
        _el("wctp-NoMessages", body)
    for item in items if failure is None else ():
        holder = _el("wctp-ClientMessage", body)
        holder.append(_as_client(item))
    return operation(body, version=version)


def _as_client(item: etree._Element) -> etree._Element:
    name = "wctp-ClientStatusInfo" if item.tag == "wctp-StatusInfo" else "wctp-ClientMessageReply"
    node = _el(name)
    if name == "wctp-ClientMessageReply":
        node.set("MCRMessageReply", item.get("MCRMessageReply", "false"))
    header = item.find("wctp-ResponseHeader")
    assert header is not None
    client_header = _el("wctp-ClientResponseHeader", node, responseTimestamp=header.get("responseTimestamp"),
                        respondingToTimestamp=header.get("respondingToTimestamp"))
    for tag in ("wctp-Originator", "wctp-Recipient"):
        found = header.find(tag)
        if found is not None:
            client_header.append(_copy(found))
    for child in item:
        if child.tag != "wctp-ResponseHeader":
            node.append(_copy(child))
    return node


def _copy(node: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(node))


def lookup_response(*, response_to: str, originator: str, recipient: str, found: bool, max_length: int,
                    failure: tuple[int, str] | None = None, version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-LookupResponse", responseToMessageID=response_to)
    _el("wctp-Originator", body, senderID=originator)
    _el("wctp-Recipient", body, recipientID=recipient)
    if found and failure is None:
        _el("wctp-LookupData", body, maxMessageLength=str(max_length), mcrSupported="true", canRespond="true")
    else:
        code, text = failure or (403, None)
        outcome(code, text, body)
    return operation(body, version=version)


# ------------------------------------------------------------------ what our client sends


def submit_request(*, sender_id: str, security_code: str | None, recipient_id: str, message_id: str, text: str,
                   submitted_at: datetime, choices: Sequence[str] = (), priority: str = "NORMAL",
                   allow_response: bool = True, notify_queued: bool = False, notify_delivered: bool = False,
                   notify_read: bool = False, deliver_before: datetime | None = None,
                   version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-SubmitRequest")
    header = _el("wctp-SubmitHeader", body, submitTimestamp=stamp(submitted_at))
    _el("wctp-Originator", header, senderID=sender_id, securityCode=security_code)

    def flag(value: bool) -> str:
        return "true" if value else "false"

    _el("wctp-MessageControl", header, messageID=message_id, allowResponse=flag(allow_response),
        notifyWhenQueued=flag(notify_queued), notifyWhenDelivered=flag(notify_delivered),
        notifyWhenRead=flag(notify_read), deliveryPriority=priority,
        deliveryBefore=stamp(deliver_before) if deliver_before else None)
    _el("wctp-Recipient", header, recipientID=recipient_id)
    payload = _el("wctp-Payload", body)
    if choices:
        mcr = _el("wctp-MCR", payload)
        _el("wctp-MessageText", mcr, text)
        for choice in choices:
            _el("wctp-Choice", mcr, choice)
    else:
        _el("wctp-Alphanumeric", payload, text)
    return operation(body, version=version)


def poll_for_messages(*, poller_id: str, security_code: str | None, max_messages: int,
                      received: Sequence[int] = (), version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-PollForMessages", pollerID=poller_id, securityCode=security_code,
               maxMessagesInBatch=str(max_messages))
    for seq in received:
        ack = _el("wctp-MessageReceived", body, sequenceNo=str(seq))
        _el("wctp-Success", ack, successCode=str(SUCCESS), successText="Received")
    return operation(body, version=version)


def version_query(*, inquirer: str, now: datetime, version: str = CURRENT_VERSION) -> bytes:
    return operation(_el("wctp-VersionQuery", inquirer=inquirer, dateTime=stamp(now)), version=version)


def lookup_subscriber(*, sender_id: str, security_code: str | None, message_id: str, recipient_id: str,
                      version: str = CURRENT_VERSION) -> bytes:
    body = _el("wctp-LookupSubscriber")
    _el("wctp-Originator", body, senderID=sender_id, securityCode=security_code)
    _el("wctp-LookupMessageControl", body, messageID=message_id)
    _el("wctp-Recipient", body, recipientID=recipient_id)
    return operation(body, version=version)


def reply_document(element: etree._Element, *, version: str = CURRENT_VERSION) -> bytes:
    """A StatusInfo or MessageReply on its own, as we push it to an originator's URL."""
    return operation(_copy(element), version=version)
