"""API shapes of escalation policies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from carerelay.core.schemas import Input, Output
from carerelay.messaging.models import Priority


class StepIn(Input):
    address: Annotated[str, StringConstraints(min_length=3, max_length=200)] = Field(
        description="An address, or 'target:' for the alert's own address")
    wait_minutes: Annotated[float, Field(strict=True, gt=0, le=24 * 60)]


class PolicyIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    alert_kind: Annotated[str, StringConstraints(max_length=40)] | None = None
    department_id: StrictInt | None = None
    priority: Priority | None = None
    steps: list[StepIn] = Field(min_length=1, max_length=20)
    repeat: Annotated[int, Field(strict=True, ge=0, le=10, description="How many more times the chain runs after "
                                                                         "the first pass (0: once)")] = 0
    fallback_address: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None


class PolicyPatch(Input):
    """Only the fields given change; ``active: false`` deactivates (a deactivated policy picks no new alerts)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    alert_kind: Annotated[str, StringConstraints(max_length=40)] | None = None
    department_id: StrictInt | None = None
    priority: Priority | None = None
    steps: list[StepIn] | None = Field(default=None, min_length=1, max_length=20)
    repeat: Annotated[int, Field(strict=True, ge=0, le=10)] | None = None
    fallback_address: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None
    active: StrictBool | None = None


class StepOut(Output):
    address: str
    wait_minutes: float


class PolicyOut(Output):
    id: int
    name: str
    alert_kind: str | None
    department_id: int | None
    priority: str | None
    steps: list[StepOut]
    repeat: int
    fallback_address: str | None
    active: bool
