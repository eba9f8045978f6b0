"""The downtime schedule backup: who is scheduled today and the next days, as CSV or XLSX.

Every published slot is in it (no mapping needed, nobody left out): it is what the switchboard
prints when carerelay is down. XLSX is written with openpyxl — a downtime file must open in whatever
spreadsheet program the unit has, and a well-kept library has years of compatibility fixes that a
hand-written writer would have to rediscover.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from carerelay.core.schemas import Input
from carerelay.integrations.exports.base import BuildContext, Change, CsvTarget, Row, Scheduled, hhmm

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class BackupOptions(Input):
    days: int = Field(default=3, ge=0, le=14, description="Days after today")
    format: Literal["csv", "xlsx"] = "csv"


class ScheduleBackup(CsvTarget):
    name = "schedule_backup"
    label = "Schedule backup file"
    default_person_key = None
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "interval", "minutes": 10}
    default_file_name = "schedule_backup.{extension}"
    options_model = BackupOptions
    mapping_model = None
    needs_person = False
    columns = ("Date", "Department", "Assignment", "Call Order", "Start", "End", "Name", "Title", "Phone", "Pager",
               "Mobile", "Notes")

    def window(self, ctx: BuildContext) -> tuple[date, date]:
        return ctx.today, ctx.today + timedelta(days=ctx.options.days)

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        return "off" if item.assignment_kind == "off" else None

    def rows(self, ctx: BuildContext) -> list[Row]:
        ordered = sorted(ctx.items, key=lambda i: (i.on_date, i.department_code, i.starts_at, i.call_order,
                                                   i.assignment_code))
        rows = []
        for item in ordered:
            start, end = item.local(item.starts_at), item.local(item.ends_at)
            contacts = item.person.contacts if item.person is not None else {}
            rows.append(Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
                "Date": item.on_date.isoformat(), "Department": item.department_name,
                "Assignment": item.assignment_name, "Call Order": item.call_order,
                "Start": f"{start:%Y-%m-%d} {hhmm(start)}", "End": f"{end:%Y-%m-%d} {hhmm(end)}",
                "Name": item.who, "Title": item.person.title if item.person is not None else None,
                "Phone": contacts.get("phone") or item.placeholder_contact, "Pager": contacts.get("pager"),
                "Mobile": contacts.get("sms"), "Notes": item.notes}))
        return rows

    def extension(self, options: BackupOptions) -> str:
        return options.format

    def render(self, ctx: BuildContext, changes: Sequence[Change], delta: bool) -> bytes:
        if ctx.options.format == "csv":
            return super().render(ctx, changes, delta)
        from openpyxl import Workbook  # loaded when a workbook is written, not by every process
        from openpyxl.styles import Font

        book = Workbook()
        sheet = book.active
        sheet.title = "Schedule"
        sheet.append([*(("Action",) if delta else ()), *self.columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for change in changes:
            values = [change.values.get(column) for column in self.columns]
            sheet.append([*((change.action.upper(),) if delta else ()), *values])
        for column, width in zip("ABCDEFGHIJKLM", (12, 24, 24, 10, 18, 18, 28, 8, 14, 12, 16, 30), strict=False):
            sheet.column_dimensions[column].width = width
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()
