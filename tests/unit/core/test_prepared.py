"""Statements sent straight to the driver must store and return exactly what SQLAlchemy would, and
mapped objects written or read that way must behave in the session as the ORM's own.

A stored value that differed (a UTC datetime written with another format on SQLite, JSON encoded
otherwise) would compare wrongly against rows written the usual way, silently: every check here
writes one row each way and compares them, on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from carerelay.core.db import UTCDateTime
from carerelay.core.prepared import (
    Prepared,
    PreparedInsert,
    PreparedLoad,
    PreparedRows,
    PreparedUpdate,
    bind_rows,
    binds,
    built,
)
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


def test_values_shared_by_every_chunk_are_given_once(probe: Engine) -> None:
    stamped = PreparedRows(lambda n: insert(PROBE).values(
        [{**row, "note": bindparam("note", type_=PROBE.c.note.type)} for row in bind_rows(PROBE, ("id", "n"), n)]),
        ("id", "n"), most=2)
    with probe.begin() as conn:
        stamped.rows(conn, [{"id": i, "n": i * 10} for i in range(1, 6)], {"note": "shared"})
        assert conn.execute(select(PROBE.c.id, PROBE.c.n, PROBE.c.note).order_by(PROBE.c.id)).all() == [
            (i, i * 10, "shared") for i in range(1, 6)]


class _CountedJSON(TypeDecorator[Any]):
    """JSON that counts how often a value is processed for the driver."""

    impl = JSON
    cache_ok = True
    calls: ClassVar[list[object]] = []

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        self.calls.append(value)
        return value


def test_a_value_every_row_shares_is_processed_once_and_stored_in_each(probe: Engine) -> None:
    """A fan-out's payload fills every row of its INSERT: processed (serialized) once, not once a row,
    and stored as each row would have stored it on its own."""
    shared = PreparedRows(lambda n: insert(PROBE).values(
        [{**row, "data": bindparam("shared_data", type_=_CountedJSON())} for row in bind_rows(PROBE, ("id",), n)]),
        ("id",), most=50)
    data = {"text": "Zimmer 4 – bitte kommen ✅", "n": [1, None]}
    _CountedJSON.calls.clear()
    with probe.begin() as conn:
        shared.rows(conn, [{"id": i} for i in range(1, 6)], {"shared_data": data})
        conn.execute(insert(PROBE), [{"id": 9, "data": data}])
        raw = {r for (r,) in conn.exec_driver_sql("SELECT CAST(data AS TEXT) FROM prepared_probe")}
        assert conn.execute(select(PROBE.c.data).where(PROBE.c.id <= 5)).scalars().all() == [data] * 5
    assert _CountedJSON.calls == [data] and len(raw) == 1


def test_a_constraint_violation_is_sqlalchemys_integrity_error(probe: Engine) -> None:
    with probe.connect() as conn:
        INSERT.run(conn, _row(1))
        with pytest.raises(IntegrityError):
            INSERT.run(conn, _row(1))
        conn.rollback()


# ------------------------------------------------------------------ mapped objects


class _Base(DeclarativeBase):
    metadata = MetaData()


class Thing(_Base):
    __tablename__ = "prepared_thing"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    flag: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(String(20))
    score: Mapped[float | None] = mapped_column()  # PostgreSQL's numeric types need the driver's type code


class Tag(_Base):
    """A table whose key the caller gives (add_all)."""

    __tablename__ = "prepared_tag"
    thing_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)


INSERT_THING = PreparedInsert(Thing)
INSERT_TAG = PreparedInsert(Tag)
RENOTE = PreparedUpdate(Thing, ("note", "flag"))
BY_NOTE = PreparedLoad(select(Thing).where(Thing.note == bindparam("note")).order_by(Thing.id))
AT = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture
def things(engine: Engine) -> Iterator[sessionmaker[Session]]:
    _Base.metadata.create_all(engine)
    try:
        yield sessionmaker(engine, expire_on_commit=False)
    finally:
        _Base.metadata.drop_all(engine)


def _stored(session: Session, table: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in session.connection().exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2")]


def test_a_prepared_object_insert_stores_what_the_orm_stores_and_needs_no_flush(
        things: sessionmaker[Session]) -> None:
    with things.begin() as session:
        session.add(Thing(at=AT, note="orm"))
        session.flush()
        thing = INSERT_THING.add(session, Thing(at=AT, note="orm"))
        assert thing.data == {} and thing.flag is True  # the columns' defaults, as the ORM's
        state = inspect(thing)
        assert state.persistent and not session.new and not session.dirty
        first, second = _stored(session, "prepared_thing")
        assert first[1:] == second[1:]
        thing.note = "changed"  # tracked as for any loaded object
        assert session.dirty
    with things() as session:
        assert session.get_one(Thing, thing.id).note == "changed"


def test_a_built_object_reads_as_the_constructor_would_make_it_and_stays_transient() -> None:
    made = built(Thing, {"id": 7, "at": AT, "data": {"a": 1}, "flag": False, "note": "x", "score": None})
    given = Thing(id=7, at=AT, data={"a": 1}, flag=False, note="x", score=None)
    columns = ("id", "at", "data", "flag", "note", "score")
    assert [getattr(made, c) for c in columns] == [getattr(given, c) for c in columns]
    assert inspect(made).transient


def test_a_prepared_insert_writes_what_the_session_holds_pending_first(things: sessionmaker[Session]) -> None:
    with things.begin() as session:
        pending = Thing(at=AT, note="first")
        session.add(pending)
        later = INSERT_THING.add(session, Thing(at=AT, note="second"))
        assert pending.id is not None and pending.id < later.id


def test_rows_with_their_own_keys_go_in_one_statement(things: sessionmaker[Session]) -> None:
    with things.begin() as session:
        session.connection()
        with statements(session.get_bind()) as seen:  # type: ignore[arg-type]
            tags = [Tag(thing_id=1, name="a"), Tag(thing_id=1, name="b", rank=3)]
            INSERT_TAG.add_all(session, tags)
        assert len(seen) == 1
        assert all(inspect(t).persistent for t in tags) and tags[0].rank == 0
        assert _stored(session, "prepared_tag") == [(1, "a", 0), (1, "b", 3)]
    with pytest.raises(AssertionError):
        INSERT_THING.add_all(Session(), [Thing(at=AT)])


def test_a_prepared_update_leaves_nothing_to_flush(things: sessionmaker[Session]) -> None:
    with things.begin() as session:
        thing = INSERT_THING.add(session, Thing(at=AT, note="old"))
        thing.data = {"kept": "pending"}  # written first, as a query's autoflush would
        RENOTE.apply(session, thing, {"note": "new", "flag": False})
        assert thing.note == "new" and thing.flag is False
        assert not session.dirty
    with things() as session:
        again = session.get_one(Thing, thing.id)
        assert (again.note, again.flag, again.data) == ("new", False, {"kept": "pending"})


def test_a_prepared_load_gives_the_sessions_own_objects(things: sessionmaker[Session]) -> None:
    with things.begin() as session:
        INSERT_THING.add(session, Thing(at=AT, data={"n": [1]}, note="x", score=2.5))
    with things() as session:
        found: Thing | None = BY_NOTE.first(session, {"note": "x"})
        assert found is not None
        loaded: Thing = found
        assert inspect(loaded).persistent and loaded.at == AT and loaded.data == {"n": [1]}
        assert loaded.score == 2.5 and isinstance(loaded.score, float)
        assert session.get(Thing, loaded.id) is loaded
        assert BY_NOTE.first(session, {"note": "x"}) is loaded  # the identity map's object, as the ORM gives
        loaded.note = "y"  # a pending edit is seen, as through a query's autoflush
        assert BY_NOTE.first(session, {"note": "x"}) is None
        again: Thing | None = BY_NOTE.first(session, {"note": "y"})
        assert again is not None and again is loaded and again.note == "y"
        session.rollback()


def test_a_prepared_load_builds_only_the_row_it_returns(things: sessionmaker[Session]) -> None:
    with things.begin() as session:
        for _ in range(3):
            INSERT_THING.add(session, Thing(at=AT, note="x"))
    with things() as session:
        ids = list(session.execute(select(Thing.id).where(Thing.note == "x").order_by(Thing.id)).scalars())
        session.expunge_all()
        chosen = BY_NOTE.first(session, {"note": "x"}, where=lambda row: row.id == ids[1])
        assert chosen is not None and chosen.id == ids[1]
        assert list(session.identity_map.values()) == [chosen]  # the rows passed over built no object
        assert BY_NOTE.first(session, {"note": "x"}, where=lambda row: False) is None


def test_a_list_to_expand_is_refused_when_first_compiled(probe: Engine) -> None:
    in_list = Prepared(select(PROBE.c.id).where(PROBE.c.id.in_(bindparam("ids", expanding=True))))
    with probe.connect() as conn, pytest.raises(TypeError, match="cannot expand"):
        in_list.rows(conn, {"ids": [1, 2]})
