"""Full or delta content: the difference between the rows now and what the other side holds.

Why a difference of states rather than a replay of the schedule change log: the log records edits
to published schedules, but an export's rows also change when a mapping is added, a person's id is
corrected, a schedule is withdrawn and republished with draft edits, or a run failed and must catch
up. Diffing against the state of the last successful run covers all of them with one rule; the log
and the publish versions tell the runner *when* to look (``scheduling.service.change_watermark``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from carerelay.integrations.exports.base import Change, Row


def digest(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Held:
    """One item of the other side's state."""

    digest: str
    values: dict[str, Any]
    remote_id: str | None
    on_date: date | None = None


def diff(previous: dict[str, Held], current: Sequence[Row]) -> list[Change]:
    """Adds and changes in the order of ``current``, then deletes in key order (carrying the old values)."""
    changes: list[Change] = []
    seen: set[str] = set()
    for row in current:
        seen.add(row.key)
        held = previous.get(row.key)
        if held is None:
            changes.append(Change("add", row.key, row.values, on_date=row.on_date))
        elif held.digest != digest(row.values):
            changes.append(Change("change", row.key, row.values, held.remote_id, held.values, row.on_date))
    for key in sorted(k for k in previous if k not in seen):
        held = previous[key]
        changes.append(Change("delete", key, held.values, held.remote_id, on_date=held.on_date))
    return changes


def full(current: Sequence[Row]) -> list[Change]:
    return [Change("add", row.key, row.values, on_date=row.on_date) for row in current]
