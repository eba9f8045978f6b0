"""Kronos Workforce Central and Workforce Dimensions: schedule files per pay period.

Both decide which rows pay cares about with a personnel-type × assignment-type matrix (by default a
non-exempt person's shifts and calls, an exempt person's shifts), and both say where pay goes:
a slot in the person's home department is charged to their home cost centre (COID); a slot worked
in another department is an away shift, charged to the person's away COID, or else to the worked
department's COID, and flagged as a transfer.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from carerelay.core.schemas import Input
from carerelay.directory.models import PersonnelType
from carerelay.integrations.exports.base import (
    BuildContext,
    CsvTarget,
    ExportError,
    Row,
    Scheduled,
    WindowOptions,
    hhmm,
    us_date,
)
from carerelay.scheduling.models import AssignmentKind

PERSONNEL_TYPES = tuple(p.value for p in PersonnelType)
KINDS = tuple(k.value for k in AssignmentKind)
DEFAULT_MATRIX = {"non_exempt": ["shift", "call"], "exempt": ["shift"]}


class KronosOptions(WindowOptions):
    include: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_MATRIX.items()},
                                          description="Personnel type → assignment kinds whose slots are sent")
    department_ids: dict[str, str] = Field(default_factory=dict,
                                           description="Our department code → Kronos department id")
    department_coids: dict[str, str] = Field(default_factory=dict,
                                             description="Our department code → its COID (for away shifts)")

    @field_validator("include")
    @classmethod
    def _matrix(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for personnel, kinds in value.items():
            if personnel not in PERSONNEL_TYPES:
                raise ValueError(f"{personnel!r} is not a personnel type ({', '.join(PERSONNEL_TYPES)})")
            for kind in kinds:
                if kind not in KINDS:
                    raise ValueError(f"{kind!r} is not an assignment kind ({', '.join(KINDS)})")
        return value


def include_reason(item: Scheduled, options: KronosOptions) -> str | None:
    person = item.person
    if person is None:
        return "unnamed slot"
    if person.personnel_type not in ("exempt", "non_exempt"):
        return "no personnel type (exempt or non-exempt)"
    if item.assignment_kind not in options.include.get(person.personnel_type, []):
        return f"{person.personnel_type} × {item.assignment_kind} is not sent"
    return None


def cost_center(item: Scheduled, options: KronosOptions) -> tuple[str, bool]:
    """(COID, away): home department → home COID; elsewhere → away COID or the worked department's."""
    person = item.person
    assert person is not None
    if person.department_id == item.department_id:
        if not person.home_cost_center:
            raise ExportError(f"{person.username} has no home cost center (COID)", retryable=False)
        return person.home_cost_center, False
    coid = person.away_cost_center or options.department_coids.get(item.department_code)
    if not coid:
        raise ExportError(f"{person.username} works {item.assignment_code} away from home and neither an away "
                          f"COID nor a COID for department {item.department_code} is set", retryable=False)
    return coid, True


def department_id(item: Scheduled, options: KronosOptions) -> str:
    found = options.department_ids.get(item.department_code)
    if not found:
        raise ExportError(f"no Kronos department id for department {item.department_code} "
                          "(options.department_ids)", retryable=False)
    return found


class WfcMapping(Input):
    pay_code: str | None = Field(default=None, max_length=60)


class KronosWorkforceCentral(CsvTarget):
    name = "kronos_wfc"
    label = "Kronos Workforce Central"
    default_person_key = "kronos_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "pay_period", "anchor": "2026-11-01", "length_days": 14}
    default_file_name = "wfc_schedule_{period_start}_{timestamp}.csv"
    options_model = KronosOptions
    mapping_model = WfcMapping
    columns = ("Employee ID", "Start Date", "Start Time", "End Date", "End Time", "Department ID", "COID",
               "Transfer", "Pay Code", "Assignment")

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        return include_reason(item, ctx.options)

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = []
        for item in ctx.items:
            assert item.person is not None
            start, end = item.local(item.starts_at), item.local(item.ends_at)
            coid, away = cost_center(item, ctx.options)
            rows.append(Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
                "Employee ID": item.person.key, "Start Date": us_date(start), "Start Time": hhmm(start),
                "End Date": us_date(end), "End Time": hhmm(end), "Department ID": department_id(item, ctx.options),
                "COID": coid, "Transfer": away, "Pay Code": item.mapping["pay_code"],
                "Assignment": item.assignment_code}))
        return rows


class WfdMapping(Input):
    segment_type: Literal["Required", "Transfer", "Break"]
    comment: str = Field(min_length=1, max_length=250)
    work_rule_transfer: str | None = Field(default=None, max_length=100)
    pay_code_edit: str | None = Field(default=None, max_length=100)
    open_shift: bool = False
    business_structure: str | None = Field(default=None, max_length=500)
    cost_center_transfer: str | None = Field(default=None, max_length=100)
    labor_categories: list[str] = Field(default_factory=list)


class WfdOptions(KronosOptions):
    labor_category_delimiter: str = Field(default="|", min_length=1, max_length=3)


class KronosWorkforceDimensions(CsvTarget):
    """First file of a pay period: every mapped shift; each later file: only the changes."""

    name = "kronos_wfd"
    label = "Kronos Workforce Dimensions"
    default_person_key = "kronos_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "pay_period", "anchor": "2026-11-01", "length_days": 14}
    default_content = "delta"
    default_file_name = "wfd_shifts_{period_start}_{timestamp}.csv"
    options_model = WfdOptions
    mapping_model = WfdMapping
    always_action = True
    columns = ("Employee ID", "Shift Date", "Start Date Time", "End Date Time", "Segment Type", "Work Rule Transfer",
               "Pay Code Edit", "Open Shift", "Business Structure", "Cost Center Transfer", "Labor Categories",
               "Comment")

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        if item.person is None:
            return None if item.mapping["open_shift"] else "unnamed slot (not an open shift)"
        return include_reason(item, ctx.options)

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = []
        delimiter = ctx.options.labor_category_delimiter
        for item in ctx.items:
            m = item.mapping
            start, end = item.local(item.starts_at), item.local(item.ends_at)
            transfer = m["cost_center_transfer"]
            if item.person is not None and transfer is None:
                coid, away = cost_center(item, ctx.options)
                transfer = coid if away else None
            rows.append(Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
                "Employee ID": item.person.key if item.person is not None else "",
                "Shift Date": start.date().isoformat(), "Start Date Time": f"{start:%Y-%m-%dT%H:%M}",
                "End Date Time": f"{end:%Y-%m-%dT%H:%M}", "Segment Type": m["segment_type"],
                "Work Rule Transfer": m["work_rule_transfer"], "Pay Code Edit": m["pay_code_edit"],
                "Open Shift": item.person is None, "Business Structure": m["business_structure"],
                "Cost Center Transfer": transfer, "Labor Categories": delimiter.join(m["labor_categories"]),
                "Comment": m["comment"]}))
        return rows
