"""AnesthesiaGo: the day's scheduled anesthesia providers, pushed per date.

Each changed date is sent whole (``PUT /v1/schedules/{date}``), which makes a retry harmless and a
removal simple (the date is sent without the slot). Employee id is the connector's key field; the
assignment id is the AnesthesiaGo id in the assignment's mapping. The vendor's API description is
not public: this shape is documented in docs/subsystems/exports.md and must be confirmed with the
vendor before production.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from carerelay.core.schemas import Input
from carerelay.integrations.exports.base import BuildContext, Change, ExportError, PushOutcome, Row, Scheduled, Target
from carerelay.integrations.exports.base import WindowOptions as _Window
from carerelay.integrations.exports.transport import Http, secret


class AnesthesiaGoMapping(Input):
    assignment_id: str = Field(min_length=1, max_length=60)


class AnesthesiaGoOptions(_Window):
    future_days: int = Field(default=14, ge=0, le=120)


class AnesthesiaGo(Target):
    name = "anesthesiago"
    label = "AnesthesiaGo"
    direction = "api"
    default_person_key = "unique_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "on_change"}
    default_content = "delta"
    content_type = "application/json"
    options_model = AnesthesiaGoOptions
    mapping_model = AnesthesiaGoMapping

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        return "unnamed slot" if item.person is None else None

    def rows(self, ctx: BuildContext) -> list[Row]:
        return [Row(f"slot:{item.slot_id}", on_date=item.on_date, values={
            "date": item.on_date.isoformat(), "employee_id": item.person.key,
            "name": item.person.display_name, "assignment_id": item.mapping["assignment_id"],
            "assignment_name": item.assignment_name, "start": item.starts_at.isoformat(),
            "end": item.ends_at.isoformat(), "call_order": item.call_order})
            for item in ctx.items if item.person is not None]

    def push(self, ctx: BuildContext, http: Http, changes: Sequence[Change], rows: Sequence[Row]) -> PushOutcome:
        outcome = PushOutcome(calls=http.calls)
        by_date: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            by_date[str(change.values["date"])].append(change)
            if change.before is not None and change.before.get("date") != change.values.get("date"):
                by_date[str(change.before["date"])].append(change)
        try:
            headers = {"Authorization": f"Bearer {secret(http.transport.secret_env) or ''}"}
        except ExportError as exc:
            outcome.error = exc
            return outcome
        sent: set[str] = set()
        for day in sorted(by_date):
            entries = [r.values for r in rows if r.values["date"] == day]
            body = {"date": day, "assignments": entries}
            try:
                http.request("PUT", f"/v1/schedules/{day}", headers=headers, json=body, record=body, ok=(200, 204))
            except ExportError as exc:
                if exc.retryable:
                    outcome.error = exc
                    return outcome
                outcome.item_errors.append({"date": day, "problem": str(exc)})
                continue
            for change in by_date[day]:
                if change.key not in sent:
                    sent.add(change.key)
                    outcome.done.append((change, None))
        return outcome
