"""The on-call cache tells the truth: after every kind of change, in and across transactions and
databases, it answers exactly what the database says (checked against the uncached query)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.directory import service as directory
from carerelay.directory.models import Department, Site
from carerelay.routing.resolver import Resolution, resolve
from carerelay.scheduling import lookup, service
from carerelay.scheduling.models import LookupVersion
from tests.integration.conftest import FreshDatabase
from tests.scheduling_factories import ADMIN, make_assignment, make_department, make_person, make_schedule, make_slot

AT = datetime(2027, 1, 10, 15, 0, tzinfo=UTC)  # 09:00 in Chicago


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    lookup.CACHE.clear()
    yield
    lookup.CACHE.clear()


def _month(db: Database, clock: FakeClock, code: str = "LKC", tz: str = "America/Chicago") -> dict[str, int]:
    """A published January 2027: day and night call, order 1, and a backup day, order 2."""
    with db.unit_of_work() as session:
        dept = make_department(session, clock, code=code, timezone=tz)
        people = [make_person(session, clock, username=f"{code.lower()}{n}", department_id=dept.id) for n in range(4)]
        day = make_assignment(session, clock, department_id=dept.id, code=f"{code}-DAY", start=time(7), end=time(19),
                              kind="call")
        night = make_assignment(session, clock, department_id=dept.id, code=f"{code}-NIGHT", start=time(19),
                                end=time(7), kind="call")
        backup = make_assignment(session, clock, department_id=dept.id, code=f"{code}-BACKUP", start=time(7),
                                 end=time(19), kind="call", call_order=2)
        schedule = make_schedule(session, clock, department_id=dept.id, starts_on=date(2027, 1, 1),
                                 ends_on=date(2027, 1, 31))
        for day_no in range(1, 32):
            on = date(2027, 1, day_no)
            make_slot(session, clock, schedule=schedule, assignment=day, on_date=on, person_id=people[day_no % 2].id)
            make_slot(session, clock, schedule=schedule, assignment=night, on_date=on,
                      person_id=people[2 + day_no % 2].id)
            if day_no % 3 == 0:
                make_slot(session, clock, schedule=schedule, assignment=backup, on_date=on, placeholder="Locum",
                          contact="+1 312 555 0100")
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        return {"dept": dept.id, "day": day.id, "night": night.id, "backup": backup.id, "schedule": schedule.id,
                **{f"p{n}": p.id for n, p in enumerate(people)}}


def _same(db: Database, ids: dict[str, int], at: datetime, code: str = "LKC") -> list[lookup.OnCall]:
    """The cached answer, checked against the database's, for every way of asking."""
    with db.unit_of_work() as session:
        for kwargs in ({"department_id": ids["dept"]}, {"assignment_id": ids["day"]},
                       {"assignment_id": ids["night"]}, {"assignment_id": ids["backup"]}):
            assert lookup.who_is_on(session=session, at=at, **kwargs) == \
                lookup._query_who_is_on(session=session, at=at, **kwargs), (kwargs, at)
        for name in (code, f"{code}-DAY", f"{code}-night".lower(), f"{code}-BACKUP", "NOBODY"):
            assert lookup.who_is_on_named(session=session, at=at, name=name) == \
                lookup._query_who_is_on_named(session=session, at=at, name=name), (name, at)
        assert lookup.on_call_now(session=session, at=at) == lookup._query_on_call_now(session=session, at=at)
        return lookup.who_is_on(session=session, at=at, department_id=ids["dept"])


def test_cached_answers_equal_the_database_at_many_instants(fresh_database: FreshDatabase) -> None:
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    rng = random.Random(5)
    for _ in range(60):
        _same(db, ids, datetime(2026, 12, 31, tzinfo=UTC) + timedelta(minutes=rng.randrange(33 * 24 * 60)))
    on = _same(db, ids, AT)
    assert [(o.call_order, o.person_id) for o in on] == [(1, ids["p0"])]
    assert on[0].reason == "LKC-DAY — slot 2027-01-10 07:00–19:00 America/Chicago, call order 1"
    with db.unit_of_work() as session:  # a placeholder keeps its name and number
        backup = lookup.who_is_on(session=session, at=AT + timedelta(days=2), assignment_id=ids["backup"])
    assert [(b.name, b.contact, b.person_id) for b in backup] == [("Locum (placeholder)", "+1 312 555 0100", None)]


def test_every_change_is_seen_at_once_in_its_own_transaction_and_after_commit(fresh_database: FreshDatabase) -> None:
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    assert [o.person_id for o in _same(db, ids, AT)] == [ids["p0"]]
    with db.unit_of_work() as session:  # a reassignment, seen inside the transaction that makes it
        slot = lookup.who_is_on(session=session, at=AT, assignment_id=ids["day"])[0].slot_id
        service.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=slot,
                            fields=service.SlotFields(person_id=ids["p1"]))
        assert [o.person_id for o in lookup.who_is_on(session=session, at=AT, department_id=ids["dept"])] == [ids["p1"]]
    assert [o.person_id for o in _same(db, ids, AT)] == [ids["p1"]]
    with db.unit_of_work() as session:  # removed: nobody on the day call then
        service.remove_slot(session=session, clock=clock, actor=ADMIN, slot_id=slot)
    assert _same(db, ids, AT) == []
    with db.unit_of_work() as session:  # the assignment renamed and reordered: its reason follows
        service.update_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=ids["night"],
                                  changes={"name": "Nights", "call_order": 3})
    night = _same(db, ids, AT.replace(hour=3))
    assert [(o.assignment_name, o.call_order) for o in night] == [("Nights", 3)]
    assert night[0].reason.startswith("Nights — slot 2027-01-09 19:00–2027-01-10 07:00")


def test_directory_changes_are_read_fresh(fresh_database: FreshDatabase) -> None:
    """Names, department codes and site zones are not cached: a rename shows at once."""
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    [before] = _same(db, ids, AT)
    with db.unit_of_work() as session:
        renamed = directory.update_person(session=session, clock=clock, actor=ADMIN, person_id=ids["p0"],
                                          changes={"given_name": "Renata"}).display_name
    assert renamed != before.name and [o.name for o in _same(db, ids, AT)] == [renamed]
    with db.unit_of_work() as session:
        site_id = session.execute(select(Site.id).where(Site.timezone == "America/Chicago")).scalars().first()
        session.execute(update(Site).where(Site.id == site_id).values(timezone="America/Denver"))
    [moved] = _same(db, ids, AT)
    assert moved.timezone == "America/Denver" and "America/Denver" in moved.reason


def test_a_department_code_is_checked_at_every_lookup(fresh_database: FreshDatabase) -> None:
    """role:<department code> is answered from the cache, but which department a code names is read
    fresh each time: a renamed code stops answering at once, and a code taken over answers for its
    new department — on this node and on another one."""
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    other = Database(make_engine(fresh_database.url))
    try:
        for node in (db, other):
            with node.unit_of_work() as session:
                assert [o.person_id for o in lookup.who_is_on_named(session=session, at=AT, name="LKC") or []] \
                    == [ids["p0"]]
        with db.unit_of_work() as session:
            session.execute(update(Department).where(Department.id == ids["dept"]).values(code="LKX"))
            assert lookup.who_is_on_named(session=session, at=AT, name="LKC") is None  # its own edit, at once
        for node in (db, other):
            with node.unit_of_work() as session:
                assert lookup.who_is_on_named(session=session, at=AT, name="LKC") is None
                assert [o.department_code for o in lookup.who_is_on_named(session=session, at=AT, name="LKX") or []] \
                    == ["LKX"]
        with db.unit_of_work() as session:
            make_department(session, clock, code="LKC", timezone="America/Chicago")
        for node in (db, other):
            with node.unit_of_work() as session:
                assert lookup.who_is_on_named(session=session, at=AT, name="LKC") == []  # no coverage there
                assert lookup._query_who_is_on_named(session=session, at=AT, name="LKC") == []
    finally:
        other.engine.dispose()


def test_an_uncommitted_or_rolled_back_change_is_seen_by_no_one_else(fresh_database: FreshDatabase,
                                                                     tmp_path: Path) -> None:
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    other = Database(make_engine(fresh_database.url))  # another node on the same database
    try:
        assert [o.person_id for o in _same(other, ids, AT)] == [ids["p0"]]
        writer = db.engine.connect()
        tx = writer.begin()
        try:
            with Session(bind=writer) as session:
                slot = lookup.who_is_on(session=session, at=AT, assignment_id=ids["day"])[0].slot_id
                service.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=slot,
                                    fields=service.SlotFields(person_id=ids["p1"]))
                session.flush()
                assert [o.person_id for o in lookup.who_is_on(session=session, at=AT, department_id=ids["dept"])] \
                    == [ids["p1"]]  # the writer sees its own edit, and the cache now holds that generation
                if db.dialect == "postgresql":  # SQLite's single writer blocks readers' writers, not readers
                    assert [o.person_id for o in _same(other, ids, AT)] == [ids["p0"]]
        finally:
            tx.rollback()
            writer.close()
        assert [o.person_id for o in _same(other, ids, AT)] == [ids["p0"]]  # rolled back: never seen
        assert [o.person_id for o in _same(db, ids, AT)] == [ids["p0"]]
    finally:
        other.engine.dispose()


def test_two_databases_in_one_process_never_share_answers(fresh_database: FreshDatabase, tmp_path: Path) -> None:
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    second = Database(make_engine(f"sqlite:///{tmp_path / 'second.db'}"))
    try:
        upgrade(second.engine)
        with second.unit_of_work() as session, db.unit_of_work() as first:
            assert session.execute(select(LookupVersion.token)).scalar_one() != \
                first.execute(select(LookupVersion.token)).scalar_one()  # random from the start
        ids2 = _month(second, clock, code="LKD", tz="Europe/Berlin")
        for _ in range(2):  # alternate: each answers for itself
            assert [o.department_id for o in _same(db, ids, AT)] == [ids["dept"]]
            assert [o.department_id for o in _same(second, ids2, AT, code="LKD")] == [ids2["dept"]]
    finally:
        second.engine.dispose()


def test_a_small_cache_drops_buckets_and_stays_right(fresh_database: FreshDatabase,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    monkeypatch.setattr(lookup, "MAX_CACHED_SLOTS", 10)
    for day in (2, 20, 2, 29, 12):
        _same(db, ids, datetime(2027, 1, day, 20, tzinfo=UTC))
    generation = lookup.CACHE.guess(id(db.engine))
    assert generation is not None and generation.slots <= 10 + 31 * 2


def test_triggers_give_every_write_a_new_token(fresh_database: FreshDatabase) -> None:
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)

    def token() -> str:
        with db.unit_of_work() as session:
            return str(session.execute(text("SELECT token FROM sched_lookup_version WHERE id = 1")).scalar_one())

    seen = {token()}
    with db.unit_of_work() as session:
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=ids["schedule"])
    seen.add(token())
    with db.unit_of_work() as session:
        session.execute(update(LookupVersion).values(token=LookupVersion.token))  # touching it is no change
        make_slot(session, clock, schedule=service.get_schedule(session=session, schedule_id=ids["schedule"]),
                  assignment=service.get_assignment(session=session, assignment_id=ids["backup"]),
                  on_date=date(2027, 1, 1), person_id=ids["p2"])
    seen.add(token())
    assert len(seen) == 3


def test_a_warm_role_resolve_sees_every_change_on_every_node(fresh_database: FreshDatabase) -> None:
    """resolve("role:…") from the warm cache, on this node and another: a swap, a person deactivated,
    a contact point added and an unpublished schedule are each seen by the very next resolve."""
    db, clock = fresh_database.db, FakeClock()
    ids = _month(db, clock)
    other = Database(make_engine(fresh_database.url))

    def everywhere(address: str) -> list[Resolution]:
        answers = []
        for node in (db, other):
            with node.unit_of_work() as session:
                answers.append(resolve(session, address, AT))
        assert answers[0] == answers[1]
        return answers

    try:
        for address in ("role:LKC-DAY", "role:LKC"):
            [first, _] = everywhere(address)  # warms both nodes
            assert first.person_ids == [ids["p0"]]
        with db.unit_of_work() as session:
            slot = lookup.who_is_on(session=session, at=AT, assignment_id=ids["day"])[0].slot_id
            swap = service.request_swap(session=session, clock=clock, actor=ADMIN, slot_id=slot,
                                        to_person_id=ids["p1"])
            service.decide_swap(session=session, clock=clock, actor=ADMIN, swap_id=swap.id, approve=True)
        for address in ("role:LKC-DAY", "role:LKC"):
            assert [r.person_ids for r in everywhere(address)] == [[ids["p1"]]] * 2
        with db.unit_of_work() as session:
            directory.add_contact_point(session=session, clock=clock, actor=ADMIN, person_id=ids["p1"],
                                        kind="pager", value="4411")
        assert [c.value for c in everywhere("role:LKC")[0].recipients[0].contacts] == ["4411"]
        with db.unit_of_work() as session:
            directory.update_person(session=session, clock=clock, actor=ADMIN, person_id=ids["p1"],
                                    changes={"active": False})
        [gone, _] = everywhere("role:LKC-DAY")
        assert gone.empty and gone.notes[0].startswith("skipped ")
        with db.unit_of_work() as session:
            service.unpublish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=ids["schedule"])
        [nobody, _] = everywhere("role:LKC")
        assert nobody.empty and "no one on the published schedule" in nobody.notes[-1]
    finally:
        other.engine.dispose()
