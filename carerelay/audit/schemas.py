"""API shapes of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carerelay.core.schemas import Output


class AuditEntryOut(Output):
    seq: int
    at: datetime
    actor_id: int | None
    actor_name: str
    action: str
    object_type: str
    object_id: str | None
    outcome: str
    ip: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class ChainReportOut(Output):
    ok: bool
    entries: int
    problem: str | None
    seq: int | None
