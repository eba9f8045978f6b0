"""Epic On Call Finder and Epic OpTime: CSV files Epic imports from an SFTP folder.

Layouts are in docs/subsystems/exports.md. Times are the facility's local wall-clock time
(MM/DD/YYYY and 24 h HH:MM), which is what both imports read; OpTime can translate them into another
zone for facilities whose Epic instance runs elsewhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from carerelay.core.schemas import Input
from carerelay.integrations.exports.base import BuildContext, CsvTarget, Row, Scheduled, WindowOptions, hhmm, us_date
from carerelay.scheduling.timeline import zone


class OnCallFinderMapping(Input):
    team_id: str = Field(min_length=1, max_length=60)
    team_name: str | None = Field(default=None, max_length=200, description="Default: the assignment's name")
    role: str = Field(default="", max_length=100)
    note_prefix: str = Field(default="", max_length=200)
    team_comment: str = Field(default="", max_length=500)
    call_order: int | None = Field(default=None, ge=1, le=99, description="Default: the assignment's call order")


class OnCallFinderOptions(WindowOptions):
    past_days: int = Field(default=1, ge=0, le=60)
    future_days: int = Field(default=14, ge=0, le=120)
    placeholder_id: str = Field(default="", max_length=60, description="Provider ID written for unnamed slots")


class EpicOnCallFinder(CsvTarget):
    name = "epic_on_call_finder"
    label = "Epic On Call Finder"
    default_person_key = "epic_ser_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "interval", "minutes": 5}
    default_file_name = "oncall_{timestamp}.csv"
    options_model = OnCallFinderOptions
    mapping_model = OnCallFinderMapping
    columns = ("Team ID", "Team Name", "Role", "Start Date", "Start Time", "End Date", "End Time", "Provider ID",
               "Provider Name", "Phone", "Call Order", "Note", "Team Comment")

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = []
        for item in ctx.items:
            m = item.mapping
            start, end = item.local(item.starts_at), item.local(item.ends_at)
            person = item.person
            note = " ".join(part for part in (m["note_prefix"], item.notes or "") if part)
            rows.append(Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
                "Team ID": m["team_id"], "Team Name": m["team_name"] or item.assignment_name, "Role": m["role"],
                "Start Date": us_date(start), "Start Time": hhmm(start), "End Date": us_date(end),
                "End Time": hhmm(end),
                "Provider ID": person.key if person is not None else ctx.options.placeholder_id,
                "Provider Name": item.who,
                "Phone": item.placeholder_contact if person is None else None,
                "Call Order": m["call_order"] or item.call_order, "Note": note, "Team Comment": m["team_comment"]}))
        return rows


class OpTimeMapping(Input):
    import_group: str = Field(min_length=1, max_length=60)
    resource_type: str = Field(default="Provider", min_length=1, max_length=60)
    role: str = Field(min_length=1, max_length=100)


class OpTimeOptions(WindowOptions):
    future_days: int = Field(default=14, ge=0, le=120)
    output_timezone: str | None = Field(default=None, description="Translate times into this IANA zone")
    kinds: list[str] = Field(default_factory=lambda: ["shift", "call"], description="Assignment kinds sent")

    @field_validator("output_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zone(value)
            except (KeyError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value


class EpicOpTime(CsvTarget):
    name = "epic_optime"
    label = "Epic OpTime"
    default_person_key = "epic_ser_id"
    person_keys = ("epic_ser_id",)
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "on_publish"}
    default_file_name = "optime_{timestamp}.csv"
    options_model = OpTimeOptions
    mapping_model = OpTimeMapping
    columns = ("SER ID", "Provider Name", "Import Group", "Resource Type", "Role", "Start Date", "Start Time",
               "End Date", "End Time", "Time Zone", "Assignment")

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        if item.person is None:
            return "an unnamed slot is not a provider"
        if item.assignment_kind not in ctx.options.kinds:
            return f"{item.assignment_kind} assignments are not sent"
        return None

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = []
        for item in ctx.items:
            assert item.person is not None
            tz = ctx.options.output_timezone or item.timezone
            start, end = item.local(item.starts_at, tz), item.local(item.ends_at, tz)
            m = item.mapping
            rows.append(Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
                "SER ID": item.person.key, "Provider Name": item.person.display_name,
                "Import Group": m["import_group"], "Resource Type": m["resource_type"], "Role": m["role"],
                "Start Date": us_date(start), "Start Time": hhmm(start), "End Date": us_date(end),
                "End Time": hhmm(end),
                "Time Zone": tz, "Assignment": item.assignment_name}))
        return rows
