"""SQLite done right: WAL, a busy timeout, foreign keys, FULL sync, and writers that take the lock up front."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from carerelay.core.db import Database, make_engine


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
