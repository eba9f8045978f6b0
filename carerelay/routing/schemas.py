"""API shapes of routing: rules and address previews."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StringConstraints, model_validator

from carerelay.core.schemas import Input, Output
from carerelay.messaging.models import Priority

HHMM = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class RuleIn(Input):
    rank: Annotated[int, Field(strict=True, ge=0, le=1000)] = 100
    priorities: list[Priority] = Field(default_factory=list)
    sender_types: list[Literal["physician", "nurse", "operator", "system"]] = Field(default_factory=list)
    window_start: HHMM | None = None
    window_end: HHMM | None = None
    action: Literal["deliver", "hold", "forward", "add_contact"]
    hold_until: HHMM | None = None
    forward_to: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None
    contact_kind: Literal["sms", "email", "pager", "phone"] | None = None
    after_minutes: Annotated[float, Field(strict=True, ge=0, le=24 * 60)] | None = None
    on_duty: StrictBool | None = Field(default=None, description="true: only while the published schedule has me "
                                                                 "working; false: only while it does not")

    @model_validator(mode="after")
    def _complete(self) -> RuleIn:
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("give both window_start and window_end, or neither")
        needs = {"hold": ("hold_until",), "forward": ("forward_to",), "add_contact": ("contact_kind", "after_minutes")}
        missing = [f for f in needs.get(self.action, ()) if getattr(self, f) is None]
        if missing:
            raise ValueError(f"action {self.action} needs {', '.join(missing)}")
        return self


class DepartmentRuleIn(RuleIn):
    department_id: StrictInt


class RuleOut(Output):
    id: int
    person_id: int | None
    department_id: int | None
    rank: int
    priorities: list[str]
    sender_types: list[str]
    window_start: str | None
    window_end: str | None
    action: str
    hold_until: str | None
    forward_to: str | None
    contact_kind: str | None
    after_minutes: float | None
    on_duty: bool | None
    active: bool


class ContactOut(Output):
    kind: str
    value: str


class RecipientOut(Output):
    person_id: int
    name: str
    reason: str
    contacts: list[ContactOut]


class ResolutionOut(Output):
    address: str
    recipients: list[RecipientOut]
    notes: list[str]
