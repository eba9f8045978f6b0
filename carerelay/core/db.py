"""Engine, column types and the unit of work.

Transactions are handled here and nowhere else: services flush but never commit; a unit of
work (one HTTP request, one job, one CLI command) commits or rolls back as a whole, so a failed
request leaves nothing half-written.

SQLite is tuned the way Synapse learned to: WAL, a busy timeout, foreign keys on, and every
transaction started with ``BEGIN IMMEDIATE`` so two writers queue for the lock up front instead
of failing half-way with SQLITE_BUSY when a reader upgrades.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from datetime import datetime
from typing import Any, TypeVar

from anyio import CancelScope, CapacityLimiter, to_thread
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from carerelay.core.clock import as_utc
from carerelay.core.errors import CarerelayError, Conflict, Invalid
from carerelay.core.write_group import WriteGroup

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")
log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back an aware UTC datetime whatever the driver returns."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        utc = as_utc(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def normalize_url(url: str) -> str:
    """Accept the URLs people type (postgresql://) and pick the driver we ship (psycopg 3)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", schema: str | None = None,
                idle_transaction_seconds: float = 0) -> Engine:
    """``idle_transaction_seconds`` (PostgreSQL): the server ends a transaction left idle that long.

    A node that hangs or loses its network keeps its connections, and with them the transactions
    that hold its claims (an escalation timer, an escalation run, a locked row); the other nodes skip
    or wait on those for as long as the connection lives, which TCP alone stretches to hours.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        # A file database's pool holds a connection for each thread that reads at once (sockets, requests,
        # timers): with the default five, each read beyond them opened and tuned a connection of its own.
        database = make_url(url).database
        pool = {} if database in (None, "", ":memory:") else {"pool_size": 24, "max_overflow": 16}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        _tune_sqlite(engine, sqlite_synchronous)
        return engine
    options = [f"-csearch_path={schema}"] if schema else []
    if idle_transaction_seconds > 0:
        options.append(f"-cidle_in_transaction_session_timeout={round(idle_transaction_seconds * 1000)}")
    parsed = make_url(url)
    given = parsed.query.get("options")
    if options and isinstance(given, str):
        options.insert(0, given)  # e.g. a search_path in the URL: a driver takes one options string
    if options:
        parsed = parsed.update_query_dict({"options": " ".join(options)})
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers need no write lock in WAL mode; everything else queues for it up front.
        _through_driver(conn, "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    # This engine's dialect only (instance attributes, not the class): see _through_driver.
    vars(engine.dialect).update(
        do_savepoint=lambda conn, name: _through_driver(conn, f'SAVEPOINT "{name}"'),
        do_release_savepoint=lambda conn, name: _through_driver(conn, f'RELEASE SAVEPOINT "{name}"'),
        do_rollback_to_savepoint=lambda conn, name: _through_driver(conn, f'ROLLBACK TO SAVEPOINT "{name}"'))


def _through_driver(conn: Connection, statement: str) -> None:
    """BEGIN and the savepoints of SQLite's write path, straight on the driver's connection.

    Every write group member is a savepoint, and so is each step that may fail on its own (an alert's
    routing attempt): through SQLAlchemy's execution (a clause compiled through the statement cache,
    an execution context, a cursor result) they were 13 % of a nurse-call submit's CPU, measured in
    one process alternating both ways. They return nothing, so nothing of that is needed; a driver
    error is still SQLAlchemy's (an OperationalError stays one), but no statement event sees them.
    """
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    try:
        dbapi.execute(statement).close()
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error, dialect=conn.dialect) from exc


_HOLDER: contextvars.ContextVar[object | None] = contextvars.ContextVar("carerelay_serial_holder", default=None)


class SerialLock:
    """Reentrant for the code path that holds it, yet releasable by another thread.

    FastAPI may enter a unit of work in one worker thread and leave it in another, which an RLock
    refuses; code that nests units of work needs reentrancy, which a Lock lacks. The holder is the
    logical context (a ``ContextVar``), not the thread: once a unit of work has been entered in a
    pool thread, that thread goes back to the pool and may run someone else's work — which must
    wait, not slip in as a "reentrant" second user of the same connection.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: object | None = None
        self._depth = 0

    def acquire(self, owner: object | None = None) -> None:
        """``owner``: who holds it when that is not the calling context (the event loop's write group)."""
        me = _HOLDER.get() if owner is None else owner
        with self._cond:
            while self._depth and (me is None or self._owner is not me):
                self._cond.wait()
            if not self._depth:
                me = me if owner is not None else object()
                self._owner = me
                if owner is None:
                    _HOLDER.set(me)
            self._depth += 1

    def release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


AfterCommit = Callable[[Session], None]
READ_ONLY = "carerelay_read_only"


class Database:
    """Owns the engine and hands out units of work.

    ``after_commit`` hooks run once a unit of work has committed, with the finished session, so
    adapters can publish what the transaction recorded (style habit 3: publish only after commit).

    Bound to a single connection (tests: everything inside one rolled-back transaction), units of
    work become savepoints on that connection, and are taken one at a time: a connection cannot be
    used from two threads at once, and a WebSocket loop and a request do run side by side.
    """

    def __init__(self, engine: Engine, *, bind: Connection | None = None) -> None:
        self.engine = engine
        self.after_commit: list[AfterCommit] = []
        self._serial: SerialLock | None = None if bind is None else SerialLock()
        in_memory = engine.url.database in (None, "", ":memory:") or isinstance(engine.pool, StaticPool)
        grouped = bind is None and engine.dialect.name == "sqlite" and not in_memory
        # SQLite's one writer at a time, taken in this process before BEGIN IMMEDIATE: a writer waits
        # here for a wake-up instead of in SQLite's busy handler, which sleeps up to 100 ms a try.
        self._writer: SerialLock | None = SerialLock() if grouped else None
        self._group: WriteGroup | None = WriteGroup(self) if grouped else None
        self._slot_count = _connection_slots(engine) if bind is None else None
        self._slot_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = \
            weakref.WeakKeyDictionary()
        if bind is None:
            self._factory = sessionmaker(engine, expire_on_commit=False)
            self._read_factory = sessionmaker(engine.execution_options(**{READ_ONLY: True}))
        else:
            self._factory = sessionmaker(
                bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
            self._read_factory = self._factory

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """Commit if the block finishes, roll back if it raises; a lost race becomes Conflict."""
        with self._serialized():
            yield from self._unit_of_work()

    @contextmanager
    def _serialized(self) -> Iterator[None]:
        lock = self._serial or self._writer
        if lock is None:
            yield
            return
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _unit_of_work(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
            self._run_after_commit(session)
        except IntegrityError as exc:
            session.rollback()
            raise _conflict(exc) from exc
        except (DataError, OverflowError) as exc:
            session.rollback()
            if not _refused_value(exc):
                raise
            raise _out_of_range(exc) from exc
        except CarerelayError as exc:
            if exc.keep_changes:
                session.commit()
                self._run_after_commit(session)
            else:
                session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


    @asynccontextmanager
    async def unit_of_work_async(self) -> AsyncIterator[Session]:
        """A unit of work for code running in the event loop (HTTP requests, WebSocket frames).

        The session may be used from worker threads in turn (FastAPI runs each dependency and the
        route in a thread of its own); committing runs in a thread of a separate pool, so a commit
        never waits for a thread held by a request that waits on this transaction's locks. On
        SQLite these units of work take turns and commit in groups (``WriteGroup``).
        """
        if self._group is not None:
            async with self._group.member() as session:
                yield session
            return
        async with self._slot(), self._pooled_unit_of_work() as session:
            yield session

    @asynccontextmanager
    async def _pooled_unit_of_work(self) -> AsyncIterator[Session]:
        scope = self.unit_of_work()
        # Entering only creates the session (it connects on first use) unless a test's serial lock
        # must be waited for: no thread hop for it then.
        session = scope.__enter__() if self._serial is None else await to_thread.run_sync(scope.__enter__)
        try:
            yield session
        except BaseException as exc:
            # Shielded: a client that disconnects cancels its request, and a transaction left open
            # would keep its locks (the audit chain's head: everyone's) until the process ends.
            with CancelScope(shield=True):
                kept = await to_thread.run_sync(scope.__exit__, type(exc), exc, exc.__traceback__,
                                                limiter=_finishers())
            if not kept:
                raise
        else:
            with CancelScope(shield=True):
                await to_thread.run_sync(scope.__exit__, None, None, None, limiter=_finishers())

    async def in_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking database work from the event loop (a WebSocket's reads, its own short units of
        work) in a worker thread, once a connection slot is free (see ``_connection_slots``)."""
        async with self._slot():
            return await to_thread.run_sync(work, *args)

    def _slot(self) -> AbstractAsyncContextManager[Any]:
        """This event loop's connection slots (a limiter belongs to one loop; tests run several)."""
        if self._slot_count is None:
            return _NO_SLOT
        loop = asyncio.get_running_loop()
        limiter = self._slot_limiters.get(loop)
        if limiter is None:
            limiter = self._slot_limiters[loop] = CapacityLimiter(self._slot_count)
        return limiter

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` as one unit of work from the event loop, in one thread with its end (on SQLite the
        writer's: see ``WriteGroup``); returns its result once committed. The hottest routes' way: no
        thread hop or event-loop turn between the work and its commit."""
        if self._group is not None:
            return await self._group.run(work)
        async with self._slot():
            return await to_thread.run_sync(self._run_whole, work)

    def _run_whole(self, work: Callable[[Session], T]) -> T:
        with self.unit_of_work() as session:
            return work(session)

    def _finish(self, session: Session, exc: BaseException | None) -> tuple[bool, BaseException | None]:
        """End a unit of work: commit (or roll back); returns whether it kept its changes, and the error
        the caller must raise."""
        if exc is None:
            try:
                session.commit()
                return True, None
            except IntegrityError as error:
                session.rollback()
                return False, _conflict(error)
            except BaseException as error:
                session.rollback()
                return False, _out_of_range(error) if _refused_value(error) else error
        if isinstance(exc, IntegrityError):
            session.rollback()
            return False, _conflict(exc)
        if _refused_value(exc):
            session.rollback()
            return False, _out_of_range(exc)
        if isinstance(exc, CarerelayError) and exc.keep_changes:
            try:
                session.commit()
            except BaseException as error:
                session.rollback()
                return False, error
            return True, exc
        session.rollback()
        return False, exc

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A snapshot for reading that writes nothing and never takes SQLite's write lock."""
        with self._serialized() if self._serial is not None else nullcontext():
            session = self._read_factory()
            try:
                yield session
            finally:
                session.rollback()
                session.close()

    def _run_after_commit(self, session: Session) -> None:
        """A hook that fails (a socket's wake-up) is logged, never the caller's error: what it followed is
        committed, and a caller told otherwise would send it again."""
        for hook in self.after_commit:
            try:
                hook(session)
            except Exception:
                log.exception("an after-commit hook failed; what it followed is committed")
        session.info.clear()


SLOTS_KEPT_BACK = 8  # pooled connections left to the node's background threads (timers, HL7, exports…)
_NO_SLOT: AbstractAsyncContextManager[Any] = nullcontext()


def _connection_slots(engine: Engine) -> int | None:
    """How many units of work started from the event loop may hold a pooled connection at once.

    Without this a burst deadlocked on PostgreSQL: every worker thread was taken by requests and
    WebSocket reads waiting for a pooled connection, while the requests holding the connections waited
    for a thread to run their next step, until the pool's 30 s timeout. The wait now happens in the event
    loop before any thread or connection is taken, and whoever holds a slot is sure of a connection.
    SQLite's requests take turns in one write group instead.
    """
    if engine.dialect.name != "postgresql":
        return None
    pool = engine.pool
    size = getattr(pool, "size", None)
    if not callable(size):
        return None
    capacity = int(size()) + max(0, int(getattr(pool, "_max_overflow", 0)))
    return max(1, capacity - SLOTS_KEPT_BACK)


def _refused_value(exc: BaseException) -> bool:
    """The database could not take a value as given: PostgreSQL's data errors (a number out of range,
    text too long for its column), SQLite's driver refusing an integer wider than 64 bits."""
    return isinstance(exc, DataError) or (isinstance(exc, OverflowError) and "SQLite" in str(exc))


def _out_of_range(exc: BaseException) -> Invalid:
    """Input the database refused is the caller's to fix (422), never a server error (500)."""
    cause = exc.orig if isinstance(exc, DataError) and exc.orig is not None else exc
    invalid = Invalid(f"a value cannot be stored as given: {str(cause).splitlines()[0]}")
    invalid.__cause__ = exc
    return invalid


def _conflict(exc: IntegrityError) -> Conflict:
    conflict = Conflict(f"conflicts with existing data: {_constraint_text(exc)}")
    conflict.__cause__ = exc
    return conflict


_FINISHERS: list[CapacityLimiter] = []


def _finishers() -> CapacityLimiter:
    """Threads that only begin and end units of work, apart from the threads that do the work."""
    if not _FINISHERS:
        _FINISHERS.append(CapacityLimiter(8))
    return _FINISHERS[0]


def _constraint_text(exc: IntegrityError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig is not None else "integrity error"


def flush_or_conflict(session: Session, message: str) -> None:
    """Flush now so a unique violation surfaces as a Conflict the caller can name, not a 500."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc


def dialect_insert(bind: Connection | Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT, for the database in use: what two nodes creating the same
    row at the same moment need (one wins, neither fails)."""
    connection = bind.connection() if isinstance(bind, Session) else bind
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


def flushed_connection(session: Session) -> Connection:
    """The session's connection, after the autoflush a query through the session would have done,
    so a read that goes past the ORM still sees the caller's own pending edits."""
    if session.autoflush:
        session.flush()
    return session.connection()


def parameter_mark(conn: Connection) -> str:
    """The driver's own placeholder, for SQL given to ``driver_rows``."""
    return "?" if conn.dialect.name == "sqlite" else "%s"


def driver_rows(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A small statement straight through the driver, on the transaction's own connection, for the
    hottest reads (the on-call lookup, resolve()): SQLAlchemy's statement, execution and result
    machinery costs five to thirty times what the database takes to run them. It still goes through
    the connection's cursor-execute step, so events (the statement-count tests), echo logging and
    error translation (a lost PostgreSQL connection is invalidated, not reused) work as for any
    other statement. ``sql`` is plain SQL with ``parameter_mark`` placeholders; rows come back
    as the driver gives them (SQLite booleans are 0 and 1)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        conn._cursor_execute(cursor, sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
