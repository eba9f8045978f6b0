"""QGenda REST API v2.

``POST {base}/login`` (form ``email``, ``password``) returns ``access_token``; ``GET
{base}/schedule?companyKey=…&startDate=…&endDate=…`` with ``Authorization: bearer <token>`` returns
a JSON list of entries (``ScheduleKey``, ``StartDateUTC``, ``EndDateUTC``, ``StaffKey``,
``StaffFName``, ``StaffLName``, ``TaskKey``, ``TaskName``, ``IsPublished``, ``IsStruck``).
Unpublished and struck entries are not schedule facts and are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

from carerelay.scheduling.models import SyncSource
from carerelay.scheduling.sync.base import ExternalShift, VendorError


def _instant(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise VendorError(f"QGenda entry without {field}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class QGendaAdapter:
    def fetch(self, *, http: httpx2.Client, source: SyncSource, secret: str | None, start: datetime,
              end: datetime, timezone: str) -> list[ExternalShift]:
        base = source.base_url.rstrip("/")
        login = http.post(f"{base}/login", data={"email": source.username or "", "password": secret or ""})
        if login.status_code != 200:
            raise VendorError(f"QGenda login refused ({login.status_code})")
        token = login.json().get("access_token")
        if not token:
            raise VendorError("QGenda login answered without access_token")
        # Dates are the company's local dates; ask one day either side and filter on the UTC instants.
        answer = http.get(f"{base}/schedule", headers={"Authorization": f"bearer {token}"},
                          params={"companyKey": source.account,
                                  "startDate": (start - timedelta(days=1)).date().isoformat(),
                                  "endDate": (end + timedelta(days=1)).date().isoformat()})
        if answer.status_code != 200:
            raise VendorError(f"QGenda schedule request failed ({answer.status_code})")
        entries = answer.json()
        if not isinstance(entries, list):
            raise VendorError("QGenda schedule answer is not a list")
        shifts = []
        for entry in entries:
            if not entry.get("IsPublished", True) or entry.get("IsStruck", False):
                continue
            shifts.append(ExternalShift(
                key=str(entry["ScheduleKey"]), person_id=str(entry.get("StaffKey") or ""),
                person_name=f"{entry.get('StaffFName', '')} {entry.get('StaffLName', '')}".strip(),
                assignment_id=str(entry["TaskKey"]), assignment_name=str(entry.get("TaskName", "")),
                starts_at=_instant(entry.get("StartDateUTC"), "StartDateUTC"),
                ends_at=_instant(entry.get("EndDateUTC"), "EndDateUTC")))
        return shifts
