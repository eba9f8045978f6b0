"""Base shapes for API input and output.

Inputs forbid unknown fields so a typo in an integration's payload is a 422 naming the field,
not a silently ignored value.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    offset: int
    limit: int
    next_offset: int | None


class ErrorBody(BaseModel):
    detail: str
    field: str | None = None
