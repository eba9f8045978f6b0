"""ShiftAdmin's organization API (``https://www.shiftadmin.com/<org>/…``), as its clients use it.

ShiftAdmin publishes no API reference. This adapter follows the shape that independent public
clients of the API agree on (sources and assumptions: docs/subsystems/scheduling.md, "ShiftAdmin"):

- every call is a ``POST`` under the organization's base URL with HTTP Basic authentication (an API
  user's name and password) and a JSON body;
- ``org_groups`` lists the groups (a group is a department's schedule) with ``group_id`` and
  ``time_zone`` (IANA);
- ``org_scheduled_shifts`` with ``{"start_date", "end_date", "group_id", "sort"}`` (dates
  ``YYYY-MM-DD``) lists the scheduled shifts: ``scheduled_shift_id``, ``group_id``, ``user_id``,
  ``employee_id``, ``first_name``, ``last_name``, ``shift_id`` (when present), ``shift_name``,
  ``shift_short_name``, ``shift_start`` and ``shift_end`` as local wall-clock times
  ``M/D/YYYY HH:MM`` in the group's time zone.

The source's ``account`` is the ShiftAdmin ``group_id``. People are mapped by ``user_id``; shifts
(assignments) by ``shift_id``, or by ``shift_short_name`` when the answer carries no ``shift_id``.
Local times are read with the scheduling DST rule (timeline.to_utc): a time in the skipped hour
fails the run rather than being guessed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import httpx2

from carerelay.core.errors import Invalid
from carerelay.scheduling.models import SyncSource
from carerelay.scheduling.sync.base import ExternalShift, VendorError
from carerelay.scheduling.timeline import to_utc, zone

LOCAL_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


def _local(value: Any, field: str, key: str) -> datetime:
    if isinstance(value, str):
        for fmt in LOCAL_FORMATS:
            try:
                return datetime.strptime(value.strip(), fmt)
            except ValueError:
                continue
    raise VendorError(f"ShiftAdmin scheduled shift {key}: {field} {value!r} is not a date and time")


def _post(http: httpx2.Client, source: SyncSource, secret: str | None, endpoint: str,
          body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = http.post(f"{source.base_url.rstrip('/')}/{endpoint}", json=body,
                       auth=(source.username or "", secret or ""))
    if answer.status_code in (401, 403):
        raise VendorError(f"ShiftAdmin refused the API user ({answer.status_code})")
    if answer.status_code != 200:
        raise VendorError(f"ShiftAdmin {endpoint} failed ({answer.status_code})")
    data = answer.json()
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise VendorError(f"ShiftAdmin {endpoint} did not answer a list of objects")
    return data


class ShiftAdminAdapter:
    def fetch(self, *, http: httpx2.Client, source: SyncSource, secret: str | None, start: datetime,
              end: datetime, timezone: str) -> list[ExternalShift]:
        group = source.account.strip()
        if not group.isdigit():
            raise VendorError(f"the source's account must be the ShiftAdmin group_id (a number), not {group!r}")
        groups = _post(http, source, secret, "org_groups", {})
        found = next((g for g in groups if str(g.get("group_id")) == group), None)
        if found is None:
            raise VendorError(f"ShiftAdmin has no group {group} for this API user")
        tz_name = str(found.get("time_zone") or timezone)
        try:
            tz = zone(tz_name)
        except (KeyError, ValueError) as exc:
            raise VendorError(f"ShiftAdmin group {group} has an unknown time zone {tz_name!r}") from exc
        # Local dates: one day either side, so a night in progress (started yesterday) is listed.
        first: date = (start.astimezone(tz) - timedelta(days=1)).date()
        last: date = (end.astimezone(tz) + timedelta(days=1)).date()
        rows = _post(http, source, secret, "org_scheduled_shifts", {
            "start_date": first.isoformat(), "end_date": last.isoformat(), "group_id": int(group),
            "sort": "shift_start:ASC"})
        shifts = []
        for row in rows:
            key = str(row.get("scheduled_shift_id") or "")
            if not key:
                raise VendorError("ShiftAdmin scheduled shift without scheduled_shift_id")
            if str(row.get("group_id", group)) != group:
                continue
            try:
                starts_at = to_utc(_local(row.get("shift_start"), "shift_start", key), tz, field="shift_start")
                ends_at = to_utc(_local(row.get("shift_end"), "shift_end", key), tz, field="shift_end")
            except Invalid as exc:
                raise VendorError(f"ShiftAdmin scheduled shift {key}: {exc.message}") from None
            shift_id = row.get("shift_id")
            assignment = str(shift_id) if shift_id not in (None, "") else str(row.get("shift_short_name") or "")
            shifts.append(ExternalShift(
                key=key, person_id=str(row.get("user_id") or ""),
                person_name=f"{row.get('first_name', '')} {row.get('last_name', '')}".strip(),
                assignment_id=assignment, assignment_name=str(row.get("shift_name") or assignment),
                starts_at=starts_at, ends_at=ends_at))
        return shifts
