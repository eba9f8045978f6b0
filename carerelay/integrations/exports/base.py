"""The connector shape every target plugs into.

A target turns the published schedule (``Scheduled`` items, already filtered by the personnel and
assignment mappings) into ``Row``s with a stable key. The runner diffs them against what the other
side holds (``export_state``) and hands the target the ``Change``s: a file target renders them as
bytes for a transport, an API target pushes them itself. Targets never touch the session after the
rows are built, and never call out while a transaction is open.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from carerelay.core.schemas import Input
from carerelay.scheduling.timeline import zone

if TYPE_CHECKING:
    from carerelay.integrations.exports.transport import Http

Action = Literal["add", "change", "delete"]
ACTION_WORDS: dict[str, str] = {"add": "ADD", "change": "CHANGE", "delete": "DELETE"}


class ExportError(Exception):
    """A run cannot succeed now. ``retryable`` False: a retry cannot fix it (a wrong id, a refused login)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class PersonInfo:
    id: int
    username: str
    display_name: str
    given_name: str
    family_name: str
    title: str | None
    key: str | None
    ids: dict[str, str | None]
    email: str | None
    personnel_type: str | None
    department_id: int | None
    home_cost_center: str | None
    away_cost_center: str | None
    contacts: dict[str, str]


@dataclass(frozen=True)
class Scheduled:
    """One published slot as exports see it, with the connector's mapping fields of its assignment."""

    slot_id: int
    on_date: date
    starts_at: datetime
    ends_at: datetime
    timezone: str
    notes: str | None
    assignment_id: int
    assignment_code: str
    assignment_name: str
    assignment_kind: str
    call_order: int
    department_id: int
    department_code: str
    department_name: str
    site_code: str
    mapping: dict[str, Any]
    person: PersonInfo | None
    placeholder_name: str | None
    placeholder_contact: str | None

    def local(self, instant: datetime, tz_name: str | None = None) -> datetime:
        return instant.astimezone(zone(tz_name or self.timezone))

    @property
    def who(self) -> str:
        if self.person is not None:
            return self.person.display_name
        return self.placeholder_name or ""


@dataclass(frozen=True)
class Row:
    key: str
    values: dict[str, Any]
    on_date: date | None = None


@dataclass(frozen=True)
class Change:
    action: Action
    key: str
    values: dict[str, Any]
    remote_id: str | None = None
    before: dict[str, Any] | None = None
    on_date: date | None = None


@dataclass
class BuildContext:
    """What a target knows while it builds rows; it never holds a session (rows are built from ``items``)."""

    connector_id: int
    name: str
    now: datetime
    timezone: str
    options: Any
    person_key: str | None
    period: tuple[date, date] | None = None
    items: list[Scheduled] = field(default_factory=list)

    @property
    def today(self) -> date:
        return self.now.astimezone(zone(self.timezone)).date()


@dataclass
class PushOutcome:
    """What an API push did, item by item: the runner records the successes even if the run failed."""

    done: list[tuple[Change, str | None]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    item_errors: list[dict[str, Any]] = field(default_factory=list)
    error: ExportError | None = None


class NoOptions(Input):
    pass


class WindowOptions(Input):
    past_days: int = Field(default=0, ge=0, le=400)
    future_days: int = Field(default=14, ge=0, le=400)


class Target:
    """Base of every plug-in; class attributes describe it to the admin API (``GET /api/exports/targets``)."""

    name: ClassVar[str]
    label: ClassVar[str]
    direction: ClassVar[Literal["file", "api", "inbound"]] = "file"
    default_person_key: ClassVar[str | None] = None
    person_keys: ClassVar[tuple[str, ...] | None] = None
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "on_change"}
    default_content: ClassVar[str] = "full"
    default_file_name: ClassVar[str] = "{name}_{timestamp}.csv"
    content_type: ClassVar[str] = "text/csv; charset=utf-8"
    options_model: ClassVar[type[BaseModel]] = NoOptions
    mapping_model: ClassVar[type[BaseModel] | None] = None
    needs_person: ClassVar[bool] = True
    send_flag: ClassVar[str | None] = None
    """A mapping field that, when false, means "do not send this assignment" (Outlook's Send to Outlook)."""

    def window(self, ctx: BuildContext) -> tuple[date, date]:
        options = ctx.options
        past = getattr(options, "past_days", 0)
        future = getattr(options, "future_days", 14)
        if ctx.period is not None:
            return ctx.period
        return ctx.today - timedelta(days=past), ctx.today + timedelta(days=future)

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        """None to export the item, or why it is left out (listed on the run, not an error)."""
        return None

    def rows(self, ctx: BuildContext) -> list[Row]:
        raise NotImplementedError

    def render(self, ctx: BuildContext, changes: Sequence[Change], delta: bool) -> bytes:
        raise NotImplementedError

    def push(self, ctx: BuildContext, http: Http, changes: Sequence[Change], rows: Sequence[Row]) -> PushOutcome:
        raise NotImplementedError


class CsvTarget(Target):
    """A CSV file: ``columns`` in order; a delta file starts each row with Action (ADD, CHANGE, DELETE)."""

    columns: ClassVar[tuple[str, ...]]
    always_action: ClassVar[bool] = False

    def render(self, ctx: BuildContext, changes: Sequence[Change], delta: bool) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        with_action = delta or self.always_action
        writer.writerow((("Action",) if with_action else ()) + self.columns)
        for change in changes:
            cells = [_cell(change.values.get(column)) for column in self.columns]
            writer.writerow(([ACTION_WORDS[change.action]] if with_action else []) + cells)
        return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def us_date(value: date | datetime) -> str:
    return f"{value.month:02d}/{value.day:02d}/{value.year:04d}"


def hhmm(value: datetime) -> str:
    return f"{value:%H:%M}"
