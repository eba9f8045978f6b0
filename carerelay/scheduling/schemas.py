"""API shapes of scheduling."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from carerelay.core.schemas import Input, Output, WallClock
from carerelay.scheduling.models import AssignmentKind

Code = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(max_length=1000)]
Contact = Annotated[str, StringConstraints(min_length=3, max_length=60, pattern=r"^[0-9+()#*. \-]+$")]
StrictId = Annotated[int, Field(strict=True, ge=1)]


def _whole_minutes(value: time) -> time:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError("give a local wall-clock time in whole minutes, e.g. 07:00, without a zone")
    return value


class AssignmentIn(Input):
    department_id: StrictId
    code: Code
    name: Name
    kind: AssignmentKind
    start_time: WallClock = Field(description="Local wall-clock time in the site's zone, e.g. 07:00")
    end_time: WallClock = Field(description="At or before start_time: crosses midnight; equal: a 24 h shift")
    call_order: Annotated[int, Field(strict=True, ge=1, le=99)] = 1
    allow_overlap: bool = False
    mapping: dict[str, Any] = Field(default_factory=dict, description="Free-form fields for exports")

    _times = field_validator("start_time", "end_time")(_whole_minutes)


class AssignmentPatch(Input):
    name: Name | None = None
    start_time: WallClock | None = None
    end_time: WallClock | None = None
    call_order: Annotated[int, Field(strict=True, ge=1, le=99)] | None = None
    allow_overlap: bool | None = None
    mapping: dict[str, Any] | None = None
    active: bool | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _minutes(cls, value: time | None) -> time | None:
        return None if value is None else _whole_minutes(value)


class AssignmentOut(Output):
    id: int
    department_id: int
    code: str
    name: str
    kind: str
    start_time: WallClock
    end_time: WallClock
    call_order: int
    allow_overlap: bool
    mapping: dict[str, Any]
    active: bool


class CrossCredentialIn(Input):
    person_id: StrictId
    department_id: StrictId
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class CrossCredentialOut(Output):
    person_id: int
    department_id: int
    granted_at: datetime
    granted_by: str
    note: str | None


class ScheduleIn(Input):
    department_id: StrictId
    starts_on: date
    ends_on: date
    name: Name | None = None


class ScheduleOut(Output):
    id: int
    department_id: int
    name: str
    starts_on: date
    ends_on: date
    status: str
    version: int
    published_at: datetime | None


class VersionOut(Output):
    schedule_id: int
    version: int
    published_at: datetime
    published_by: str
    slots: list[dict[str, Any]]


class ChangeOut(Output):
    id: int
    schedule_id: int
    after_version: int
    at: datetime
    actor_name: str
    action: str
    slot_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class SlotWho(Input):
    person_id: StrictId | None = None
    placeholder_name: Name | None = None
    placeholder_contact: Contact | None = None
    notes: Note | None = None


class SlotIn(SlotWho):
    assignment_id: StrictId
    on_date: date


class SlotOut(Output):
    id: int
    schedule_id: int
    assignment_id: int
    department_id: int
    on_date: date
    person_id: int | None
    placeholder_name: str | None
    placeholder_contact: str | None
    notes: str | None
    starts_at: datetime
    ends_at: datetime
    source: str


class SwapIn(Input):
    slot_id: StrictId
    to_person_id: StrictId
    other_slot_id: StrictId | None = None
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class SwapOut(Output):
    id: int
    slot_id: int
    other_slot_id: int | None
    from_person_id: int | None
    to_person_id: int
    requested_by: str
    reason: str | None
    status: str
    decided_by: str | None
    decided_at: datetime | None


class DecisionIn(Input):
    approve: bool


class TimeOffIn(Input):
    person_id: StrictId
    starts_on: date
    ends_on: date
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class TimeOffOut(Output):
    id: int
    person_id: int
    starts_on: date
    ends_on: date
    reason: str | None
    status: str
    requested_by: str
    decided_by: str | None


class OnCallOut(Output):
    slot_id: int
    assignment_id: int
    assignment_code: str
    assignment_name: str
    department_id: int
    department_code: str
    call_order: int
    person_id: int | None
    name: str
    contact: str | None
    starts_at: datetime
    ends_at: datetime
    timezone: str
    reason: str


class CoverageOut(Output):
    department_id: int
    department_code: str
    now: list[OnCallOut]
    next: list[OnCallOut]


class ImportErrorOut(Output):
    row: int
    field: str
    message: str


class ImportOut(Output):
    imported: int
    rows: int
    errors: list[ImportErrorOut]




class SyncSourceIn(Input):
    vendor: Annotated[str, StringConstraints(pattern=r"^(amion|qgenda|shiftadmin)$")]
    name: Name
    department_id: StrictId
    base_url: Annotated[str, StringConstraints(min_length=8, max_length=500, pattern=r"^https?://")]
    account: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    username: Annotated[str, StringConstraints(max_length=200)] | None = None
    secret_env: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,99}$")] | None = Field(
        default=None, description="Name of the environment variable holding the password (never the password)")


class SyncSourceOut(Output):
    id: int
    vendor: str
    name: str
    department_id: int
    base_url: str
    account: str
    username: str | None
    secret_env: str | None
    active: bool
    last_run_at: datetime | None


class PersonMapIn(Input):
    person_id: StrictId


class AssignmentMapIn(Input):
    assignment_id: StrictId


class SyncRunOut(Output):
    id: int
    source_id: int
    started_at: datetime
    window_end: datetime
    status: str
    fetched: int
    created: int
    updated: int
    removed: int
    unmapped: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    error: str | None
