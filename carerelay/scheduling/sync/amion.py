"""Amion's data feed (``GET {base}/cgi-bin/ocs?Lo=<password>&Rpt=619``), one request per local day.

Amion answers delimited text: a few title lines, then one record per assignment. Amion documents
fields 1–3 as staff name, unique id, backup id and 4–6 as assignment name, unique id, backup id; we
read fields 7–9 as the date (m-d-yy) and the local start and end (HHMM). That part is an
assumption to confirm against a live account before production use. Amion asks clients not to poll
more often than every few minutes; the sync runs every 15.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta

import httpx2

from carerelay.core.errors import Invalid
from carerelay.scheduling.models import SyncSource
from carerelay.scheduling.sync.base import ExternalShift, VendorError
from carerelay.scheduling.timeline import to_utc, zone


def _hhmm(text: str) -> time:
    text = text.strip().zfill(4)
    return time(int(text[:2]) % 24, int(text[2:4]))


def parse_report(text: str, timezone: str) -> list[ExternalShift]:
    tz = zone(timezone)
    shifts = []
    for fields in csv.reader(io.StringIO(text)):
        if len(fields) < 9 or not fields[4].strip():
            continue
        try:
            month, day, year = (int(p) for p in fields[6].strip().split("-"))
        except ValueError:
            continue
        on_date = date(2000 + year if year < 100 else year, month, day)
        start, end = _hhmm(fields[7]), _hhmm(fields[8])
        end_date = on_date + timedelta(days=1) if end <= start else on_date
        try:
            starts_at = to_utc(datetime.combine(on_date, start), tz, field="start_time")
            ends_at = to_utc(datetime.combine(end_date, end), tz, field="end_time")
        except Invalid as exc:
            raise VendorError(f"Amion record for {fields[0]!r} on {on_date}: {exc.message}") from None
        staff_id = fields[1].strip() or fields[2].strip()
        shift_id = fields[4].strip() or fields[5].strip()
        shifts.append(ExternalShift(key=f"{on_date.isoformat()}/{shift_id}/{staff_id}", person_id=staff_id,
                                    person_name=fields[0].strip(), assignment_id=shift_id,
                                    assignment_name=fields[3].strip(), starts_at=starts_at, ends_at=ends_at))
    return shifts


class AmionAdapter:
    def fetch(self, *, http: httpx2.Client, source: SyncSource, secret: str | None, start: datetime,
              end: datetime, timezone: str) -> list[ExternalShift]:
        tz = zone(timezone)
        day = (start.astimezone(tz) - timedelta(days=1)).date()
        last = end.astimezone(tz).date()
        shifts: list[ExternalShift] = []
        while day <= last:
            answer = http.get(f"{source.base_url.rstrip('/')}/cgi-bin/ocs",
                              params={"Lo": secret or source.account, "Rpt": "619", "Month": day.month,
                                      "Day": day.day, "Year": day.year})
            if answer.status_code != 200:
                raise VendorError(f"Amion request for {day} failed ({answer.status_code})")
            shifts.extend(parse_report(answer.text, timezone))
            day += timedelta(days=1)
        return shifts
