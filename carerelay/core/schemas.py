"""Base shapes for API input and output.

Inputs forbid unknown fields so a typo in an integration's payload is a 422 naming the field,
not a silently ignored value.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, WithJsonSchema, model_validator

T = TypeVar("T")


WallClock = Annotated[time, WithJsonSchema({
    "type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
    "description": "A local wall-clock time (HH:MM), without a zone: the site's zone applies"})]
"""A time of day as schedules and shifts use it. JSON Schema's ``time`` format means RFC 3339's
full-time, which carries an offset; ours never does, so the document says what we send and take."""


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Patch(Input):
    """A partial update of settings that always hold a value: a field left out stays as it is, and an
    explicit null is refused by name instead of being stored (or failing when read back)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                if value is None and name in cls.model_fields:
                    raise ValueError(f"{name} may not be null; leave it out to keep the current value")
        return data


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    offset: int
    limit: int
    next_offset: int | None


class ErrorBody(BaseModel):
    """Every refusal's body: one line to show a person, the field at fault, and (for a request that did
    not validate) the full list for programs."""

    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None
