"""Core statements compiled once per dialect and run straight through the driver.

The hot write paths (a message send is eleven statements) spent several times more CPU in
SQLAlchemy's per-execution machinery (compiled-cache lookup, parameter construction, execution
context, result set-up) than the database spent running them. A ``Prepared`` statement keeps what
SQLAlchemy would do for its values (each column type's own bind processing: UTC datetimes, JSON,
booleans) and what it would hand back (each returned column's result processing), and drops the
rest. It runs on the transaction's own connection through the connection's cursor-execute step, so
events (the statement-count tests), echo logging and error translation (an IntegrityError is still
an IntegrityError; a lost PostgreSQL connection is still invalidated) behave as for any statement.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import BindParameter, Connection, Select, Table, bindparam, insert, inspect, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from carerelay.core.db import flushed_connection

Processor = Callable[[Any], Any] | None
Processors = tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor) where a type has one
T = TypeVar("T")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # each bind parameter once, in the order it first appears
    # Positional drivers: which of ``names`` fills each place, when a parameter fills several (a value
    # every row of a multi-row INSERT shares); None when each fills one, in order.
    places: tuple[int, ...] | None
    positional: bool
    binds: Processors  # over ``names``: a shared value is processed once, however many places it fills
    defaults: tuple[Any, ...]  # a value the statement itself holds (``last_seq + 1``), else _REQUIRED
    returned: tuple[Any, ...]  # the returned columns' types, as the dialect implements them


def _with_processor(processors: Sequence[Processor]) -> Processors:
    """Only the positions whose type processes values: most (integers, strings) need nothing, and a
    call per value was most of what running a prepared statement cost."""
    return tuple((i, p) for i, p in enumerate(processors) if p is not None)


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if any(bind.expanding for bind in compiled.binds.values()):
        raise TypeError("a prepared statement cannot expand a list (IN): write the alternatives out")
    positional = bool(compiled.positional)
    order = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
    names = tuple(dict.fromkeys(order))
    index = {name: i for i, name in enumerate(names)}
    places = tuple(index[name] for name in order) if len(names) != len(order) else None
    binds = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    returned = tuple(column.type.dialect_impl(dialect) for column in getattr(statement, "exported_columns", ()))
    defaults = tuple(_REQUIRED if compiled.binds[name].required else compiled.binds[name].effective_value
                     for name in names)
    return _Compiled(compiled.string, names, places, positional, _with_processor(binds), defaults, returned)


def _result_processors(compiled: _Compiled, dialect: Dialect, description: Sequence[Any]) -> Processors:
    """As SQLAlchemy makes them: with the driver's type code of each column (PostgreSQL's numeric
    types need it to know what the driver hands back)."""
    return _with_processor([impl.result_processor(dialect, column[1])
                            for impl, column in zip(compiled.returned, description, strict=True)])


_REQUIRED = object()


def _process(values: list[Any], processors: Processors) -> list[Any]:
    for i, processor in processors:
        if values[i] is not None:
            values[i] = processor(values[i])
    return values


class Prepared:
    """One Core statement (bind parameters by name, no values baked in), compiled per dialect on first use.

    ``rows(conn, values)`` runs it and returns the rows it returned (RETURNING, SELECT), processed
    as SQLAlchemy would; ``run`` is for statements that return nothing.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}
        self._results: dict[str, Processors] = {}  # made from the first cursor that returns rows

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _compile(self.statement, dialect)
        return compiled

    def rows(self, conn: Connection, values: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        compiled = self._for(conn.dialect)
        given = values or {}
        processed = _process([given[name] if default is _REQUIRED else given.get(name, default)
                              for name, default in zip(compiled.names, compiled.defaults, strict=True)], compiled.binds)
        params: Sequence[Any] | dict[str, Any]
        if not compiled.positional:
            params = dict(zip(compiled.names, processed, strict=True))
        elif compiled.places is None:
            params = tuple(processed)
        else:
            params = tuple(processed[i] for i in compiled.places)
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            conn._cursor_execute(cursor, compiled.sql, params)
            description = cursor.description
            fetched = cursor.fetchall() if description is not None else []
        finally:
            cursor.close()
        if not fetched:
            return []
        results = self._results.get(conn.dialect.name)
        if results is None:
            results = self._results[conn.dialect.name] = _result_processors(compiled, conn.dialect, description)
        if not results:
            return [tuple(row) for row in fetched]
        return [tuple(_process(list(row), results)) for row in fetched]

    def run(self, conn: Connection, values: Mapping[str, Any] | None = None) -> None:
        self.rows(conn, values)


def binds(table: Table, columns: Sequence[str], suffix: str = "") -> dict[str, BindParameter[Any]]:
    """A bind parameter per column, named ``<column><suffix>`` and typed as the column: the VALUES of a
    prepared INSERT, with no value baked in."""
    return {c: bindparam(f"{c}{suffix}", type_=table.c[c].type) for c in columns}


def bind_rows(table: Table, columns: Sequence[str], n: int) -> list[dict[str, BindParameter[Any]]]:
    """``n`` rows of ``binds``, named ``<column>_<row>`` as ``PreparedRows`` fills them."""
    return [binds(table, columns, f"_{i}") for i in range(n)]


class PreparedRows:
    """A statement over 1 to ``most`` items, one ``Prepared`` per item count: a multi-row
    ``INSERT … VALUES (…), (…)`` or a read of ``IN (…)`` several keys. ``build(n)`` makes the
    statement for ``n`` items, its bind parameters named ``<column>_<item>`` (``bind_rows``)."""

    def __init__(self, build: Callable[[int], ClauseElement], columns: Sequence[str], *, most: int = 50) -> None:
        self._build = build
        self._columns = tuple(columns)
        self._most = most
        self._by_count: dict[int, Prepared] = {}

    def rows(self, conn: Connection, items: Sequence[Mapping[str, Any]],
             shared: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Runs in chunks of ``most``; returned rows come back in the order of ``items``' chunks.
        ``shared`` fills the statement's other bind parameters, the same in every chunk."""
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(items), self._most):
            chunk = items[start:start + self._most]
            prepared = self._by_count.get(len(chunk))
            if prepared is None:
                prepared = self._by_count[len(chunk)] = Prepared(self._build(len(chunk)))
            values = {f"{column}_{i}": item[column] for i, item in enumerate(chunk) for column in self._columns}
            out.extend(prepared.rows(conn, {**shared, **values} if shared else values))
        return out


def _mapped(model: type[Any]) -> tuple[Mapper[Any], Table]:
    mapper = inspect(model)
    table = mapper.local_table
    assert isinstance(table, Table)
    return mapper, table


class PreparedInsert:
    """A mapped object's INSERT as a ``Prepared`` statement; the object then joins the session as if it
    had been loaded (persistent, nothing pending), so it costs no flush of the unit of work.

    For the rows a hot path writes and goes on using as objects (an alert, its escalation run, a
    timer): each one through the ORM cost a flush, several times what the statement itself costs.
    Later changes to the object are tracked as for any loaded object. Column defaults are applied as
    the ORM would (scalars and argument-less callables); the server assigns the autoincrement key.
    """

    def __init__(self, model: type[Any]) -> None:
        mapper, table = _mapped(model)
        generated = table.autoincrement_column
        self._columns = tuple((column.key, mapper.get_property_by_column(column).key, column.default)
                              for column in table.columns if column is not generated)
        columns = [column for column, _, _ in self._columns]
        statement = insert(table).values(binds(table, columns))
        self._key = mapper.get_property_by_column(generated).key if generated is not None else None
        self._prepared = Prepared(statement.returning(generated) if generated is not None else statement)
        self._many = None if generated is not None else PreparedRows(
            lambda n: insert(table).values(bind_rows(table, columns, n)), columns)

    def add(self, session: Session, obj: T) -> T:
        """Writes ``obj`` (transient) now and returns it, persistent in ``session``. Anything the session
        holds pending is flushed first, so the row's foreign keys find theirs."""
        rows = self._prepared.rows(flushed_connection(session), self._values(obj))
        if self._key is not None:
            setattr(obj, self._key, rows[0][0])
        self._attach(session, obj)
        return obj

    def add_all(self, session: Session, objs: Sequence[T]) -> None:
        """Several rows in one statement; for tables whose key the caller gives (no generated id to
        match back to each row)."""
        assert self._many is not None, "add_all needs a table without a generated key"
        if objs:
            self._many.rows(flushed_connection(session), [self._values(obj) for obj in objs])
            for obj in objs:
                self._attach(session, obj)

    def _values(self, obj: Any) -> dict[str, Any]:
        state = instance_state(obj)
        values: dict[str, Any] = {}
        for column, attribute, default in self._columns:
            value = state.dict.get(attribute, _REQUIRED)
            if value is _REQUIRED:
                value = _default(default)
                setattr(obj, attribute, value)
            values[column] = value
        return values

    @staticmethod
    def _attach(session: Session, obj: Any) -> None:
        make_transient_to_detached(obj)
        session.add(obj)


def built(model: type[T], values: Mapping[str, Any]) -> T:
    """A transient ``model`` object holding ``values``, made without the ORM's constructor (an attribute
    event per value): for a row written straight through the driver that is only read afterwards
    (a message: 7 % of SQLite's writer thread for a send went to its constructor). Never to be added
    to a session: it records no changes to flush."""
    obj: T = inspect(model).class_manager.new_instance()
    instance_state(obj).dict.update(values)
    return obj


def _default(default: Any) -> Any:
    if default is None:
        return None
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps an argument-less callable to take the context
    raise TypeError(f"a prepared insert cannot apply the default {default!r}")


class PreparedUpdate:
    """``UPDATE <table> SET <columns> WHERE <primary key>`` for a persistent object, as a ``Prepared``
    statement: the new values are written now and become the object's committed state, so the unit
    of work has nothing left to flush for them. Whatever the session holds pending is flushed first,
    as for any query."""

    def __init__(self, model: type[Any], columns: Sequence[str]) -> None:
        mapper, table = _mapped(model)
        (key,) = table.primary_key.columns
        self._key = mapper.get_property_by_column(key).key
        self._attributes = {column: mapper.get_property_by_column(table.c[column]).key for column in columns}
        self._prepared = Prepared(update(table).where(key == bindparam("_key", type_=key.type))
                                  .values(binds(table, columns)))

    def apply(self, session: Session, obj: Any, values: Mapping[str, Any]) -> None:
        self._prepared.run(flushed_connection(session), {"_key": getattr(obj, self._key), **values})
        for column, value in values.items():
            set_committed_value(obj, self._attributes[column], value)


class PreparedLoad:
    """``select(Model).where(…)`` as a ``Prepared`` statement whose rows become the model's objects,
    persistent in the session as if the ORM had loaded them: one already in the session's identity
    map is returned as it is there (the ORM's own rule), any other is built from its row.

    For the reads every nurse-call alert makes (its sender, its recipient mapping, the paging rules):
    the ORM's statement and loading machinery cost several times the database's work. Sees the
    caller's own pending edits (the autoflush a query through the session would have done).
    """

    def __init__(self, statement: Select[Any]) -> None:
        (entity,) = statement.column_descriptions
        model = entity["entity"]
        mapper, table = _mapped(model)
        self._model = model
        self._manager = mapper.class_manager
        columns = list(table.columns)
        self._attributes = tuple(mapper.get_property_by_column(column).key for column in columns)
        self._row: Any = namedtuple(f"{model.__name__}Row", self._attributes)  # type: ignore[misc]
        (key,) = table.primary_key.columns
        self._key_index = columns.index(key)
        self._prepared = Prepared(statement.with_only_columns(*columns))

    def first(self, session: Session, values: Mapping[str, Any] | None = None, *,
              where: Callable[[Any], bool] | None = None) -> Any | None:
        """The first row, or the first that ``where`` accepts (given the row's values by attribute
        name), as an object: the rows passed over are never built into objects."""
        for row in self._prepared.rows(flushed_connection(session), values):
            if where is None or where(self._row._make(row)):
                return self._object(session, row)
        return None

    def _object(self, session: Session, row: tuple[Any, ...]) -> Any:
        held = session.identity_map.get(session.identity_key(self._model, row[self._key_index]))
        if held is not None:
            return held
        obj = self._manager.new_instance()
        instance_state(obj).dict.update(zip(self._attributes, row, strict=True))  # as the ORM's loader fills it
        make_transient_to_detached(obj)  # which makes every value committed state
        session.add(obj)
        return obj
