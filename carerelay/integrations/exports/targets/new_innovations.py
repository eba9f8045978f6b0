"""New Innovations duty hours: the first file carries every published record, then daily only the changes."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from carerelay.core.schemas import Input
from carerelay.integrations.exports.base import BuildContext, CsvTarget, Row, Scheduled, WindowOptions, hhmm, us_date


class NiMapping(Input):
    duty_hour_name: str = Field(min_length=1, max_length=100)
    assignment_name: str = Field(min_length=1, max_length=100)
    notes: str | None = Field(default=None, max_length=500)
    location: str | None = Field(default=None, max_length=100)


class NiOptions(WindowOptions):
    past_days: int = Field(default=31, ge=0, le=400)
    future_days: int = Field(default=62, ge=0, le=400)


class NewInnovations(CsvTarget):
    name = "new_innovations"
    label = "New Innovations duty hours"
    default_person_key = "unique_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "daily", "at": "02:00"}
    default_content = "delta"
    default_file_name = "ni_duty_hours_{timestamp}.csv"
    options_model = NiOptions
    mapping_model = NiMapping
    always_action = True
    columns = ("Person ID", "Name", "NI Duty Hour Name", "NI Assignment Name", "Start Date", "Start Time", "End Date",
               "End Time", "Notes", "Location")

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        return "unnamed slot" if item.person is None else None

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = []
        for item in ctx.items:
            assert item.person is not None
            m = item.mapping
            start, end = item.local(item.starts_at), item.local(item.ends_at)
            notes = " ".join(part for part in (m["notes"] or "", item.notes or "") if part)
            rows.append(Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
                "Person ID": item.person.key, "Name": item.person.display_name,
                "NI Duty Hour Name": m["duty_hour_name"], "NI Assignment Name": m["assignment_name"],
                "Start Date": us_date(start), "Start Time": hhmm(start), "End Date": us_date(end),
                "End Time": hhmm(end), "Notes": notes, "Location": m["location"]}))
        return rows
