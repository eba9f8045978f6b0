"""API shapes of messaging."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from carerelay.core.schemas import Input, Output, Patch
from carerelay.messaging.models import ConversationKind, Priority

MessageText = Annotated[str, StringConstraints(max_length=10_000)]


class ConversationIn(Input):
    kind: ConversationKind
    member_ids: list[StrictInt] = Field(default_factory=list, max_length=500)
    address: Annotated[str, StringConstraints(max_length=200)] | None = None
    title: Annotated[str, StringConstraints(max_length=200)] | None = None
    patient_id: StrictInt | None = None


class ConversationOut(Output):
    id: int
    kind: str
    title: str | None
    address: str | None
    patient_id: int | None
    member_ids: list[int]
    resolution: dict[str, Any] | None = Field(
        default=None, description="An address conversation: whom the address reached and why (and whom an "
                                  "escalation brought in later).")
    created_at: datetime
    last_message_at: datetime | None


class MemberIn(Input):
    person_id: StrictInt


class MessageIn(Input):
    text: MessageText
    priority: Priority = Priority.ROUTINE
    needs_ack: StrictBool = False
    patient_id: StrictInt | None = None
    attachment_ids: list[StrictInt] = Field(default_factory=list, max_length=10)
    confirm: list[Literal["orders", "critical_result"]] = Field(
        default_factory=list, description="Warnings the sender has seen and confirms (after a 422 confirm).")


class AttachmentOut(Output):
    id: int
    content_type: str
    size: int


class MessageOut(Output):
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    sender_name: str
    kind: str
    text: str
    priority: str
    needs_ack: bool
    silent: bool = Field(description="A courtesy reply: deliver without an alert sound.")
    patient_id: int | None
    created_at: datetime
    original_author_id: int | None
    original_author_name: str | None
    original_sent_at: datetime | None
    forwarded_from_id: int | None
    warnings_confirmed: list[str]
    attachments: list[AttachmentOut]


class ReceiptsIn(Input):
    message_ids: list[StrictInt] = Field(min_length=1, max_length=500)
    state: Literal["delivered", "read", "acknowledged"]


class ReceiptOut(Output):
    message_id: int
    conversation_id: int
    person_id: int
    reason: str | None = Field(default=None, description="Why this person received the message.")
    sent_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None
    acknowledged_at: datetime | None


class ReceiptsChanged(Output):
    changed: int


class ForwardIn(Input):
    to_conversation_id: StrictInt
    message_ids: list[StrictInt] = Field(default_factory=list, max_length=500)
    conversation_id: StrictInt | None = Field(default=None, description="Forward the whole conversation.")


class PolicyOut(Output):
    visible_hours: int
    search_hours: int
    retention_years: int
    orders_in_text: str
    critical_results_in_text: str
    courtesy_replies_silent: bool
    attachment_max_bytes: int


class PolicyPatch(Patch):
    visible_hours: Annotated[int, Field(strict=True, ge=1, le=24 * 365)] | None = None
    search_hours: Annotated[int, Field(strict=True, ge=1, le=24 * 365)] | None = None
    retention_years: Annotated[int, Field(strict=True, ge=1, le=100)] | None = None
    orders_in_text: Literal["off", "warn", "block"] | None = None
    critical_results_in_text: Literal["off", "warn", "block"] | None = None
    courtesy_replies_silent: StrictBool | None = None
    attachment_max_bytes: Annotated[int, Field(strict=True, ge=1024, le=100 * 1024 * 1024)] | None = None


class HoldIn(Input):
    conversation_id: StrictInt
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]


class HoldOut(Output):
    id: int
    conversation_id: int
    reason: str
    placed_by: int | None
    placed_at: datetime
    released_at: datetime | None


class ExportIn(Input):
    conversation_ids: list[StrictInt] = Field(min_length=1, max_length=1000)
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]


class PurgeOut(Output):
    cutoff: datetime
    messages: int
    kept_on_hold: int
