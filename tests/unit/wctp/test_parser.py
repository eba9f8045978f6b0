"""The WCTP parser on anything: it answers a document or a WctpError with a code, never anything else,
and what our builders write it reads back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carerelay.integrations.wctp import build
from carerelay.integrations.wctp.model import (
    CODE_TEXT,
    Document,
    MessageReply,
    StatusInfo,
    SubmitRequest,
    WctpError,
    read_document,
)
from tests.wctpsupport import samples_dir

LIMIT = 64 * 1024
SAMPLES = [p.read_bytes() for p in sorted(samples_dir().glob("*.xml"))]


def _read(raw: bytes) -> Document | WctpError:
    try:
        return read_document(raw, max_bytes=LIMIT)
    except WctpError as exc:
        assert exc.code in CODE_TEXT and exc.text
        return exc


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_are_a_document_or_a_coded_refusal(raw: bytes) -> None:
    _read(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_damaged_samples_are_a_document_or_a_coded_refusal(sample: bytes, data: st.DataObject) -> None:
    raw = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        match data.draw(st.sampled_from(["drop", "insert", "replace"])):
            case "drop":
                del raw[at]
            case "insert":
                raw.insert(at, data.draw(st.integers(0, 255)))
            case _:
                raw[at] = data.draw(st.integers(0, 255))
    _read(bytes(raw))


names = st.sampled_from(["wctp-Operation", "wctp-SubmitRequest", "wctp-SubmitHeader", "wctp-Originator",
                         "wctp-MessageControl", "wctp-Recipient", "wctp-Payload", "wctp-MCR", "wctp-Choice",
                         "wctp-Alphanumeric", "wctp-PollForMessages", "wctp-MessageReceived", "wctp-StatusInfo",
                         "wctp-ResponseHeader", "wctp-Notification", "x"])
attributes = st.dictionaries(st.sampled_from(["wctpVersion", "senderID", "securityCode", "messageID", "recipientID",
                                              "pollerID", "sequenceNo", "type", "deliveryBefore", "allowResponse",
                                              "responseToMessageID", "deliveryPriority"]),
                             st.text(st.characters(codec="ascii", exclude_characters='<&"'), max_size=12),
                             max_size=4)
trees = st.recursive(
    st.tuples(names, attributes, st.just(())),
    lambda inner: st.tuples(names, attributes, st.lists(inner, max_size=4).map(tuple)),
    max_leaves=20,
)


def _render(tree: tuple[str, dict[str, str], tuple[object, ...]]) -> str:
    name, attrs, children = tree
    rendered = "".join(f' {k}="{v}"' for k, v in attrs.items())
    inner = "".join(_render(c) for c in children)  # type: ignore[arg-type]
    return f"<{name}{rendered}>{inner}</{name}>"


@settings(max_examples=300, deadline=None)
@given(trees)
def test_well_formed_but_arbitrary_trees_are_a_document_or_a_coded_refusal(tree: tuple[str, dict[str, str],
                                                                                       tuple[object, ...]]) -> None:
    _read(_render(tree).encode())


ids = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=32).filter(
    lambda s: s.strip() == s and s)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], include_characters="\r\n\t"),
                max_size=400)
choices = st.lists(st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=20),
                   max_size=4)


@settings(max_examples=200, deadline=None)
@given(ids, ids, ids, texts, choices, st.sampled_from(["HIGH", "NORMAL", "LOW"]), st.booleans())
def test_what_we_build_we_read_back(sender: str, recipient: str, message_id: str, text: str, offered: list[str],
                                    priority: str, notify: bool) -> None:
    now = datetime(2026, 11, 24, 14, 5, 7, tzinfo=UTC)
    raw = build.submit_request(sender_id=sender, security_code="c0de", recipient_id=recipient, message_id=message_id,
                               text=text, submitted_at=now, choices=offered, priority=priority,
                               notify_delivered=notify, notify_read=not notify)
    document = read_document(raw, max_bytes=LIMIT)
    op = document.operation
    assert isinstance(op, SubmitRequest)
    assert (op.originator.sender_id, op.originator.security_code, op.recipient_id) == (sender, "c0de", recipient)
    assert op.control.message_id == message_id and op.control.priority == priority
    assert (op.control.notify_delivered, op.control.notify_read) == (notify, not notify)
    assert op.payload.text == text and op.payload.choices == tuple(offered)
    assert op.payload.kind == ("mcr" if offered else "alphanumeric")
    assert op.submitted_at == now.replace(tzinfo=None)


@settings(max_examples=100, deadline=None)
@given(ids, ids, texts, st.sampled_from(["QUEUED", "DELIVERED", "READ", None]))
def test_replies_we_write_read_back(originator: str, recipient: str, text: str, notification: str | None) -> None:
    header = build.Header(response_to="NC4W-000123", originator=originator, message_id="CR1", recipient=recipient,
                          responded_at=datetime(2026, 11, 24, 14, 6, tzinfo=UTC))
    element = (build.status_info(header, notification=notification) if notification
               else build.message_reply(header, text, mcr=True))
    op = read_document(build.reply_document(element), max_bytes=LIMIT).operation
    assert isinstance(op, StatusInfo | MessageReply)
    assert (op.header.originator.sender_id, op.header.recipient_id) == (originator, recipient)
    assert op.header.response_to_message_id == "NC4W-000123"
    if isinstance(op, StatusInfo):
        assert op.notification == notification
    else:
        assert op.payload.text == text and op.mcr
