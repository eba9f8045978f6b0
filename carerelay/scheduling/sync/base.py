"""What every vendor adapter returns, and the adapter interface."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx2

from carerelay.scheduling.models import SyncSource


@dataclass(frozen=True)
class ExternalShift:
    """One assignment of one person in the vendor's schedule; instants are aware UTC."""

    key: str
    person_id: str
    person_name: str
    assignment_id: str
    assignment_name: str
    starts_at: datetime
    ends_at: datetime


class VendorError(Exception):
    """The vendor refused, failed, or answered in a shape we do not understand."""


class Adapter(Protocol):
    def fetch(self, *, http: httpx2.Client, source: SyncSource, secret: str | None, start: datetime,
              end: datetime, timezone: str) -> list[ExternalShift]: ...
