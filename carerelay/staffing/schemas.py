"""API shapes of staffing: assignments, the board, units' shifts, conflicts, hand-overs and feeds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StrictBool, StrictInt, StringConstraints

from carerelay.core.schemas import Input, Output
from carerelay.staffing.models import FeedKind, Source

Code = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Place = Annotated[str, StringConstraints(max_length=20)]
Note = Annotated[str, StringConstraints(max_length=500)]
HHMM = Annotated[str, StringConstraints(pattern=r"^\d{2}:\d{2}$")]


class AssignmentItem(Input):
    unit: Code
    room: Place = ""
    bed: Place = ""
    role: Code
    person_id: StrictInt
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class AssignmentIn(AssignmentItem):
    replace: StrictBool = Field(default=False, description="End whoever holds this bed's primary nurse (or the "
                                                           "unit's charge nurse) from the same source")


class AssignmentsIn(Input):
    assignments: list[AssignmentItem] = Field(min_length=1, max_length=500)
    replace: StrictBool = False


class EndIn(Input):
    at: AwareDatetime | None = None
    reason: Note = ""


class CopyShiftIn(Input):
    into: Literal["next", "current"] = "next"
    source_shift: Literal["previous", "same_yesterday"] = "previous"


class UnitSettingsIn(Input):
    shift_changes: list[HHMM] | None = Field(default=None, min_length=1, max_length=6)
    flag_minutes_before: StrictInt | None = None
    precedence: list[Source] | None = None


class ResolveIn(Input):
    note: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class FeedIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    kind: FeedKind
    adapter: Code | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    column_map: dict[str, Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(
        default_factory=dict)
    role_map: dict[str, Code] = Field(default_factory=dict)
    id_field: Code = "unique_id"
    apply_valid_rows: StrictBool = False
    interval_minutes: StrictInt = 30


class FeedActiveIn(Input):
    active: StrictBool


class PushIn(Input):
    changes: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


class AssignmentOut(Output):
    id: int
    unit: str
    room: str
    bed: str
    target: str
    person_id: int
    person_name: str
    role: str
    role_label: str
    starts_at: datetime
    ends_at: datetime
    planned_ends_at: datetime
    window: str
    source: str
    origin: str
    end_reason: str | None
    replaced_by_id: int | None
    external_key: str | None
    feed_id: int | None


class ChangeOut(Output):
    outcome: str
    message: str
    assignment: AssignmentOut | None
    ended: list[int]
    conflicts: list[int]


class ShiftOut(Output):
    label: str
    starts_at: datetime
    ends_at: datetime


class UnitSettingsOut(Output):
    unit: str
    timezone: str
    shift_changes: list[str]
    flag_minutes_before: int
    precedence: list[str]
    configured: bool
    current_shift: ShiftOut
    next_shift: ShiftOut


class BedOut(Output):
    target: str
    room: str
    bed: str
    occupied: bool
    primary_nurse_missing: bool
    assignments: list[AssignmentOut]


class BoardOut(Output):
    unit: str
    unit_name: str
    timezone: str
    at: datetime
    shift: ShiftOut
    charge_nurses: list[AssignmentOut]
    unit_level: list[AssignmentOut]
    rooms: dict[str, list[AssignmentOut]]
    beds: list[BedOut]
    unassigned_occupied: list[str]
    open_conflicts: int


class CopyOut(Output):
    target_shift: ShiftOut
    source_shift: ShiftOut
    copied: list[AssignmentOut]
    skipped: list[dict[str, Any]]


class ConflictOut(Output):
    id: int
    kind: str
    care_role: str
    target: str
    existing_id: int
    applied_id: int | None
    incoming: dict[str, Any]
    outcome: str
    message: str
    first_seen_at: datetime
    last_seen_at: datetime
    seen: int
    alert_id: int | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None


class HandoverOut(Output):
    id: int
    change_at: datetime
    fired_at: datetime
    ended: int
    renewed: int
    continuing: int
    unassigned_beds: list[str]


class FeedOut(Output):
    id: int
    name: str
    kind: str
    adapter: str | None
    config: dict[str, Any]
    column_map: dict[str, str]
    role_map: dict[str, str]
    id_field: str
    apply_valid_rows: bool
    interval_minutes: int
    active: bool
    has_token: bool
    next_run_at: datetime | None
    last_run_at: datetime | None


class FeedRunOut(Output):
    id: int
    feed_id: int
    trigger: str
    started_at: datetime
    status: str
    file_name: str | None
    rows: int
    applied: int
    unchanged: int
    ended: int
    conflicts: int
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    error: str | None


class TokenOut(Output):
    token: str
    note: str = "Shown once: give it to the assignment system as its Bearer token for POST /api/staffing/push."
