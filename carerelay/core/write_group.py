"""SQLite's group commit: one writer thread runs the event loop's units of work in turn and commits
them together.

SQLite has one writer at a time and, with ``synchronous=FULL``, each COMMIT waits for the disk
(0.2-10 ms on a busy machine). The event loop's units of work therefore queue for one writer thread
that owns the write connection: each runs inside a SAVEPOINT of one open transaction, so a unit that
fails rolls back to its savepoint only, and the transaction is committed when nobody else is queued,
or once it holds ``MAX_MEMBERS`` units or is ``MAX_AGE_S`` old. Every unit waits for that COMMIT before
its after-commit hooks run (in the event loop, in turn order) and its caller goes on: nothing is
acknowledged before it is durable, and a reader in the group sees only data that is committed by the
time it answers. Order inside the group is the turn order, so the audit chain and event sequences stay
gap-free.

Work handed over whole (``Database.run``: a send, a nurse-call submit, a receipt) runs in the writer
thread itself, its savepoint and its end included, and the next unit follows at once. Before, every
turn went back through the event loop (the thread's result, the lock's release, the next waiter's
wake-up, its thread hop): under load the loop's other work sat between two turns, and the writer,
not the CPU, capped one node at ~450 messages a second. Units whose code runs elsewhere (a route
and its dependencies, in the event loop and worker threads) still get a turn: the writer hands them
the connection and waits until they end.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from carerelay.ops.metrics import SQLITE_GROUP_COMMITS, SQLITE_WRITER_BUSY, SQLITE_WRITER_UNITS

if TYPE_CHECKING:
    from carerelay.core.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a unit's caller learns once its group is settled: kept, result, its error, the COMMIT's error.
Outcome = tuple[bool, Any, BaseException | None, BaseException | None]


class _Unit:
    """One unit of work queued for the writer, and how it ended once served."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.done: asyncio.Future[Outcome] = loop.create_future()
        self.session: Session | None = None
        self.kept = False
        self.result: Any = None
        self.raised: BaseException | None = None

    def settle(self, failed: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result((self.kept, self.result, self.raised, failed))

    def refuse(self, error: BaseException) -> None:
        """Its transaction could not begin: the caller gets the error, nothing ran."""
        self.raised = error
        self.settle(None)


class _Job(_Unit):
    """Work run whole in the writer thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Callable[[Session], Any]) -> None:
        super().__init__(loop)
        self.work = work
        self.given_up = False  # its caller was cancelled before the writer came to it: not run at all


class _Turn(_Unit):
    """A unit whose code runs elsewhere: the writer grants it the connection, then waits for ``ended``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.granted: asyncio.Future[Connection] = loop.create_future()
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def grant(self, conn: Connection) -> None:
        if not self.granted.done():
            self.granted.set_result(conn)

    def refuse(self, error: BaseException) -> None:
        if not self.granted.done():
            self.granted.set_exception(error)

    def end(self, error: BaseException | None) -> None:
        self.error = error
        self.ended.set()


def _member_session(conn: Connection) -> Session:
    return Session(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")


def _outcome_of(outcome: Outcome) -> Any:
    kept, result, raised, failed = outcome
    if kept and failed is not None:
        raise failed
    if raised is not None:
        raise raised
    return result


class WriteGroup:
    MAX_MEMBERS = 64
    MAX_AGE_S = 0.010
    IDLE_S = 10.0  # the writer thread ends after this long with nothing queued; the next unit starts another

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._at_commit: dict[str, list[Any]] = {}

    def defer(self, key: str, items: list[Any]) -> None:
        """Work a member leaves for the group's COMMIT (``BEFORE_GROUP_COMMIT`` hooks do it), in turn order."""
        self._at_commit.setdefault(key, []).extend(items)

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work`` as one member, run in the writer thread; its result once the group is durable. A caller
        cancelled before its turn came leaves nothing written; once the work has started it finishes and
        is committed with its group, as a request that had finished a moment earlier."""
        job = _Job(asyncio.get_running_loop(), work)
        self._submit(job)
        try:
            outcome = await asyncio.shield(job.done)
        except asyncio.CancelledError:
            job.given_up = True
            raise
        result: T = _outcome_of(outcome)
        return result

    @asynccontextmanager
    async def member(self) -> AsyncIterator[Session]:
        """A member whose code runs in the event loop and worker threads, on the writer's connection."""
        turn = _Turn(asyncio.get_running_loop())
        self._submit(turn)
        try:
            conn = await turn.granted
        except BaseException:  # cancelled while queued: the writer skips the turn, or takes it back at once
            turn.end(None)
            raise
        session = turn.session = _member_session(conn)
        error: BaseException | None = None
        try:
            yield session
        except BaseException as exc:
            error = exc
        turn.end(error)
        # Shielded: a request cancelled now still has its savepoint closed and, if kept, committed.
        _outcome_of(await asyncio.shield(turn.done))

    def _submit(self, unit: _Unit) -> None:
        with self._lock:
            self._queue.put(unit)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="carerelay-sqlite-writer", daemon=True)
                self._thread.start()

    def _write(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._group(first)
            except Exception:  # a fault of the group's own (its members are settled): the writer goes on
                log.exception("the SQLite writer's group failed")

    def _group(self, first: _Unit) -> None:
        """One transaction: ``first`` and whoever queues behind it while it is open."""
        try:
            conn = self._begin()
        except BaseException as exc:  # the database cannot be written now: this unit fails, the next tries again
            with suppress(RuntimeError):  # its event loop is closed: nobody waits for it any more
                first.loop.call_soon_threadsafe(first.refuse, exc)
            return
        members: list[_Unit] = []
        opened = time.monotonic()
        unit: _Unit | None = first
        try:
            while unit is not None:
                if self._serve(conn, unit):
                    members.append(unit)
                if len(members) >= self.MAX_MEMBERS or time.monotonic() - opened >= self.MAX_AGE_S:
                    break
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    unit = None
        finally:
            failed = self._commit(conn)
            SQLITE_WRITER_BUSY.inc(time.monotonic() - opened)
            SQLITE_WRITER_UNITS.inc(len(members))
            SQLITE_GROUP_COMMITS.inc()
            self._settle(members, failed)

    def _serve(self, conn: Connection, unit: _Unit) -> bool:
        """The unit's turn; False if it was given up before its turn came (nothing of it to settle)."""
        if isinstance(unit, _Job):
            if unit.given_up:
                return False
            session = unit.session = _member_session(conn)
            error: BaseException | None = None
            try:
                unit.result = unit.work(session)
            except BaseException as exc:
                error = exc
        else:
            assert isinstance(unit, _Turn)
            if unit.ended.is_set():
                return False
            try:
                unit.loop.call_soon_threadsafe(unit.grant, conn)
            except RuntimeError:  # its event loop is closed: nobody waits for this turn any more
                return False
            unit.ended.wait()
            if unit.session is None:
                return False
            session, error = unit.session, unit.error
        try:
            unit.kept, unit.raised = self._db._finish(session, error)
        except BaseException as exc:
            unit.kept, unit.raised = False, exc
        finally:
            session.close()
        return True

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._db.engine.connect()
            _GROUPS[self._conn] = self
        return self._conn

    def _begin(self) -> Connection:
        writer = self._db._writer
        assert writer is not None
        conn = self._connection()
        writer.acquire(owner=self)
        try:
            conn.begin()
        except BaseException:
            writer.release()
            raise
        return conn

    def _commit(self, conn: Connection) -> BaseException | None:
        """COMMIT the group's own transaction. Never a fresh connection's: were ``conn`` lost during the
        group, a new one would have nothing to commit and every member would be told its work was kept."""
        deferred, self._at_commit = self._at_commit, {}
        try:
            for hook in BEFORE_GROUP_COMMIT:
                hook(conn, deferred)
            conn.commit()
            return None
        except BaseException as exc:
            conn.invalidate()
            self._conn = None
            return exc
        finally:
            writer = self._db._writer
            assert writer is not None
            writer.release()

    def _settle(self, members: list[_Unit], failed: BaseException | None) -> None:
        """Hand the group's outcome to its members' event loops: one wake-up per loop, not per member."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Unit]] = {}
        for unit in members:
            by_loop.setdefault(unit.loop, []).append(unit)
        for loop, units in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settled, units, failed)
            except RuntimeError:  # its event loop is closed: nobody waits for these any more
                continue

    def _settled(self, units: list[_Unit], failed: BaseException | None) -> None:
        """In the event loop, in turn order: the kept members' after-commit hooks (waking sockets), then
        their callers."""
        for unit in units:
            if failed is None and unit.kept and unit.session is not None:
                self._db._run_after_commit(unit.session)
            unit.settle(failed)


_GROUPS: weakref.WeakKeyDictionary[Connection, WriteGroup] = weakref.WeakKeyDictionary()
# Run in the group's transaction just before its COMMIT, with what members deferred (``WriteGroup.defer``).
BEFORE_GROUP_COMMIT: list[Callable[[Connection, dict[str, list[Any]]], None]] = []


def write_group_of(session: Session) -> WriteGroup | None:
    """The SQLite write group whose member this session is (its commit is the group's), if any."""
    bind = session.bind
    return _GROUPS.get(bind) if isinstance(bind, Connection) else None
