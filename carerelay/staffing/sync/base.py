"""The adapter interface, and reading the JSON assignment shape polls and pushes share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2

from carerelay.staffing.feeds import FeedItem
from carerelay.staffing.models import StaffingFeed

FIELDS = {"person": "staff.employeeId", "unit": "location.unit", "room": "location.room", "bed": "location.bed",
          "role": "role", "start": "start", "end": "end", "id": "assignmentId"}


class VendorError(Exception):
    """The assignment system refused, failed, or answered in a shape we do not understand."""


class Adapter(Protocol):
    """Fetch every assignment of one unit overlapping [start, end)."""

    def fetch(self, *, http: httpx2.Client, feed: StaffingFeed, secret: str | None, unit: str, start: datetime,
              end: datetime) -> list[FeedItem]: ...


class _BadInstant(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _instant(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _BadInstant(name, f"{value!r} is not an ISO 8601 instant") from None
    if parsed.tzinfo is None:
        raise _BadInstant(name, f"{value!r} has no offset (send Z or +HH:MM)")
    return parsed.astimezone(UTC)


def _text(obj: Any, *path: str) -> str:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return str(obj).strip() if obj not in (None, "") else ""


def read_item(obj: Any, where_default: str, unit_default: str = "") -> FeedItem:
    """One assignment object: {assignmentId, staff: {employeeId}, role, location: {unit, room, bed},
    start, end, status, action}. Problems are kept on the item so they are reported per item."""
    if not isinstance(obj, dict):
        return FeedItem(where=where_default, row=None, person="", unit="", role="", fields=FIELDS,
                        problem=("row", "not a JSON object"))
    key = _text(obj, "assignmentId") or None
    where = f"assignment {key}" if key else where_default
    action = _text(obj, "action").lower() or "upsert"
    if _text(obj, "status").upper() == "CANCELLED":
        action = "end"
    item = FeedItem(where=where, row=None, person=_text(obj, "staff", "employeeId"),
                    unit=_text(obj, "location", "unit") or unit_default, role=_text(obj, "role"),
                    room=_text(obj, "location", "room"), bed=_text(obj, "location", "bed"), key=key,
                    action=action, fields=FIELDS)
    if action not in ("upsert", "end"):
        return FeedItem(**{**item.__dict__, "problem": ("action", f"action {action!r} is upsert or end")})
    try:
        starts_at, ends_at = _instant(obj.get("start"), "start"), _instant(obj.get("end"), "end")
    except _BadInstant as exc:
        return FeedItem(**{**item.__dict__, "problem": (exc.name, str(exc))})
    return FeedItem(**{**item.__dict__, "starts_at": starts_at, "ends_at": ends_at})
