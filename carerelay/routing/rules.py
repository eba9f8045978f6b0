"""Applying personal routing rules when an alert reaches someone.

A rule matches on priority, sender type, a local time window and on/off duty (from the published
schedule, looked up only when a rule asks). Platform floors no rule can break: a critical alert is
never held or silenced, a STAT one is never held. A rule that would break a floor is skipped and the
trail says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from carerelay.core.db import flushed_connection
from carerelay.core.prepared import PreparedRows
from carerelay.directory.models import Department, Person, Site
from carerelay.routing.models import RoutingRule
from carerelay.scheduling import lookup

NEVER_HELD = frozenset({"stat", "critical"})
SENDER_TYPES = {"physician": "physician", "resident": "physician", "app": "physician", "nurse": "nurse",
                "tech": "nurse", "operator": "operator"}
ACTIONS = ("deliver", "hold", "forward", "add_contact")


@dataclass(frozen=True)
class Decision:
    action: str
    rule_id: int | None = None
    hold_until: datetime | None = None
    forward_to: str | None = None
    contact_kind: str | None = None
    after: timedelta | None = None
    note: str | None = None
    local: str | None = None  # the hold's end as the person reads it: "07:00 America/Chicago"


_PROFESSION = select(Person.profession).where(Person.id == bindparam("person_id"))


def sender_type_of(session: Session, person_id: int | None) -> str:
    """The sender kinds rules can name (physician, nurse, operator, system), from the profession."""
    if person_id is None:
        return "system"
    profession = session.execute(_PROFESSION, {"person_id": person_id}).scalar_one_or_none()
    return SENDER_TYPES.get(profession or "", "system")


def _parse(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def _zone(session: Session, department_id: int | None) -> ZoneInfo:
    if department_id is not None:
        tz = session.execute(select(Site.timezone).join(Department, Department.site_id == Site.id)
                             .where(Department.id == department_id)).scalar_one_or_none()
        if tz:
            return ZoneInfo(tz)
    return ZoneInfo("UTC")


def _in_window(local: datetime, start: str | None, end: str | None) -> bool:
    if not start or not end:
        return True
    begin, finish, now = _parse(start), _parse(end), local.time()
    return begin <= now < finish if begin <= finish else (now >= begin or now < finish)


def _next_local(local: datetime, hhmm: str, zone: ZoneInfo) -> datetime:
    """The next wall-clock HH:MM after ``local``, in UTC.

    The DST rule: a time the spring-forward night skips is read with the offset before the change,
    so it lands after the gap (02:30 → 03:30 daylight time); a time the fall-back night repeats
    happens twice, and the next of the two that is still ahead is taken.
    """
    utc = ZoneInfo("UTC")
    now = local.astimezone(utc)
    target = _parse(hhmm)
    for day in (local.date(), local.date() + timedelta(days=1)):
        naive = datetime.combine(day, target)
        folds = sorted({naive.replace(tzinfo=zone, fold=f).astimezone(utc) for f in (0, 1)})
        real = [c for c in folds if c.astimezone(zone).replace(tzinfo=None) == naive]
        for candidate in real or [naive.replace(tzinfo=zone, fold=0).astimezone(utc)]:
            if candidate > now:
                return candidate
    raise AssertionError("a wall-clock time recurs within two days")


class Rule(NamedTuple):
    """What deciding reads of a routing rule."""

    id: int
    priorities: list[str]
    sender_types: list[str]
    window_start: str | None
    window_end: str | None
    on_duty: bool | None
    action: str
    hold_until: str | None
    forward_to: str | None
    contact_kind: str | None
    after_minutes: float | None


_RULE_COLUMNS = tuple(RoutingRule.__table__.c[name] for name in Rule._fields)


def _rules_of(count: int) -> Select[Any]:
    """Every one of ``count`` people with the rules that may apply to them (their own, then their
    department's), in rule order; prepared once per count, as every escalation step runs it."""
    return (
        select(Person.id, Person.department_id, *_RULE_COLUMNS)
        .outerjoin(RoutingRule, and_(RoutingRule.active.is_(True),
                                     or_(RoutingRule.person_id == Person.id,
                                         RoutingRule.person_id.is_(None)
                                         & (RoutingRule.department_id == Person.department_id))))
        .where(Person.id.in_([bindparam(f"id_{i}", type_=Integer) for i in range(count)]))
        .order_by(Person.id, RoutingRule.person_id.is_(None), RoutingRule.rank, RoutingRule.id))


_RULES_OF = PreparedRows(_rules_of, ("id",))


def decide_all(session: Session, *, person_ids: list[int], priority: str, sender_type: str,
               at: datetime) -> dict[int, Decision]:
    """Each recipient's decision, read in one statement for a whole escalation step (up to 50 people)."""
    if not person_ids:
        return {}
    found: dict[int, tuple[int | None, list[Rule]]] = {}
    for person_id, department_id, *rule in _RULES_OF.rows(flushed_connection(session),
                                                          [{"id": pid} for pid in sorted(set(person_ids))]):
        entry = found.setdefault(person_id, (department_id, []))
        if rule[0] is not None:
            entry[1].append(Rule(*rule))
    zones: dict[int | None, ZoneInfo] = {}
    decisions = {}
    for person_id in person_ids:
        department_id, rules = found.get(person_id, (None, []))
        if not rules:
            decisions[person_id] = Decision("deliver")
            continue
        if department_id not in zones:
            zones[department_id] = _zone(session, department_id)
        decisions[person_id] = _first_match(session, rules, person_id=person_id, priority=priority,
                                            sender_type=sender_type, at=at, zone=zones[department_id])
    return decisions


def _first_match(session: Session, rules: list[Rule], *, person_id: int, priority: str, sender_type: str,
                 at: datetime, zone: ZoneInfo) -> Decision:
    local = at.astimezone(zone)
    on_duty: bool | None = None
    for rule in rules:
        if rule.priorities and priority not in rule.priorities:
            continue
        if rule.sender_types and sender_type not in rule.sender_types:
            continue
        if not _in_window(local, rule.window_start, rule.window_end):
            continue
        if rule.on_duty is not None:
            if on_duty is None:
                on_duty = bool(lookup.working(session=session, at=at, person_id=person_id))
            if on_duty != rule.on_duty:
                continue
        if rule.action == "hold":
            if priority in NEVER_HELD:
                return Decision("deliver", rule.id, note=f"rule {rule.id} would hold it, but {priority} is never held")
            until = _next_local(local, rule.hold_until or "07:00", zone)
            return Decision("hold", rule.id, hold_until=until, local=f"{until.astimezone(zone):%H:%M} {zone.key}")
        if rule.action == "forward" and rule.forward_to:
            return Decision("forward", rule.id, forward_to=rule.forward_to)
        if rule.action == "add_contact" and rule.contact_kind:
            return Decision("add_contact", rule.id, contact_kind=rule.contact_kind,
                            after=timedelta(minutes=rule.after_minutes or 0))
        return Decision("deliver", rule.id)
    return Decision("deliver")
