"""API shapes of connectors and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from carerelay.core.schemas import Input, Output


class ConnectorIn(Input):
    name: str = Field(min_length=1, max_length=120)
    target: str = Field(description="One of GET /api/exports/targets")
    enabled: bool = True
    person_key: str | None = Field(default=None, description="Directory id field that is the key on the other side")
    mapping_key: str | None = Field(default=None, description="Key in assignments' mapping (default: the target)")
    departments: list[str] | None = Field(default=None, description="Department codes in scope (default: all)")
    timezone: str | None = Field(default=None, description="IANA zone for daily times and 'today'")
    trigger: dict[str, Any] | None = None
    content: Literal["full", "delta"] | None = None
    transport: dict[str, Any]
    file_name: str | None = Field(default=None, max_length=200)
    options: dict[str, Any] = Field(default_factory=dict)
    notify: list[str] = Field(default_factory=list, description="E-mail addresses told about failed runs")
    max_attempts: int = Field(default=5, ge=1, le=20)


class ConnectorPatch(Input):
    enabled: bool | None = None
    person_key: str | None = None
    mapping_key: str | None = None
    departments: list[str] | None = None
    timezone: str | None = None
    trigger: dict[str, Any] | None = None
    content: Literal["full", "delta"] | None = None
    transport: dict[str, Any] | None = None
    file_name: str | None = None
    options: dict[str, Any] | None = None
    notify: list[str] | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)


class ConnectorOut(Output):
    id: int
    name: str
    target: str
    enabled: bool
    person_key: str | None
    mapping_key: str
    department_ids: list[int] | None
    timezone: str
    trigger: dict[str, Any]
    content: str
    transport: dict[str, Any]
    file_name: str | None
    options: dict[str, Any]
    notify: list[str]
    max_attempts: int
    next_due_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class RunIn(Input):
    dry_run: bool = False


class RunOut(Output):
    id: int
    connector_id: int
    reason: str
    requested_by: str
    dry_run: bool
    status: str
    content: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    destination: str | None
    file_name: str | None
    content_type: str | None
    payload_sha256: str | None
    row_count: int
    period_start: str | None
    excluded: list[dict[str, Any]]
    unmapped: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    detail: dict[str, Any]
    error: str | None


class MappingIn(Input):
    fields: dict[str, Any] | None = Field(description="The target's fields for this assignment; null removes them")


class TargetOut(Output):
    name: str
    label: str
    direction: str
    default_person_key: str | None
    person_keys: list[str] | None
    default_trigger: dict[str, Any]
    default_content: str
    options_schema: dict[str, Any]
    mapping_schema: dict[str, Any] | None
