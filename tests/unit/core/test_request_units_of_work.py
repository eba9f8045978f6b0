"""Units of work entered from the event loop: SQLite's group commit, and exits that always finish.

These use the real database of the run (not the rolled-back test transaction), on a table of their
own, since what they check is committing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from anyio import to_thread
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session

from carerelay.core.db import Database
from carerelay.core.errors import Invalid


@pytest.fixture
def probe(engine: Engine) -> Iterator[Database]:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE uow_probe (id INTEGER PRIMARY KEY, note VARCHAR(40))"))
    db = Database(engine)
    try:
        yield db
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE uow_probe"))


def _insert(session: Session, n: int) -> None:
    session.execute(text("INSERT INTO uow_probe (id, note) VALUES (:n, 'x')"), {"n": n})


def _count(db: Database) -> int:
    with db.read_only() as session:
        return int(session.execute(text("SELECT count(*) FROM uow_probe")).scalar_one())


def test_concurrent_units_of_work_all_commit_and_a_failure_stays_its_own(probe: Database) -> None:
    committed_before_hook: list[int] = []
    probe.after_commit.append(lambda session: committed_before_hook.append(_count(probe)))

    async def one(n: int) -> None:
        async with probe.unit_of_work_async() as session:
            await to_thread.run_sync(_insert, session, n)
            if n == 7:
                raise Invalid("this one is refused")

    async def main() -> list[BaseException | None]:
        return await asyncio.gather(*(one(n) for n in range(40)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [n for n, o in enumerate(outcomes) if o is not None] == [7]
    assert isinstance(outcomes[7], Invalid)
    assert _count(probe) == 39
    # every hook ran after its unit of work was durable, i.e. visible to another connection
    assert len(committed_before_hook) == 39 and min(committed_before_hook) >= 1


def test_a_cancelled_request_leaves_no_transaction_open(probe: Database) -> None:
    """A client that disconnects cancels its request; its transaction must still end (and its locks go)."""
    with probe.engine.begin() as conn:
        conn.execute(text("INSERT INTO uow_probe (id, note) VALUES (1, 'row')"))
    async def cancelled() -> None:
        taken = asyncio.Event()

        async def request() -> None:
            async with probe.unit_of_work_async() as session:
                await to_thread.run_sync(lambda: session.execute(
                    text("UPDATE uow_probe SET note = 'mine' WHERE id = 1")))
                taken.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(request())
        await taken.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async with probe.unit_of_work_async() as session:
            await asyncio.wait_for(to_thread.run_sync(lambda: session.execute(
                text("UPDATE uow_probe SET note = 'next' WHERE id = 1"))), timeout=20)

    asyncio.run(cancelled())
    with probe.read_only() as session:
        assert session.execute(text("SELECT note FROM uow_probe WHERE id = 1")).scalar_one() == "next"


def test_sqlite_units_of_work_share_commits(probe: Database) -> None:
    if probe.dialect != "sqlite":
        pytest.skip("group commit is how SQLite's single writer keeps up; PostgreSQL commits each on its own")
    commits: list[int] = []

    def count_commit(conn: object) -> None:
        commits.append(1)

    event.listen(probe.engine, "commit", count_commit)

    async def one(n: int) -> None:
        async with probe.unit_of_work_async() as session:
            await to_thread.run_sync(_insert, session, n)

    async def main() -> None:
        await asyncio.gather(*(one(n) for n in range(100, 160)))

    try:
        asyncio.run(main())
    finally:
        event.remove(probe.engine, "commit", count_commit)
    assert _count(probe) == 60
    assert len(commits) < 60


def test_a_sync_writer_and_the_group_take_turns(probe: Database) -> None:
    """Background writers (timers, HL7) and requests never both hold SQLite's write lock."""

    async def main() -> None:
        async def request(n: int) -> None:
            async with probe.unit_of_work_async() as session:
                await to_thread.run_sync(_insert, session, n)

        def background() -> None:
            for n in range(200, 220):
                with probe.unit_of_work() as session:
                    _insert(session, n)

        await asyncio.gather(to_thread.run_sync(background), *(request(n) for n in range(300, 330)))

    asyncio.run(asyncio.wait_for(main(), timeout=60))
    assert _count(probe) == 50


def test_a_groups_audit_entries_are_chained_once_at_its_commit_in_turn_order(probe: Database) -> None:
    """SQLite: members' entries wait for the group's COMMIT and are chained there in one append, in
    the order the members took their turns, whether a member's code ran in its own threads (a turn)
    or whole in the writer's (``Database.run``); a refused member's entries are not in the chain."""
    if probe.dialect != "sqlite":
        pytest.skip("only SQLite groups requests into one transaction")
    from sqlalchemy import func, select

    from carerelay.audit.models import AuditEntry
    from carerelay.audit.service import record, verify_chain
    from carerelay.core.actor import cli_actor
    from carerelay.core.clock import FakeClock

    clock, actor = FakeClock(), cli_actor("group-test")
    heads: list[str] = []
    turns: list[int] = []

    def count_head_locks(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("SELECT audit_chain_head"):
            heads.append(statement)

    def work(session: Session, n: int) -> None:
        _insert(session, 400 + n)
        turns.append(n)  # members work one at a time, in their turns
        record(session=session, clock=clock, actor=actor, action="test.group", object_type="probe", object_id=n)

    def refused(session: Session, n: int) -> None:
        work(session, n)
        raise Invalid("this one is refused")

    async def one(n: int) -> None:
        if n % 2:
            await probe.run(lambda session: refused(session, n) if n == 3 else work(session, n))
            return
        async with probe.unit_of_work_async() as session:
            await to_thread.run_sync(work, session, n)

    async def main() -> None:
        await asyncio.gather(*(one(n) for n in range(30)), return_exceptions=True)

    event.listen(probe.engine, "before_cursor_execute", count_head_locks)
    try:
        asyncio.run(main())
    finally:
        event.remove(probe.engine, "before_cursor_execute", count_head_locks)
    with probe.read_only() as session:
        written = [int(i or -1) for i in session.execute(
            select(AuditEntry.object_id).where(AuditEntry.action == "test.group").order_by(AuditEntry.seq)).scalars()]
        kept = session.execute(select(func.count()).select_from(text("uow_probe")).where(
            text("id >= 400"))).scalar_one()
        assert verify_chain(session=session).ok
    assert sorted(written) == [n for n in range(30) if n != 3] and kept == 29
    assert written == [n for n in turns if n != 3]  # chained in turn order
    assert len(heads) < 29  # one head lock per group, not per member


def test_work_run_whole_commits_and_fails_alone(probe: Database) -> None:
    """``Database.run``: the route's work and the end of its unit of work in one thread (SQLite: the
    writer's). A duplicate key in one unit is its own Conflict; an error the route catches and answers
    itself (a policy warning) leaves nothing written, as the work raised it; everyone else is committed
    (in shared COMMITs on SQLite) before their after-commit hooks run."""
    from carerelay.core.errors import Conflict

    commits: list[int] = []
    durable_before_hook: list[int] = []
    probe.after_commit.append(lambda session: durable_before_hook.append(_count(probe)))
    event.listen(probe.engine, "commit", lambda conn: commits.append(1))

    def refuse(session: Session) -> None:
        _insert(session, 599)
        raise Invalid("a warning to confirm")

    async def one(n: int) -> str:
        if n == 5:
            try:
                await probe.run(refuse)
            except Invalid:
                return "answered"
        await probe.run(lambda session: _insert(session, 500 if n == 9 else 500 + n))
        return "ok"

    async def main() -> list[object]:
        return await asyncio.gather(*(one(n) for n in range(40)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert outcomes[5] == "answered"
    assert isinstance(outcomes[9], Conflict) or isinstance(outcomes[0], Conflict)
    assert sum(1 for o in outcomes if o == "ok") == 38
    with probe.read_only() as session:
        ids = set(session.execute(text("SELECT id FROM uow_probe")).scalars())
    assert 599 not in ids and 505 not in ids and len(ids) == 38
    assert len(durable_before_hook) == 38 and min(durable_before_hook) >= 1  # the answered one kept nothing
    if probe.dialect == "sqlite":
        assert len(commits) < 38


def test_a_request_cancelled_during_work_run_whole_leaves_it_ended(probe: Database) -> None:
    """The client goes away while ``Database.run``'s work runs: the work finishes and its unit of work
    ends in the same thread (what it wrote is committed, as a request that finished a moment earlier),
    and the next request gets the writer at once."""
    import threading

    release = threading.Event()

    async def main() -> None:
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def work(session: Session) -> None:
            _insert(session, 700)
            loop.call_soon_threadsafe(started.set)
            release.wait(timeout=20)

        task = asyncio.create_task(probe.run(work))
        await started.wait()
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(probe.run(lambda session: _insert(session, 701)), timeout=20)

    asyncio.run(main())
    with probe.read_only() as session:
        assert set(session.execute(text("SELECT id FROM uow_probe")).scalars()) == {700, 701}


def test_work_given_up_before_its_turn_is_never_run(probe: Database) -> None:
    """A request cancelled while it waits for the writer (the client went away) writes nothing, and the
    units queued behind it are served as usual."""
    ran: list[int] = []

    def work(session: Session, n: int) -> None:
        ran.append(n)
        _insert(session, n)

    async def main() -> None:
        async with probe.unit_of_work_async() as session:  # holds the writer (SQLite) while the others queue
            await to_thread.run_sync(_insert, session, 800)
            given_up = asyncio.create_task(probe.run(lambda s: work(s, 801)))
            after = asyncio.create_task(probe.run(lambda s: work(s, 802)))
            await asyncio.sleep(0)  # both are queued
            given_up.cancel()
            with pytest.raises(asyncio.CancelledError):
                await given_up  # given up while the writer is still held
        await asyncio.wait_for(after, timeout=20)

    asyncio.run(main())
    with probe.read_only() as session:
        ids = set(session.execute(text("SELECT id FROM uow_probe")).scalars())
    if probe.dialect == "sqlite":
        assert ids == {800, 802} and ran == [802]
    else:  # each unit has a connection of its own: the cancel may come after the work has run
        assert {800, 802} <= ids


def test_a_failing_after_commit_hook_leaves_the_other_members_settled(probe: Database) -> None:
    """A hook that raises (a socket's wake-up failed) is logged; what it followed is committed, its caller
    and every other member of the group go on."""
    woken: list[int] = []

    def hook(session: Session) -> None:
        n = session.info["n"]
        if n == 3:
            raise RuntimeError("this hook fails")
        woken.append(int(n))

    probe.after_commit.append(hook)

    def work(session: Session, n: int) -> None:
        session.info["n"] = n
        _insert(session, 900 + n)

    async def one(n: int) -> None:
        await probe.run(lambda session: work(session, n))

    async def main() -> list[object]:
        return await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(8)), return_exceptions=True), 20)

    outcomes = asyncio.run(main())
    assert _count(probe) == 8 and outcomes == [None] * 8
    assert sorted(woken) == [0, 1, 2, 4, 5, 6, 7]


def test_the_writer_thread_ends_when_idle_and_the_next_unit_starts_another(probe: Database) -> None:
    if probe.dialect != "sqlite":
        pytest.skip("only SQLite has a writer thread")
    group = probe._group
    assert group is not None
    group.IDLE_S = 0.05

    async def one(n: int) -> None:
        await probe.run(lambda session: _insert(session, n))

    asyncio.run(one(1000))
    first = group._thread
    assert first is not None
    first.join(timeout=20)
    assert not first.is_alive() and group._thread is None
    asyncio.run(one(1001))
    assert group._thread is not None and group._thread is not first
    assert _count(probe) == 2


def test_queued_work_runs_while_the_event_loop_is_busy(probe: Database) -> None:
    """SQLite: the writer thread goes from one queued unit to the next by itself; under load the event
    loop is busy with other requests and sockets, and no unit waits for it between two turns."""
    if probe.dialect != "sqlite":
        pytest.skip("only SQLite has a writer thread")
    import threading
    from functools import partial

    ran: list[int] = []
    all_ran = threading.Event()

    def work(n: int, session: Session) -> None:
        _insert(session, 1100 + n)
        ran.append(n)
        if len(ran) == 10:
            all_ran.set()

    async def main() -> bool:
        tasks = [asyncio.create_task(probe.run(partial(work, n))) for n in range(10)]
        await asyncio.sleep(0)  # all queued
        served = all_ran.wait(timeout=20)  # the event loop is held here, doing nothing else
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
        return served

    assert asyncio.run(main())
    assert ran == list(range(10)) and _count(probe) == 10


def test_a_transaction_that_cannot_begin_fails_its_unit_and_the_next_one_writes(probe: Database) -> None:
    """SQLite: BEGIN refused (the disk is full, the file is locked by another program) fails the unit
    that was to open the group, whether its code runs in the writer or elsewhere; nobody hangs, and the
    next unit begins afresh."""
    if probe.dialect != "sqlite":
        pytest.skip("only SQLite has a writer thread")
    from sqlalchemy.exc import OperationalError

    group = probe._group
    assert group is not None
    real_begin = group._begin
    refusals = [OperationalError("BEGIN IMMEDIATE", None, Exception("disk I/O error")) for _ in range(2)]

    def begin() -> Connection:
        if refusals:
            raise refusals.pop()
        return real_begin()

    group._begin = begin  # type: ignore[method-assign]

    async def main() -> tuple[BaseException | None, BaseException | None]:
        async def turn() -> None:
            async with probe.unit_of_work_async() as session:
                await to_thread.run_sync(_insert, session, 1200)

        outcomes: list[BaseException | None] = []
        for attempt in (turn(), probe.run(lambda session: _insert(session, 1201))):
            try:
                await asyncio.wait_for(attempt, timeout=20)
                outcomes.append(None)
            except OperationalError as exc:
                outcomes.append(exc)
        await asyncio.wait_for(probe.run(lambda session: _insert(session, 1202)), timeout=20)
        return outcomes[0], outcomes[1]

    first, second = asyncio.run(main())
    assert isinstance(first, OperationalError) and isinstance(second, OperationalError)
    with probe.read_only() as session:
        assert set(session.execute(text("SELECT id FROM uow_probe")).scalars()) == {1202}


def test_the_writer_reports_how_busy_it_is(probe: Database) -> None:
    """``/metrics`` tells IT staff how close a SQLite node is to its write ceiling: the writer's busy
    time, the units it served and the COMMITs they shared."""
    if probe.dialect != "sqlite":
        pytest.skip("only SQLite has a writer thread")
    from carerelay.ops.metrics import REGISTRY

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    names = ("carerelay_sqlite_writer_busy_seconds_total", "carerelay_sqlite_writer_units_total",
             "carerelay_sqlite_group_commits_total")
    before = [sample(n) for n in names]

    from functools import partial

    async def main() -> None:
        await asyncio.gather(*(probe.run(partial(_insert, n=1300 + n)) for n in range(20)))

    asyncio.run(main())
    busy, units, commits = (sample(n) - b for n, b in zip(names, before, strict=True))
    assert units == 20 and 1 <= commits <= 20 and busy > 0


def test_a_group_whose_connection_is_lost_tells_every_member_its_work_is_not_kept(probe: Database) -> None:
    """SQLite: the connection goes away in the middle of a group (here a member invalidates it, as
    SQLAlchemy does on a disconnect). The group's COMMIT must fail for everyone in it: no member served
    before the loss is told its work was kept, and the next unit writes on a fresh connection."""
    if probe.dialect != "sqlite":
        pytest.skip("only SQLite has a writer thread")

    def lose(session: Session) -> None:
        session.connection().invalidate()

    async def main() -> list[object]:
        tasks: list[asyncio.Task[None]] = []

        async def turn() -> None:
            async with probe.unit_of_work_async() as session:  # holds the writer while the others queue
                await to_thread.run_sync(_insert, session, 1400)
                tasks.append(asyncio.create_task(probe.run(lambda s: _insert(s, 1401))))
                tasks.append(asyncio.create_task(probe.run(lose)))
                await asyncio.sleep(0)  # both queued behind this turn: one group

        first = await asyncio.wait_for(asyncio.gather(turn(), return_exceptions=True), 20)
        rest = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
        await asyncio.wait_for(probe.run(lambda s: _insert(s, 1402)), timeout=20)
        return [*first, *rest]

    outcomes = asyncio.run(main())
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    with probe.read_only() as session:
        assert set(session.execute(text("SELECT id FROM uow_probe")).scalars()) == {1402}
