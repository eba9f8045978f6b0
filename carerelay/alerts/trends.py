"""Time to acknowledge as time series for the compliance officer's charts: per local day, unit and
person, with the longest-open alerts (alerts/reports.py is the tabular report behind /api/reports).

An alert counts in the window it was raised in. One still open counts as open, never as fast; its
wait so far is reported separately so an unanswered critical result cannot improve the median.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts.models import Alert, AlertStatus
from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.directory.models import Department, Person


@dataclass(frozen=True)
class Sample:
    alert_id: int
    title: str
    created_at: datetime
    seconds: float | None
    unit: str
    person: str | None


@dataclass(frozen=True)
class Group:
    label: str
    count: int
    acknowledged: int
    open: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class Report:
    kind: str
    since: datetime
    until: datetime
    overall: Group
    by_day: list[Group]
    by_unit: list[Group]
    by_person: list[Group]
    samples: list[Sample]
    longest_open: list[Sample]


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


def _group(label: str, samples: list[Sample]) -> Group:
    done = [s.seconds for s in samples if s.seconds is not None]
    return Group(label=label, count=len(samples), acknowledged=len(done), open=len(samples) - len(done),
                 median_seconds=statistics.median(done) if done else None, p90_seconds=_percentile(done, 0.9))


def time_to_acknowledge(*, session: Session, clock: Clock, actor: Actor, since: datetime, until: datetime,
                        tz: ZoneInfo, kind: str = "critical_result") -> Report:
    """``kind`` an alert kind, or ``all``. Days are local days in ``tz``."""
    if until <= since:
        raise Invalid("the report's end must be after its start", field="until")
    query = select(Alert).where(Alert.created_at >= since, Alert.created_at < until).order_by(Alert.created_at)
    if kind != "all":
        query = query.where(Alert.kind == kind)
    alerts = list(session.execute(query).scalars())
    departments = dict(session.execute(select(Department.id, Department.name)).all())
    people_ids = {a.acknowledged_by for a in alerts if a.acknowledged_by is not None}
    people = dict(session.execute(select(Person.id, Person.display_name).where(Person.id.in_(people_ids))).all()) \
        if people_ids else {}
    samples = []
    for alert in alerts:
        acknowledged = alert.status != AlertStatus.OPEN and alert.acknowledged_at is not None
        unit = departments.get(alert.department_id) if alert.department_id is not None else None
        if unit is None:
            unit = (alert.location or "").split("^")[0].split("-")[0] or "no unit"
        samples.append(Sample(
            alert_id=alert.id, title=alert.title, created_at=alert.created_at,
            seconds=(alert.acknowledged_at - alert.created_at).total_seconds()
            if acknowledged and alert.acknowledged_at else None,
            unit=unit, person=people.get(alert.acknowledged_by) if alert.acknowledged_by is not None else None))
    by_day: dict[date, list[Sample]] = defaultdict(list)
    by_unit: dict[str, list[Sample]] = defaultdict(list)
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_day[sample.created_at.astimezone(tz).date()].append(sample)
        by_unit[sample.unit].append(sample)
        if sample.person is not None:
            by_person[sample.person].append(sample)
    now = clock.now()
    still_open = sorted((s for s in samples if s.seconds is None), key=lambda s: s.created_at)[:10]
    audit.record(session=session, clock=clock, actor=actor, action="report.time_to_acknowledge",
                 object_type="alert", detail={"kind": kind, "since": since.isoformat(), "until": until.isoformat(),
                                              "alerts": len(samples)})
    return Report(
        kind=kind, since=since, until=until, overall=_group("all", samples),
        by_day=[_group(day.isoformat(), by_day[day]) for day in sorted(by_day)],
        by_unit=[_group(unit, by_unit[unit]) for unit in sorted(by_unit)],
        by_person=[_group(name, by_person[name]) for name in sorted(by_person)],
        samples=samples,
        longest_open=[Sample(s.alert_id, s.title, s.created_at, (now - s.created_at).total_seconds(), s.unit, None)
                      for s in still_open])


def kinds(*, session: Session) -> list[str]:
    return sorted(set(session.execute(select(Alert.kind).distinct()).scalars()))
