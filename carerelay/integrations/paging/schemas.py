"""API shapes of paging senders, recipient maps, rules, the feed monitor and the operator's page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from carerelay.core.schemas import Input, Output
from carerelay.messaging.models import Priority

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ChannelName = Literal["wctp", "tap", "snpp", "email", "web"]
Address = Annotated[str, StringConstraints(min_length=3, max_length=500)]


class SenderIn(Input):
    sender_id: Id
    security_code: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    channels: list[ChannelName] = Field(default=["wctp"], min_length=1)
    label: Annotated[str, StringConstraints(max_length=200)] | None = None
    reply_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)] | None = Field(
        default=None, description="Push StatusInfo and MessageReply here; without it the sender polls.")
    reply_security_code: Annotated[str, StringConstraints(max_length=128)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] = Field(
        default="UTC", description="Zone of the sender's times that carry no offset.")


class SenderPatch(Input):
    security_code: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    channels: list[ChannelName] | None = None
    label: Annotated[str, StringConstraints(max_length=200)] | None = None
    reply_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)] | None = None
    reply_security_code: Annotated[str, StringConstraints(max_length=128)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    active: bool | None = None


class SenderOut(Output):
    """Never the codes: only whether one is required."""

    sender_id: str
    label: str | None
    channels: list[str]
    reply_url: str | None
    timezone: str
    active: bool
    security_code_required: bool
    created_at: datetime
    updated_at: datetime


class RecipientIn(Input):
    recipient_id: Id
    address: Address | None = Field(default=None, description="What it reaches; beds default to their nurse.")
    unit: Annotated[str, StringConstraints(max_length=40)] | None = None
    room: Annotated[str, StringConstraints(max_length=20)] | None = None
    bed: Annotated[str, StringConstraints(max_length=20)] | None = None
    label: Annotated[str, StringConstraints(max_length=200)] | None = None


class RecipientPatch(Input):
    address: Address | None = None
    label: Annotated[str, StringConstraints(max_length=200)] | None = None
    active: bool | None = None


class RecipientOut(Output):
    recipient_id: str
    address: str
    unit: str | None
    room: str | None
    bed: str | None
    department_id: int | None
    label: str | None
    active: bool


class StepIn(Input):
    address: Address
    wait_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 5


class EscalationIn(Input):
    steps: list[StepIn] = Field(min_length=1, max_length=20)
    repeat: Annotated[int, Field(ge=1, le=10)] = 1
    fallback: Address | None = None


Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RuleIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    alert_kind: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]
    position: Annotated[int, Field(ge=0, le=100_000)] = 100
    sender_id: Id | None = None
    channel: ChannelName | None = None
    recipient_pattern: Pattern | None = Field(default=None, description="Regular expression on the recipient id")
    text_pattern: Pattern | None = Field(default=None, description="Regular expression on the text (any case)")
    priority: Priority | None = Field(default=None, description="Empty: from the message (HIGH → stat …)")
    tone: Annotated[str, StringConstraints(max_length=40)] | None = None
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] | None = Field(
        default=None, max_length=6)
    target: Address | None = Field(default=None, description="An address; {unit} {room} {bed} {recipient} "
                                                             "{address} {sender} are filled in")
    escalation: EscalationIn | None = None


class RulePatch(Input):
    position: Annotated[int, Field(ge=0, le=100_000)] | None = None
    active: bool | None = None
    sender_id: Id | None = None
    channel: ChannelName | None = None
    recipient_pattern: Pattern | None = None
    text_pattern: Pattern | None = None
    alert_kind: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z_]+$")] | None = None
    priority: Priority | None = None
    tone: Annotated[str, StringConstraints(max_length=40)] | None = None
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] | None = None
    target: Address | None = None
    escalation: EscalationIn | None = None


class RuleOut(Output):
    id: int
    name: str
    position: int
    active: bool
    sender_id: str | None
    channel: str | None
    recipient_pattern: str | None
    text_pattern: str | None
    alert_kind: str
    priority: str | None
    tone: str | None
    choices: list[str] | None
    target: str | None
    escalation: dict[str, object] | None


class MessageOut(Output):
    id: int
    channel: str
    received_at: datetime
    peer: str | None
    operation: str | None
    sender_id: str | None
    recipient_id: str | None
    message_id: str | None
    text: str
    status: str
    error_code: int | None
    error_text: str | None
    alert_id: int | None
    address: str | None
    size: int
    delivered_at: datetime | None
    read_at: datetime | None


class MessageDetailOut(MessageOut):
    raw: str | None
    choices: list[str]
    priority_in: str | None
    submitted_at: datetime | None
    deliver_after: datetime | None
    deliver_before: datetime | None
    notify_queued: bool
    notify_delivered: bool
    notify_read: bool


class PageIn(Input):
    number: Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    priority: Priority | None = None


class PageOut(Output):
    paging_message_id: int
    alert_id: int | None
    status: str
    detail: str
