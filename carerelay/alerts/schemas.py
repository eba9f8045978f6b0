"""API shapes of alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, StringConstraints

from carerelay.core.schemas import Input, Output
from carerelay.messaging.models import Priority

Short = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class AlertIn(Input):
    kind: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z_]+$")] = "manual"
    priority: Priority = Priority.URGENT
    title: Short
    body: Annotated[str, StringConstraints(max_length=5000)] = ""
    address: Annotated[str, StringConstraints(min_length=3, max_length=200)]
    patient_id: StrictInt | None = None
    department_id: StrictInt | None = None
    location: Annotated[str, StringConstraints(max_length=60)] | None = None
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(default_factory=list,
                                                                                         max_length=6)


class AlertOut(Output):
    id: int
    kind: str
    priority: str
    title: str
    body: str
    address: str
    patient_id: int | None
    department_id: int | None
    location: str | None
    source: str
    choices: list[str]
    status: str
    created_at: datetime
    acknowledged_by: int | None
    acknowledged_at: datetime | None
    readback: str | None
    readback_at: datetime | None


class AlertEventOut(Output):
    at: datetime
    kind: str
    person_id: int | None
    detail: dict[str, Any]


class AlertTrailOut(Output):
    alert: AlertOut
    events: list[AlertEventOut]


class AlertReceiptsIn(Input):
    alert_ids: list[StrictInt] = Field(min_length=1, max_length=500)
    state: Literal["delivered", "read"]


class AlertReceiptsChanged(Output):
    changed: int


class RespondIn(Input):
    choice: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class ReadbackIn(Input):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class AlertRespondIn(Input):
    alert_id: StrictInt
    choice: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class AlertReportOut(Output):
    """One row per group; times in seconds (p50, p90, max), empty where nothing was measured."""

    group_by: str
    since: datetime
    until: datetime
    filters: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]]
