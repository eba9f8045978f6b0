"""Engine, column types and the unit of work.

Transactions are handled here and nowhere else: services flush but never commit; a unit of
work (one HTTP request, one job, one CLI command) commits or rolls back as a whole, so a failed
request leaves nothing half-written.

SQLite is tuned the way Synapse learned to: WAL, a busy timeout, foreign keys on, and every
transaction started with ``BEGIN IMMEDIATE`` so two writers queue for the lock up front instead
of failing half-way with SQLITE_BUSY when a reader upgrades.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from carerelay.core.clock import as_utc
from carerelay.core.errors import CarerelayError, Conflict

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


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


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", schema: str | None = None) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine, sqlite_synchronous)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args)


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
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


class SerialLock:
    """Reentrant for the thread that holds it, yet releasable by another thread.

    FastAPI may enter a request's unit of work in one worker thread and leave it in another, which an
    RLock refuses; code that nests units of work in one thread needs reentrancy, which a Lock lacks.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._depth and self._owner != me:
                self._cond.wait()
            self._owner = me
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
        if self._serial is None:
            yield
            return
        self._serial.acquire()
        try:
            yield
        finally:
            self._serial.release()

    def _unit_of_work(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
            self._run_after_commit(session)
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"conflicts with existing data: {_constraint_text(exc)}") from exc
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


    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A snapshot for reading that writes nothing and never takes SQLite's write lock."""
        with self._serialized():
            session = self._read_factory()
            try:
                yield session
            finally:
                session.rollback()
                session.close()

    def _run_after_commit(self, session: Session) -> None:
        for hook in self.after_commit:
            hook(session)
        session.info.clear()


def _constraint_text(exc: IntegrityError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig is not None else "integrity error"


def flush_or_conflict(session: Session, message: str) -> None:
    """Flush now so a unique violation surfaces as a Conflict the caller can name, not a 500."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc
