"""Counting the statements a piece of work sends to the database (style habit 10: the cost stays put)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

# The test harness's own bookkeeping: every unit of work is a savepoint of the test's transaction.
_HARNESS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement executed meanwhile, first line of each, harness savepoints left out."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(_HARNESS):
            seen.append(statement.strip().splitlines()[0][:160])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
