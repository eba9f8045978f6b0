"""SQLite done right: WAL, a busy timeout, foreign keys, FULL sync, and writers that take the lock up front."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from carerelay.core.db import Database, make_engine
from carerelay.realtime.pglisten import conninfo
from tests.conftest import Backend


def _writer_can_begin(path: Path) -> bool:
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


@pytest.mark.parametrize("synchronous, level", [("FULL", 2), ("NORMAL", 1)])
def test_sqlite_connections_are_tuned(tmp_path: Path, synchronous: str, level: int) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'tuned.db'}", sqlite_synchronous=synchronous)
    with engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000, "synchronous": level}
    engine.dispose()


def test_a_unit_of_work_takes_the_write_lock_up_front_and_a_read_does_not(tmp_path: Path) -> None:
    path = tmp_path / "locks.db"
    db = Database(make_engine(f"sqlite:///{path}"))
    with db.unit_of_work() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    with db.unit_of_work() as session:
        session.execute(text("SELECT count(*) FROM t"))  # only a read so far, yet BEGIN IMMEDIATE holds the lock
        assert not _writer_can_begin(path)
    with db.read_only() as session:
        session.execute(text("SELECT count(*) FROM t"))
        assert _writer_can_begin(path)  # WAL: readers never block the writer
    db.engine.dispose()


def test_a_node_engine_has_postgresql_end_idle_transactions_and_keeps_the_url_schema(backend: Backend) -> None:
    """`carerelay serve`'s engine: a hung node's claims must not outlive CARERELAY_DB_IDLE_TRANSACTION_SECONDS,
    and the schema given in the URL (options=-csearch_path=…) must survive the added option — in the
    engine and in the event listener's own connection, or it would LISTEN on another schema's channel."""
    if backend.name != "postgresql":
        pytest.skip("a PostgreSQL setting; SQLite is one process")
    node, other = make_engine(backend.cli_url(), idle_transaction_seconds=1.5), backend.engine()
    try:
        with node.connect() as conn:
            timeout = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        with other.connect() as conn:  # any other engine keeps PostgreSQL's default: never
            default = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
        with psycopg.connect(conninfo(node.url)) as listener:
            listener_schema = listener.execute("SELECT current_schema()").fetchone()
    finally:
        node.dispose()
        other.dispose()
    assert (timeout, schema, default) == ("1500ms", backend.schema, "0")
    assert listener_schema == (backend.schema,)


def test_savepoints_through_the_driver_keep_and_drop_what_they_should(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'savepoints.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with conn.begin_nested():
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        dropped = conn.begin_nested()
        conn.exec_driver_sql("INSERT INTO t VALUES (3)")
        with conn.begin_nested():  # a savepoint inside the one rolled back goes with it
            conn.exec_driver_sql("INSERT INTO t VALUES (4)")
        dropped.rollback()
        conn.exec_driver_sql("INSERT INTO t VALUES (5)")
    with engine.connect() as conn:
        assert [n for (n,) in conn.exec_driver_sql("SELECT n FROM t ORDER BY n")] == [1, 2, 5]
    engine.dispose()


def test_a_savepoint_the_driver_refuses_is_sqlalchemys_error(tmp_path: Path) -> None:
    """What callers catch (OperationalError, IntegrityError…) is the same as through SQLAlchemy."""
    engine = make_engine(f"sqlite:///{tmp_path / 'refused.db'}")
    with engine.begin() as conn, pytest.raises(OperationalError, match="no such savepoint") as raised:
        engine.dialect.do_release_savepoint(conn, "never_made")
    assert isinstance(raised.value.orig, sqlite3.OperationalError)
    engine.dispose()
