"""Who is on: the answer routing needs, with the reason it will store beside every message.

Only published schedules count, and ``off`` slots never answer. A department-wide lookup returns
clinical coverage only (``shift`` and ``call``); naming an assignment returns whoever works it
(``admin`` included). No slot is longer than ``MAX_SLOT_HOURS``, so a lookup at T only looks at
slots starting in ``(T - MAX_SLOT_HOURS, T]``.

**The in-process cache** (the benchmark's p99 < 1 ms, docs/subsystems/scheduling.md). Each node
keeps published slots in memory, per assignment and per department, in 28-day buckets of their
start (compact arrays, loaded on first use, least recently used dropped past ``MAX_CACHED_SLOTS``).
It is correct across nodes and transactions because of ``sched_lookup_version``: database triggers
give that row a new random token in every transaction that writes a slot, schedule or assignment,
and every lookup reads the token in the same query that fetches what the cache does not hold —
the current department codes, site time zones and people's names for the slots it found, and for
``who_is_on_named`` (routing's ``role:``) which department a code names now. The cached
slots are used only when that token is the one they were loaded under; otherwise they are dropped
and loaded again, in the caller's transaction (so a transaction sees its own uncommitted edits,
and nobody else does: its token is never visible outside it, and a rolled-back token never comes
back). Something loaded is kept only if the token read *after* loading is still the one read before.
Scheduling writes take the token row first (``service.lock_for_writing``), so it adds no deadlock.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Select, bindparam, select
from sqlalchemy.orm import Session

from carerelay.core.db import driver_rows, flushed_connection, parameter_mark
from carerelay.core.errors import Invalid
from carerelay.directory.models import Department, Person, Site
from carerelay.scheduling.models import MAX_SLOT_HOURS, Assignment, AssignmentKind, Schedule, ScheduleStatus, Slot
from carerelay.scheduling.timeline import local_window

CLINICAL = (AssignmentKind.SHIFT.value, AssignmentKind.CALL.value)
NEXT_HORIZON = timedelta(hours=48)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
BUCKET_US = 28 * 86_400 * 1_000_000
MAX_US = MAX_SLOT_HOURS * 3_600 * 1_000_000
HORIZON_US = int(NEXT_HORIZON / US)
MAX_LEARNED_CODES = 10_000
MAX_CACHED_SLOTS = 600_000
"""About 25 MB of slot arrays: two years of a large hospital (the benchmark's 219,000 slots, held
once per assignment and once per department) fits; beyond it the least recently used buckets go."""


@dataclass(frozen=True)
class OnCall:
    slot_id: int
    assignment_id: int
    assignment_code: str
    assignment_name: str
    department_id: int
    department_code: str
    call_order: int
    person_id: int | None
    name: str
    contact: str | None
    starts_at: datetime
    ends_at: datetime
    timezone: str
    reason: str


def _us(instant: datetime) -> int:
    return (instant - EPOCH) // US


def _instant(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _check(at: datetime) -> None:
    if at.tzinfo is None:
        raise Invalid("the instant needs a time zone (UTC preferred)", field="at")


def _sorted(rows: Iterable[OnCall]) -> list[OnCall]:
    return sorted(rows, key=lambda o: (o.department_code, o.call_order, o.assignment_code, o.starts_at, o.slot_id))


# ---------------------------------------------------------------- the cache


@dataclass(frozen=True)
class _AssignmentInfo:
    code: str
    name: str
    department_id: int
    call_order: int
    kind: str


class _Bucket:
    """Published slots of one assignment or department starting in one 28-day bucket, by start."""

    __slots__ = ("assignment_ids", "ends", "person_ids", "placeholders", "slot_ids", "starts")

    def __init__(self, rows: Sequence[Row[*tuple[Any, ...]]]) -> None:
        self.slot_ids = array("q", (r[0] for r in rows))
        self.assignment_ids = array("q", (r[1] for r in rows))
        self.person_ids = array("q", (r[2] or 0 for r in rows))
        self.starts = array("q", (_us(r[5]) for r in rows))
        self.ends = array("q", (_us(r[6]) for r in rows))
        # placeholder name and contact number, kept only where there is one (or no person)
        self.placeholders = {r[0]: (r[3], r[4]) for r in rows if r[2] is None or r[3] is not None or r[4] is not None}

    def __len__(self) -> int:
        return len(self.slot_ids)

    def between(self, low_us: int, high_us: int) -> range:
        """Indexes of slots starting in ``(low_us, high_us]``."""
        return range(bisect_right(self.starts, low_us), bisect_right(self.starts, high_us))


class _Stale(Exception):
    """The generation tried does not know what the database holds: it is out of date."""


class _Found(NamedTuple):
    slot_id: int
    assignment_id: int
    person_id: int | None
    starts_us: int
    ends_us: int
    placeholder: tuple[str | None, str | None]


class _Generation:
    """What one token of one database says: assignments and the buckets loaded so far."""

    def __init__(self, token: str, assignments: dict[int, _AssignmentInfo]) -> None:
        self.token = token
        self.assignments = assignments
        self.codes = {a.code: a_id for a_id, a in assignments.items()}
        self.names: dict[str, list[int]] = {}
        for a_id in sorted(assignments):
            self.names.setdefault(assignments[a_id].name.lower(), []).append(a_id)
        # Department codes are not under the token (directory edits change them): what a code
        # named last time, only a guess that the next lookup's own read confirms or corrects.
        self.department_codes: dict[str, int] = {}
        self.buckets: OrderedDict[tuple[str, int, int], _Bucket] = OrderedDict()
        self.slots = 0
        self.answers: dict[tuple[int, str, str, str], OnCall] = {}
        self.lock = threading.Lock()

    def bucket(self, key: tuple[str, int, int]) -> _Bucket | None:
        with self.lock:
            found = self.buckets.get(key)
            if found is not None:
                self.buckets.move_to_end(key)
            return found

    def keep(self, key: tuple[str, int, int], bucket: _Bucket) -> None:
        with self.lock:
            if key in self.buckets:
                return
            self.buckets[key] = bucket
            self.slots += len(bucket)
            while self.slots > MAX_CACHED_SLOTS and len(self.buckets) > 1:
                _, dropped = self.buckets.popitem(last=False)
                self.slots -= len(dropped)

    def learn_department(self, code: str, department_id: int | None) -> None:
        if department_id is None:
            self.department_codes.pop(code, None)
            return
        if len(self.department_codes) > MAX_LEARNED_CODES:
            self.department_codes.clear()
        self.department_codes[code] = department_id

    def answer(self, key: tuple[int, str, str, str], build: Any) -> OnCall:
        """One OnCall per slot and what was read fresh for it (names, codes, zones may change)."""
        found = self.answers.get(key)
        if found is None:
            if len(self.answers) > 200_000:
                self.answers.clear()
            found = self.answers[key] = build()
        return found


class LookupCache:
    """Per process: the generations of each database by token (a few, least recently used first)."""

    GENERATIONS = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generations: OrderedDict[str, _Generation] = OrderedDict()
        self._current: dict[int, str] = {}  # database → the token last seen (a guess; always checked)

    def guess(self, database: int) -> _Generation | None:
        with self._lock:
            token = self._current.get(database)
            return self._generations.get(token) if token is not None else None

    def get(self, database: int, token: str) -> _Generation | None:
        with self._lock:
            generation = self._generations.get(token)
            if generation is not None:
                self._current[database] = token
                self._generations.move_to_end(token)
            return generation

    def keep(self, database: int, generation: _Generation) -> None:
        with self._lock:
            self._generations[generation.token] = generation
            self._current[database] = generation.token
            while len(self._generations) > self.GENERATIONS:
                self._generations.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._generations.clear()
            self._current.clear()


CACHE = LookupCache()

_TOKEN_SQL = "SELECT token FROM sched_lookup_version WHERE id = 1"
_FRESH_SQL: dict[tuple[str, int, int, bool], str] = {}


def _fresh_sql(mark: str, departments: int, people: int, code: bool) -> str:
    """One statement (one snapshot, one round trip): the token, then department code and site zone
    per department, then display name per person, then (``code``) the department a code names."""
    key = (mark, departments, people, code)
    sql = _FRESH_SQL.get(key)
    if sql is None:
        parts = ["SELECT 'v', 0, token, '' FROM sched_lookup_version WHERE id = 1"]
        if departments:
            parts.append("SELECT 'd', d.id, d.code, s.timezone FROM departments d JOIN sites s ON s.id = d.site_id "
                         f"WHERE d.id IN ({', '.join([mark] * departments)})")
        if people:
            parts.append(f"SELECT 'p', p.id, p.display_name, '' FROM people p WHERE p.id IN "
                         f"({', '.join([mark] * people)})")
        if code:
            parts.append("SELECT 'c', d.id, d.code, s.timezone FROM departments d JOIN sites s ON s.id = d.site_id "
                         f"WHERE d.code = {mark}")
        sql = _FRESH_SQL[key] = " UNION ALL ".join(parts)
    return sql


@dataclass
class _Fresh:
    token: str | None
    departments: dict[int, tuple[str, str]]
    names: dict[int, str]
    coded: int | None = None  # the department the code asked about names, if any


def _read_fresh(conn: Connection, departments: Sequence[int], people: Sequence[int],
                code: str | None = None) -> _Fresh:
    sql = _fresh_sql(parameter_mark(conn), len(departments), len(people), code is not None)
    fresh = _Fresh(None, {}, {})
    params = (*departments, *people) if code is None else (*departments, *people, code)
    for kind, ident, text, extra in driver_rows(conn, sql, params):
        if kind == "v":
            fresh.token = text
        elif kind == "p":
            fresh.names[ident] = text
        else:
            fresh.departments[ident] = (text, extra)
            if kind == "c":
                fresh.coded = ident
    return fresh


def _database_key(conn: Connection) -> int:
    """Which database: the engine's identity. Only a guess rides on it (the token decides)."""
    return id(conn.engine)


def _read_token(conn: Connection) -> str | None:
    rows = driver_rows(conn, _TOKEN_SQL)
    return str(rows[0][0]) if rows else None


def _generation(session: Session, conn: Connection) -> _Generation | None:
    """The generation of the token this transaction sees now, built if need be (None: the
    database has no lookup version row, or it changed while the assignments were being read)."""
    token = _read_token(conn)
    if token is None:
        return None
    database = _database_key(conn)
    found = CACHE.get(database, token)
    if found is not None:
        return found
    assignments = {a_id: _AssignmentInfo(code, name, dept, order, kind) for a_id, code, name, dept, order, kind in
                   session.execute(select(Assignment.id, Assignment.code, Assignment.name, Assignment.department_id,
                                          Assignment.call_order, Assignment.kind))}
    if _read_token(conn) != token:
        return None
    generation = _Generation(token, assignments)
    CACHE.keep(database, generation)
    return generation


def _bucket_query(column: Any) -> Select[*tuple[Any, ...]]:
    return (select(Slot.id, Slot.assignment_id, Slot.person_id, Slot.placeholder_name, Slot.placeholder_contact,
                   Slot.starts_at, Slot.ends_at)
            .join(Schedule, Slot.schedule_id == Schedule.id)
            .where(Schedule.status == ScheduleStatus.PUBLISHED.value, column == bindparam("ident"),
                   Slot.starts_at >= bindparam("low"), Slot.starts_at < bindparam("high"))
            .order_by(Slot.starts_at, Slot.id))


# Built once: a cold lookup loads a bucket per call, and building the statement cost more than running it.
_BUCKET_QUERIES = {"a": _bucket_query(Slot.assignment_id), "d": _bucket_query(Slot.department_id)}


def _load_bucket(conn: Connection, field: str, ident: int, number: int) -> _Bucket:
    return _Bucket(conn.execute(_BUCKET_QUERIES[field], {
        "ident": ident, "low": _instant(number * BUCKET_US), "high": _instant((number + 1) * BUCKET_US)}).all())


def _find(conn: Connection, generation: _Generation, field: str, ident: int, low_us: int, high_us: int,
          loaded: dict[tuple[str, int, int], _Bucket], ends_after_us: int | None = None) -> list[_Found]:
    """Slots of the assignment (``a``) or department (``d``) starting in ``(low_us, high_us]`` (and,
    if given, ending after ``ends_after_us``)."""
    found = []
    for number in range(low_us // BUCKET_US, high_us // BUCKET_US + 1):
        key = (field, ident, number)
        bucket = generation.bucket(key) or loaded.get(key)
        if bucket is None:
            bucket = loaded[key] = _load_bucket(conn, field, ident, number)
        for i in bucket.between(low_us, high_us):
            if ends_after_us is not None and bucket.ends[i] <= ends_after_us:
                continue
            slot_id, person = bucket.slot_ids[i], bucket.person_ids[i]
            if bucket.assignment_ids[i] not in generation.assignments:
                raise _Stale
            found.append(_Found(slot_id, bucket.assignment_ids[i], person or None, bucket.starts[i], bucket.ends[i],
                                bucket.placeholders.get(slot_id, (None, None))))
    return found


def _on_call(generation: _Generation, item: _Found, fresh: _Fresh) -> OnCall:
    info = generation.assignments[item.assignment_id]
    dept_code, tz = fresh.departments[info.department_id]
    placeholder, contact = item.placeholder
    display = fresh.names.get(item.person_id) if item.person_id is not None else None
    name = display if item.person_id is not None and display else f"{placeholder} (placeholder)"

    def build() -> OnCall:
        starts_at, ends_at = _instant(item.starts_us), _instant(item.ends_us)
        return OnCall(slot_id=item.slot_id, assignment_id=item.assignment_id, assignment_code=info.code,
                      assignment_name=info.name, department_id=info.department_id, department_code=dept_code,
                      call_order=info.call_order, person_id=item.person_id, name=name, contact=contact,
                      starts_at=starts_at, ends_at=ends_at, timezone=tz,
                      reason=f"{info.name} — slot {local_window(starts_at, ends_at, tz)}, call order {info.call_order}")

    return generation.answer((item.slot_id, dept_code, tz, name), build)


def _settle(conn: Connection, generation: _Generation, found: list[_Found],
            loaded: dict[tuple[str, int, int], _Bucket], code: str | None = None) -> _Fresh | None:
    """Fetch what is fresh for these slots with the token; keep the loaded buckets only if the token
    is still the generation's (None: it is not, the caller starts again)."""
    departments = list({generation.assignments[f.assignment_id].department_id for f in found})
    people = list({f.person_id for f in found if f.person_id is not None})
    fresh = _read_fresh(conn, departments, people, code)
    if fresh.token != generation.token:
        return None
    for key, bucket in loaded.items():
        generation.keep(key, bucket)
    return fresh


def who_is_on(
    *, session: Session, at: datetime, assignment_id: int | None = None, department_id: int | None = None
) -> list[OnCall]:
    """People (and placeholders) working at instant ``at``, in call order."""
    if (assignment_id is None) == (department_id is None):
        raise Invalid("name exactly one of assignment_id or department_id", field="assignment_id")
    _check(at)
    at_us = _us(at)
    field, ident = ("a", assignment_id) if assignment_id is not None else ("d", department_id)
    assert ident is not None
    conn = flushed_connection(session)
    for _attempt in range(3):
        generation = CACHE.guess(_database_key(conn)) if _attempt == 0 else _generation(session, conn)
        if generation is None:
            if _attempt == 0:
                continue
            break
        if field == "a" and ident not in generation.assignments:
            if _attempt == 0:  # perhaps new since the guess: ask the current generation
                continue
            return _query_who_is_on(session=session, at=at, assignment_id=assignment_id, department_id=department_id)
        loaded: dict[tuple[str, int, int], _Bucket] = {}
        try:
            found = [f for f in _find(conn, generation, field, ident, at_us - MAX_US, at_us, loaded, at_us)
                     if _wanted(generation, f, field)]
        except _Stale:
            continue
        fresh = _settle(conn, generation, found, loaded)
        if fresh is not None:
            return _sorted(_on_call(generation, f, fresh) for f in found)
    return _query_who_is_on(session=session, at=at, assignment_id=assignment_id, department_id=department_id)


def who_is_on_named(*, session: Session, at: datetime, name: str) -> list[OnCall] | None:
    """What routing's ``role:<name>`` asks, in one round trip when the buckets are cached: ``name``
    as an assignment code; else as a department code (its clinical coverage); else every assignment
    of that name, any case ("Cardiology On Call" day and night, first and second call), in call
    order. None: it is none of these.

    Assignment codes and names are under the token. A department code is not: the department it
    named last time is tried, and the same round trip reads which department the code names now;
    if that is another (or none), the lookup is made again with what was read.
    """
    _check(at)
    at_us = _us(at)
    conn = flushed_connection(session)
    generation = CACHE.guess(_database_key(conn))
    for _attempt in range(4):
        if generation is None:
            generation = _generation(session, conn)
            if generation is None:
                break
        assignment_id = generation.codes.get(name)
        department_id = None if assignment_id is not None else generation.department_codes.get(name)
        if assignment_id is not None:
            targets = [("a", assignment_id)]
        elif department_id is not None:
            targets = [("d", department_id)]
        else:
            targets = [("a", a_id) for a_id in generation.names.get(name.lower(), ())]
        loaded: dict[tuple[str, int, int], _Bucket] = {}
        try:
            found = [f for field, ident in targets
                     for f in _find(conn, generation, field, ident, at_us - MAX_US, at_us, loaded, at_us)
                     if _wanted(generation, f, field)]
        except _Stale:
            generation = None
            continue
        code = None if assignment_id is not None else name
        fresh = _settle(conn, generation, found, loaded, code)
        if fresh is None:
            generation = None
            continue
        if code is not None and fresh.coded != department_id:
            generation.learn_department(name, fresh.coded)
            continue
        if not targets:
            return None
        on = [_on_call(generation, f, fresh) for f in found]
        return _sorted(on) if assignment_id is not None or department_id is not None else _by_call_order(on)
    return _query_who_is_on_named(session=session, at=at, name=name)


def _by_call_order(items: Iterable[OnCall]) -> list[OnCall]:
    return sorted(items, key=lambda o: (o.call_order, o.starts_at, o.slot_id))


def _wanted(generation: _Generation, item: _Found, field: str) -> bool:
    kind = generation.assignments[item.assignment_id].kind
    return kind != AssignmentKind.OFF.value if field == "a" else kind in CLINICAL


def working(*, session: Session, at: datetime, person_id: int) -> list[OnCall]:
    """The person's published slots covering ``at`` (any kind but ``off``): "on duty" for routing rules."""
    query = _base().where(Slot.person_id == person_id, Slot.starts_at <= at,
                          Slot.starts_at > at - timedelta(hours=MAX_SLOT_HOURS), Slot.ends_at > at,
                          Assignment.kind != AssignmentKind.OFF.value)
    return _sorted([_row(r) for r in session.execute(query)])


def working_between(*, session: Session, since: datetime, until: datetime) -> list[OnCall]:
    """Every published slot (people and placeholders, any kind but ``off``) overlapping [since, until)."""
    query = _base().where(Slot.starts_at < until, Slot.starts_at > since - timedelta(hours=MAX_SLOT_HOURS),
                          Slot.ends_at > since, Assignment.kind != AssignmentKind.OFF.value)
    return sorted((_row(r) for r in session.execute(query)), key=lambda o: (o.starts_at, o.slot_id))


@dataclass(frozen=True)
class DepartmentCoverage:
    department_id: int
    department_code: str
    now: list[OnCall]
    next: list[OnCall]


def on_call_now(*, session: Session, at: datetime) -> list[DepartmentCoverage]:
    """Every department's clinical coverage at ``at`` and who takes over next (within 48 h).

    "Next" is, per department and call order, the slots with the earliest upcoming start: the
    hand-over an operator needs to know about, not every future shift.
    """
    _check(at)
    at_us = _us(at)
    conn = flushed_connection(session)
    for _attempt in range(3):
        generation = CACHE.guess(_database_key(conn)) if _attempt == 0 else _generation(session, conn)
        if generation is None:
            if _attempt == 0:
                continue
            break
        departments = sorted({a.department_id for a in generation.assignments.values() if a.kind in CLINICAL})
        loaded: dict[tuple[str, int, int], _Bucket] = {}
        current: dict[int, list[_Found]] = {}
        upcoming: dict[int, list[_Found]] = {}
        try:
            for dept in departments:
                items = [f for f in _find(conn, generation, "d", dept, at_us - MAX_US, at_us + HORIZON_US,
                                          loaded) if _wanted(generation, f, "d")]
                current[dept] = [f for f in items if f.starts_us <= at_us < f.ends_us]
                upcoming[dept] = _next(generation, [f for f in items if f.starts_us > at_us])
        except _Stale:
            continue
        found = [f for d in departments for f in (*current[d], *upcoming[d])]
        fresh = _settle(conn, generation, found, loaded)
        if fresh is None:
            continue
        coverage = [DepartmentCoverage(department_id=d, department_code=_code(generation, current[d] + upcoming[d],
                                                                              fresh),
                                       now=_sorted(_on_call(generation, f, fresh) for f in current[d]),
                                       next=_sorted(_on_call(generation, f, fresh) for f in upcoming[d]))
                    for d in departments if current[d] or upcoming[d]]
        return sorted(coverage, key=lambda c: c.department_code)
    return _query_on_call_now(session=session, at=at)


def _next(generation: _Generation, items: list[_Found]) -> list[_Found]:
    """Per call order, the slots with the earliest upcoming start."""
    first: dict[int, int] = {}
    for item in sorted(items, key=lambda f: (f.starts_us, f.slot_id)):
        order = generation.assignments[item.assignment_id].call_order
        first.setdefault(order, item.starts_us)
    return [f for f in items if first[generation.assignments[f.assignment_id].call_order] == f.starts_us]


def _code(generation: _Generation, items: list[_Found], fresh: _Fresh) -> str:
    return fresh.departments[generation.assignments[items[0].assignment_id].department_id][0]


# ---------------------------------------------------------------- straight from the database
# The same answers with one indexed query each: used when the cache cannot settle (the schedule
# keeps changing under it) and, in the tests, to check the cache against.


def _base() -> Select[*tuple[Any, ...]]:
    return (
        select(Slot.id, Assignment.id, Assignment.code, Assignment.name, Department.id, Department.code,
               Assignment.call_order, Slot.person_id, Person.display_name, Slot.placeholder_name,
               Slot.placeholder_contact, Slot.starts_at, Slot.ends_at, Site.timezone)
        .join(Assignment, Slot.assignment_id == Assignment.id)
        .join(Schedule, Slot.schedule_id == Schedule.id)
        .join(Department, Slot.department_id == Department.id)
        .join(Site, Department.site_id == Site.id)
        .outerjoin(Person, Slot.person_id == Person.id)
        .where(Schedule.status == ScheduleStatus.PUBLISHED.value)
    )


def _row(row: Row[*tuple[Any, ...]]) -> OnCall:
    (slot_id, assignment_id, code, name, dept_id, dept_code, call_order, person_id, display, placeholder,
     contact, starts_at, ends_at, tz) = row
    who = display if person_id is not None and display else f"{placeholder} (placeholder)"
    reason = f"{name} — slot {local_window(starts_at, ends_at, tz)}, call order {call_order}"
    return OnCall(slot_id=slot_id, assignment_id=assignment_id, assignment_code=code, assignment_name=name,
                  department_id=dept_id, department_code=dept_code, call_order=call_order, person_id=person_id,
                  name=who, contact=contact, starts_at=starts_at, ends_at=ends_at,
                  timezone=tz, reason=reason)


def _query_who_is_on(
    *, session: Session, at: datetime, assignment_id: int | None = None, department_id: int | None = None
) -> list[OnCall]:
    if (assignment_id is None) == (department_id is None):
        raise Invalid("name exactly one of assignment_id or department_id", field="assignment_id")
    _check(at)
    query = _base().where(Slot.starts_at <= at, Slot.starts_at > at - timedelta(hours=MAX_SLOT_HOURS),
                          Slot.ends_at > at)
    if assignment_id is not None:
        query = query.where(Slot.assignment_id == assignment_id, Assignment.kind != AssignmentKind.OFF.value)
    else:
        query = query.where(Slot.department_id == department_id, Assignment.kind.in_(CLINICAL))
    return _sorted(_row(r) for r in session.execute(query))


def _query_who_is_on_named(*, session: Session, at: datetime, name: str) -> list[OnCall] | None:
    _check(at)
    assignment_id = session.execute(select(Assignment.id).where(Assignment.code == name)).scalar_one_or_none()
    if assignment_id is not None:
        return _query_who_is_on(session=session, at=at, assignment_id=assignment_id)
    department_id = session.execute(select(Department.id).where(Department.code == name)).scalar_one_or_none()
    if department_id is not None:
        return _query_who_is_on(session=session, at=at, department_id=department_id)
    # The cache's match (Python's lower case, the same on both databases), not SQL's lower().
    ids = [a_id for a_id, title in session.execute(select(Assignment.id, Assignment.name).order_by(Assignment.id))
           if title.lower() == name.lower()]
    if not ids:
        return None
    return _by_call_order(o for a_id in ids for o in _query_who_is_on(session=session, at=at, assignment_id=a_id))


def _query_on_call_now(*, session: Session, at: datetime) -> list[DepartmentCoverage]:
    _check(at)
    current = session.execute(
        _base().where(Slot.starts_at <= at, Slot.starts_at > at - timedelta(hours=MAX_SLOT_HOURS),
                      Slot.ends_at > at, Assignment.kind.in_(CLINICAL))
    )
    upcoming = session.execute(
        _base().where(Slot.starts_at > at, Slot.starts_at <= at + NEXT_HORIZON, Assignment.kind.in_(CLINICAL))
        .order_by(Slot.starts_at, Slot.id)
    )
    now_by_dept: dict[int, list[OnCall]] = {}
    codes: dict[int, str] = {}
    for row in current:
        item = _row(row)
        now_by_dept.setdefault(item.department_id, []).append(item)
        codes[item.department_id] = item.department_code
    next_by_dept: dict[int, list[OnCall]] = {}
    first_start: dict[tuple[int, int], datetime] = {}
    for row in upcoming:
        item = _row(row)
        start = first_start.setdefault((item.department_id, item.call_order), item.starts_at)
        if item.starts_at == start:
            next_by_dept.setdefault(item.department_id, []).append(item)
            codes[item.department_id] = item.department_code
    return [
        DepartmentCoverage(department_id=d, department_code=codes[d], now=_sorted(now_by_dept.get(d, [])),
                           next=_sorted(next_by_dept.get(d, [])))
        for d in sorted(codes, key=lambda d: codes[d])
    ]


def person_slots(*, session: Session, person_id: int, since: datetime, days: int = 14) -> list[OnCall]:
    """A person's published slots that end after ``since`` and start within ``days``: "my schedule"."""
    query = _base().where(Slot.person_id == person_id, Slot.ends_at > since,
                          Slot.starts_at < since + timedelta(days=days), Assignment.kind != AssignmentKind.OFF.value)
    return sorted((_row(r) for r in session.execute(query)), key=lambda o: (o.starts_at, o.slot_id))
