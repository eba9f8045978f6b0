"""API shapes of the HL7 message store and monitor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from carerelay.core.schemas import Input, Output


class MessageOut(Output):
    id: int
    feed: str
    received_at: datetime
    peer: str | None
    size: int
    charset: str | None
    sending_app: str
    sending_facility: str
    control_id: str | None
    message_type: str | None
    version: str | None
    mrn: str | None
    status: str
    error: str | None
    ack_code: str | None
    attempts: int
    duplicates: int
    processed_at: datetime | None


class MessageDetailOut(MessageOut):
    text: str


class ReprocessIn(Input):
    ids: list[int] = Field(default_factory=list, max_length=10_000)
    status: Annotated[str, StringConstraints(pattern="^(error|filtered|processed)$")] | None = None
    message_type: Annotated[str, StringConstraints(max_length=30)] | None = None
    feed: Annotated[str, StringConstraints(max_length=60)] | None = None
    since: datetime | None = None
    until: datetime | None = None


class ReprocessOut(Output):
    ids: list[int]
    count: int


class PurgeIn(Input):
    older_than_days: int = Field(ge=1, le=100_000)


class PurgeOut(Output):
    deleted: int


class FeedOut(Output):
    name: str
    port: int
    listening: bool
    ack_mode: str
    charset: str
    message_types: list[str]
    silence_minutes: int
    last_message_at: datetime | None
    silent_since: datetime | None
    counts: dict[str, int]


class HandoffOut(Output):
    id: int
    kind: str
    patient_id: int
    encounter_id: int | None
    subject_type: str
    subject_id: int
    recipient_person_id: int | None
    recipient_provider_id: str
    summary: str
    target: str
    created_at: datetime
