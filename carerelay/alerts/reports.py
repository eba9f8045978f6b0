"""How fast alerts are delivered, read and acknowledged, and how often they escalate.

Grouped by alert kind, department, priority, person, unit or test code over a period of alert
creation times. Every time is measured from facts stored as they happened:

- alert level (kind, department, priority, unit, test): deliver = first recipient's device got it
  (``alert_recipients.delivered_at``) − alert raised; read = first opened − raised; acknowledge =
  ``alerts.acknowledged_at`` − raised; result to acknowledge = acknowledged − the lab result reached
  carerelay (``observations.received_at``), for alerts that carry a result (critical results).
- person level: from the moment *that person* was notified to their delivery, read and answer;
  "escalated past" counts alerts that went on to a later step while that person had not answered.

Escalation counts come from the runs (alerts that went beyond their first step; steps taken after the
first) and the trail (fallbacks, no one to reach). The unit of an alert with a result is the
patient's unit from the census; of any other, the first part of its location ("4W" of "4W^412^B").
Reports hold no patient identity; reading one is audited.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carerelay.alerts.models import Alert, AlertEvent, AlertRecipient
from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.directory.models import Department, Person
from carerelay.escalation.models import EscalationRun
from carerelay.patients import service as patients

GROUPS = ("kind", "department", "priority", "person", "unit", "test")
MAX_DAYS = 400
DEFAULT_DAYS = 30
CHUNK = 500


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime


def period(*, clock: Clock, since: datetime | None, until: datetime | None) -> Period:
    end = until or clock.now()
    start = since or end - timedelta(days=DEFAULT_DAYS)
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("give times with a zone, e.g. 2026-11-01T00:00:00Z", field="since")
    if start >= end:
        raise Invalid("since must be before until", field="since")
    if end - start > timedelta(days=MAX_DAYS):
        raise Invalid(f"a report covers at most {MAX_DAYS} days", field="since")
    return Period(start, end)


def _stats(values: list[float]) -> dict[str, float | None]:
    """Median, 90th percentile (nearest rank) and maximum, in seconds."""
    if not values:
        return {"p50": None, "p90": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)

    return {"p50": rank(0.5), "p90": rank(0.9), "max": round(ordered[-1], 3)}


@dataclass
class _Bucket:
    key: str
    label: str
    alerts: int = 0
    acknowledged: int = 0
    escalated: int = 0
    escalation_steps: int = 0
    fallbacks: int = 0
    no_one_to_reach: int = 0
    exhausted: int = 0
    escalated_past: int = 0
    deliver: list[float] = field(default_factory=list)
    read: list[float] = field(default_factory=list)
    acknowledge: list[float] = field(default_factory=list)
    result_to_ack: list[float] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"key": self.key, "label": self.label, "alerts": self.alerts,
                               "acknowledged": self.acknowledged, "escalated": self.escalated,
                               "escalation_steps": self.escalation_steps, "fallbacks": self.fallbacks,
                               "no_one_to_reach": self.no_one_to_reach, "exhausted": self.exhausted,
                               "escalated_past": self.escalated_past}
        for name in ("deliver", "read", "acknowledge", "result_to_ack"):
            values: list[float] = getattr(self, name)
            row[f"{name}_count"] = len(values)
            row.update({f"{name}_{k}_seconds": v for k, v in _stats(values).items()})
        return row


COLUMNS = list(_Bucket("", "").as_row())


@dataclass(frozen=True)
class _Facts:
    alert: Alert
    run: EscalationRun | None
    fallbacks: int
    no_one: int
    result: patients.ResultFacts | None


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start:start + CHUNK])


def _load(session: Session, span: Period, kind: str | None, department_id: int | None,
          priority: str | None) -> tuple[list[_Facts], list[AlertRecipient]]:
    query = select(Alert).where(Alert.created_at >= span.since, Alert.created_at < span.until).order_by(Alert.id)
    if kind:
        query = query.where(Alert.kind == kind)
    if department_id is not None:
        query = query.where(Alert.department_id == department_id)
    if priority:
        query = query.where(Alert.priority == priority)
    alerts = list(session.execute(query).scalars())
    ids = [a.id for a in alerts]
    runs: dict[int, EscalationRun] = {}
    events: dict[tuple[int, str], int] = {}
    recipients: list[AlertRecipient] = []
    for chunk in _chunks(ids):
        runs.update((r.alert_id, r) for r in session.execute(
            select(EscalationRun).where(EscalationRun.alert_id.in_(chunk))).scalars())
        events.update(((aid, k), n) for aid, k, n in session.execute(
            select(AlertEvent.alert_id, AlertEvent.kind, func.count())
            .where(AlertEvent.alert_id.in_(chunk), AlertEvent.kind.in_(("fallback", "no_one")))
            .group_by(AlertEvent.alert_id, AlertEvent.kind)))
        recipients.extend(session.execute(select(AlertRecipient).where(AlertRecipient.alert_id.in_(chunk))).scalars())
    observation_ids = [int(a.data["subject_id"]) for a in alerts
                       if a.data.get("subject_type") == "observation" and str(a.data.get("subject_id", "")).isdigit()]
    results: dict[int, patients.ResultFacts] = {}
    for chunk in _chunks(observation_ids):
        results.update(patients.result_facts(session=session, observation_ids=chunk))
    facts = []
    for a in alerts:
        result = results.get(int(a.data["subject_id"])) if a.data.get("subject_type") == "observation" else None
        facts.append(_Facts(a, runs.get(a.id), events.get((a.id, "fallback"), 0), events.get((a.id, "no_one"), 0),
                            result))
    return facts, recipients


def _unit(fact: _Facts) -> str:
    if fact.result is not None and fact.result.unit_code:
        return fact.result.unit_code
    location = (fact.alert.location or "").strip()
    if not location:
        return "(none)"
    return location.split("^")[0].split("-")[0] or "(none)"


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else max(0.0, (later - earlier).total_seconds())


def _steps_taken(run: EscalationRun | None) -> int:
    if run is None:
        return 0
    return run.round * len(run.snapshot.get("steps", [])) + run.step_index


def _add_alert(bucket: _Bucket, fact: _Facts, mine: list[AlertRecipient]) -> None:
    alert = fact.alert
    bucket.alerts += 1
    steps = _steps_taken(fact.run)
    bucket.escalated += steps > 0
    bucket.escalation_steps += steps
    bucket.fallbacks += fact.fallbacks
    bucket.no_one_to_reach += fact.no_one
    bucket.exhausted += fact.run is not None and fact.run.state == "exhausted"
    delivered = [r.delivered_at for r in mine if r.delivered_at is not None]
    read = [r.read_at for r in mine if r.read_at is not None]
    for values, times in ((bucket.deliver, delivered), (bucket.read, read)):
        if times:
            values.append(max(0.0, (min(times) - alert.created_at).total_seconds()))
    if alert.acknowledged_at is not None:
        bucket.acknowledged += 1
        bucket.acknowledge.append(max(0.0, (alert.acknowledged_at - alert.created_at).total_seconds()))
        if fact.result is not None:
            bucket.result_to_ack.append(max(0.0, (alert.acknowledged_at - fact.result.received_at).total_seconds()))


def _add_person(bucket: _Bucket, fact: _Facts, row: AlertRecipient) -> None:
    alert = fact.alert
    bucket.alerts += 1
    for values, at in ((bucket.deliver, row.delivered_at), (bucket.read, row.read_at)):
        seconds = _seconds(at, row.notified_at)
        if seconds is not None:
            values.append(seconds)
    if alert.acknowledged_by == row.person_id and alert.acknowledged_at is not None:
        bucket.acknowledged += 1
        bucket.acknowledge.append(max(0.0, (alert.acknowledged_at - row.notified_at).total_seconds()))
        if fact.result is not None:
            bucket.result_to_ack.append(max(0.0, (alert.acknowledged_at - fact.result.received_at).total_seconds()))
    answered_first = row.responded_at is not None and row.response != "reject"
    if not answered_first and fact.run is not None and _steps_taken(fact.run) > row.step:
        bucket.escalated_past += 1


@dataclass(frozen=True)
class Report:
    group_by: str
    since: datetime
    until: datetime
    filters: dict[str, Any]
    rows: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"group_by": self.group_by, "since": self.since.isoformat(), "until": self.until.isoformat(),
                "filters": self.filters, "columns": COLUMNS, "rows": self.rows}

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["group_by", *COLUMNS], lineterminator="\r\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({"group_by": self.group_by, **{k: "" if v is None else v for k, v in row.items()}})
        return out.getvalue()


def alert_report(
    *, session: Session, clock: Clock, actor: Actor, group_by: str, since: datetime | None = None,
    until: datetime | None = None, kind: str | None = None, department_id: int | None = None,
    priority: str | None = None,
) -> Report:
    """Rows sorted by label; ``test`` groups only alerts that carry a lab result."""
    if group_by not in GROUPS:
        raise Invalid(f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
    span = period(clock=clock, since=since, until=until)
    facts, recipients = _load(session, span, kind, department_id, priority)
    by_alert: dict[int, list[AlertRecipient]] = defaultdict(list)
    for r in recipients:
        by_alert[r.alert_id].append(r)
    buckets: dict[str, _Bucket] = {}

    def bucket(key: str, label: str) -> _Bucket:
        return buckets.setdefault(key, _Bucket(key, label))

    if group_by == "person":
        names = _names(session, Person, Person.display_name, {r.person_id for r in recipients})
        for fact in facts:
            for row in by_alert[fact.alert.id]:
                _add_person(bucket(str(row.person_id), names.get(row.person_id, "?")), fact, row)
    else:
        departments = _names(session, Department, Department.name,
                             {f.alert.department_id for f in facts if f.alert.department_id is not None})
        for fact in facts:
            if group_by == "test":
                if fact.result is None:
                    continue
                key, label = fact.result.code or "(no code)", fact.result.text or fact.result.code
            elif group_by == "department":
                dept = fact.alert.department_id
                key, label = (str(dept), departments.get(dept, "?")) if dept is not None else ("", "(none)")
            elif group_by == "unit":
                key = label = _unit(fact)
            else:
                key = label = getattr(fact.alert, group_by)
            _add_alert(bucket(key, label), fact, by_alert[fact.alert.id])
    filters = {"kind": kind, "department_id": department_id, "priority": priority}
    rows = [b.as_row() for b in sorted(buckets.values(), key=lambda b: (b.label, b.key))]
    audit.record(session=session, clock=clock, actor=actor, action="report.alerts", object_type="report",
                 object_id=group_by, detail={"since": span.since.isoformat(), "until": span.until.isoformat(),
                                             **filters, "rows": len(rows)})
    return Report(group_by, span.since, span.until, filters, rows)


def _names(session: Session, model: Any, column: Any, ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    ordered = sorted(ids)
    for chunk in _chunks(ordered):
        found.update({i: n for i, n in session.execute(select(model.id, column).where(model.id.in_(chunk)))})
    return found
