"""Statements sent straight to the driver must store and return exactly what SQLAlchemy would.

A stored value that differed (a UTC datetime written with another format on SQLite, JSON encoded
otherwise) would compare wrongly against rows written the usual way, silently: every check here
writes one row each way and compares them, on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Engine, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from carerelay.core.db import UTCDateTime
from carerelay.core.prepared import Prepared, PreparedRows, bind_rows, binds
from tests.querycount import statements

METADATA = MetaData()
PROBE = Table("prepared_probe", METADATA, Column("id", Integer, primary_key=True), Column("at", UTCDateTime),
              Column("data", JSON), Column("flag", Boolean), Column("note", String(20)), Column("n", Integer))
COLUMNS = ("id", "at", "data", "flag", "note", "n")
INSERT = Prepared(insert(PROBE).values(binds(PROBE, COLUMNS)))
READ_CORE = select(PROBE.c.at, PROBE.c.data, PROBE.c.flag, PROBE.c.note).where(PROBE.c.id == bindparam("id"))
READ = Prepared(READ_CORE)
INSERT_ROWS = PreparedRows(lambda n: insert(PROBE).values(bind_rows(PROBE, COLUMNS, n)).returning(PROBE.c.id),
                           COLUMNS, most=3)


@pytest.fixture
def probe(engine: Engine) -> Iterator[Engine]:
    METADATA.create_all(engine)
    try:
        yield engine
    finally:
        METADATA.drop_all(engine)


def _row(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": i, "at": datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC) + timedelta(minutes=i),
            "data": {"reasons": {"7": "on call"}, "n": [1, 2]}, "flag": i % 2 == 0, "note": f"row {i}", "n": i, **extra}


def test_a_prepared_insert_stores_what_a_core_insert_stores(probe: Engine) -> None:
    with probe.begin() as conn:
        conn.execute(insert(PROBE), [_row(1)])
        INSERT.run(conn, _row(2, at=_row(1)["at"], flag=False))
        raw = conn.exec_driver_sql("SELECT at, data, flag FROM prepared_probe ORDER BY id").all()
        assert raw[0] == raw[1]
        # the UTC column orders and compares alike whichever way a row was written
        assert conn.execute(select(PROBE.c.id).where(PROBE.c.at >= _row(1)["at"])).scalars().all() == [1, 2]


def test_a_prepared_read_returns_what_a_core_read_returns(probe: Engine) -> None:
    with probe.begin() as conn:
        conn.execute(insert(PROBE), [_row(1), _row(2, data=None, note=None)])
        for i in (1, 2):
            core = conn.execute(READ_CORE, {"id": i}).one()
            assert READ.rows(conn, {"id": i}) == [tuple(core)]
        at = READ.rows(conn, {"id": 1})[0][0]
        assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
        assert READ.rows(conn, {"id": 3}) == []


def test_values_the_statement_holds_itself_need_not_be_given(probe: Engine) -> None:
    bump = Prepared(PROBE.update().where(PROBE.c.id == bindparam("id")).values(n=PROBE.c.n + 10)
                    .returning(PROBE.c.n))
    with probe.begin() as conn:
        conn.execute(insert(PROBE), [_row(1)])
        assert bump.rows(conn, {"id": 1}) == [(11,)]
        with pytest.raises(KeyError):
            INSERT.run(conn, {"id": 5})  # a value the statement needs and was not given


def test_many_rows_go_in_chunks_and_each_statement_is_seen(probe: Engine) -> None:
    with probe.begin() as conn, statements(probe) as seen:
        ids = INSERT_ROWS.rows(conn, [_row(i) for i in range(10, 17)])
        assert sorted(i for (i,) in ids) == list(range(10, 17))
        assert len(seen) == 3  # 3 + 3 + 1
        assert conn.execute(select(PROBE.c.data).where(PROBE.c.id == 16)).scalar_one() == _row(16)["data"]


def test_a_constraint_violation_is_sqlalchemys_integrity_error(probe: Engine) -> None:
    with probe.connect() as conn:
        INSERT.run(conn, _row(1))
        with pytest.raises(IntegrityError):
            INSERT.run(conn, _row(1))
        conn.rollback()
