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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, Table, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bind parameters in the order the driver takes them
    positional: bool
    binds: tuple[Processor, ...]
    defaults: tuple[Any, ...]  # a value the statement itself holds (``last_seq + 1``), else _REQUIRED
    results: tuple[Processor, ...]


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    positional = bool(compiled.positional)
    names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
    binds = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    returned = getattr(statement, "exported_columns", ())
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned)
    defaults = tuple(_REQUIRED if compiled.binds[name].required else compiled.binds[name].effective_value
                     for name in names)
    return _Compiled(compiled.string, names, positional, binds, defaults, results)


_REQUIRED = object()


def _processed(value: Any, processor: Processor) -> Any:
    return value if processor is None or value is None else processor(value)


class Prepared:
    """One Core statement (bind parameters by name, no values baked in), compiled per dialect on first use.

    ``rows(conn, values)`` runs it and returns the rows it returned (RETURNING, SELECT), processed
    as SQLAlchemy would; ``run`` is for statements that return nothing.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _compile(self.statement, dialect)
        return compiled

    def rows(self, conn: Connection, values: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        compiled = self._for(conn.dialect)
        given = values or {}
        processed = [_processed(given[name] if default is _REQUIRED else given.get(name, default), bind)
                     for name, bind, default in zip(compiled.names, compiled.binds, compiled.defaults, strict=True)]
        params: Sequence[Any] | dict[str, Any] = (
            tuple(processed) if compiled.positional else dict(zip(compiled.names, processed, strict=True)))
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            conn._cursor_execute(cursor, compiled.sql, params)
            fetched = cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()
        if not any(compiled.results):
            return [tuple(row) for row in fetched]
        return [tuple(_processed(v, p) for v, p in zip(row, compiled.results, strict=True)) for row in fetched]

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
    """A multi-row statement (``INSERT … VALUES (…), (…)``) for 1 to ``most`` rows, one ``Prepared`` per row
    count: ``build(n)`` makes the statement for ``n`` rows, its bind parameters named ``<column>_<row>``
    (``bind_rows``)."""

    def __init__(self, build: Callable[[int], ClauseElement], columns: Sequence[str], *, most: int = 50) -> None:
        self._build = build
        self._columns = tuple(columns)
        self._most = most
        self._by_count: dict[int, Prepared] = {}

    def rows(self, conn: Connection, items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Runs in chunks of ``most``; returned rows come back in the order of ``items``' chunks."""
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(items), self._most):
            chunk = items[start:start + self._most]
            prepared = self._by_count.get(len(chunk))
            if prepared is None:
                prepared = self._by_count[len(chunk)] = Prepared(self._build(len(chunk)))
            out.extend(prepared.rows(conn, {f"{column}_{i}": item[column]
                                            for i, item in enumerate(chunk) for column in self._columns}))
        return out
