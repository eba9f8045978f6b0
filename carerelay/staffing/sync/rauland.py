"""A Rauland-Sync-style assignment system polled over REST.

The shape (written down in docs/subsystems/staffing.md, "Assignment systems"; confirm it against
the vendor's interface specification before production use):

    GET {base_url}/api/v1/facilities/{facility}/units/{unit}/assignments?start=…Z&end=…Z&page=N&pageSize=M
    Authorization: Bearer <token>        Accept: application/json
    200 {"unit": "4W", "generatedAt": "…Z", "page": 1, "totalPages": 1,
         "assignments": [{"assignmentId": "A-1001", "staff": {"employeeId": "N777", "displayName": "…"},
                          "role": "PRIMARY_RN", "location": {"unit": "4W", "room": "412", "bed": "B"},
                          "start": "…Z", "end": "…Z", "status": "ACTIVE"}]}

A unit-level assignment (charge nurse, a tech for the whole unit) has no room or bed. ``CANCELLED``
means the assignment no longer stands. Pages are read until ``totalPages``.
"""

from __future__ import annotations

from datetime import datetime

import httpx2

from carerelay.staffing.feeds import FeedItem
from carerelay.staffing.models import StaffingFeed
from carerelay.staffing.sync.base import VendorError, read_item

ROLE_CODES = {"PRIMARY_RN": "primary_nurse", "SECONDARY_RN": "secondary_nurse", "CHARGE_RN": "charge_nurse",
              "PCT": "tech", "CNA": "tech", "HUC": "unit_clerk", "RT": "respiratory_therapist", "SITTER": "sitter"}
MAX_PAGES = 50


def _z(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


class RaulandSyncAdapter:
    def fetch(self, *, http: httpx2.Client, feed: StaffingFeed, secret: str | None, unit: str, start: datetime,
              end: datetime) -> list[FeedItem]:
        base = str(feed.config["base_url"]).rstrip("/")
        facility = feed.config.get("facility", "default")
        headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {secret}"} if secret else {})
        items: list[FeedItem] = []
        page, pages = 1, 1
        while page <= pages:
            answer = http.get(f"{base}/api/v1/facilities/{facility}/units/{unit}/assignments", headers=headers,
                              params={"start": _z(start), "end": _z(end), "page": page,
                                      "pageSize": feed.config.get("page_size", 200)})
            if answer.status_code != 200:
                raise VendorError(f"{unit}: the assignment system answered {answer.status_code} "
                                  f"{answer.text[:200]!r}")
            try:
                body = answer.json()
                rows = body["assignments"]
                pages = min(int(body.get("totalPages", 1)), MAX_PAGES)
            except (ValueError, KeyError, TypeError) as exc:
                raise VendorError(f"{unit}: not the assignments shape ({type(exc).__name__}: {exc})") from None
            if not isinstance(rows, list):
                raise VendorError(f"{unit}: assignments is not a list")
            for n, obj in enumerate(rows, start=1):
                item = read_item(obj, f"{unit} page {page} item {n}", unit)
                mapped = None if item.role.lower() in feed.role_map else ROLE_CODES.get(item.role.upper())
                items.append(FeedItem(**{**item.__dict__, "role": mapped}) if mapped else item)
            page += 1
        return items
