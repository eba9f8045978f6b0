"""Named transaction locks: held against the same name in the same schema, never against another schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from carerelay.core import locks
from tests.conftest import Backend, fresh_backend


@pytest.fixture
def other_schema(backend: Backend, tmp_path: Path) -> Iterator[Backend]:
    if backend.name == "sqlite":
        pytest.skip("SQLite has no schemas sharing one lock space")
    with fresh_backend(backend.name, tmp_path) as other:
        yield other


def test_a_held_name_is_refused_to_a_second_transaction_until_the_first_ends(backend: Backend) -> None:
    first_engine, second_engine = backend.engine(), backend.engine()
    try:
        with Session(first_engine) as first, Session(second_engine) as second:
            assert locks.try_hold(first, "purge")
            if backend.name == "sqlite":
                assert locks.try_hold(second, "purge")  # SQLite's one write lock serializes instead
                return
            assert not locks.try_hold(second, "purge")
            assert locks.try_hold(second, "another name")
            first.rollback()
            assert locks.try_hold(second, "purge")
    finally:
        first_engine.dispose()
        second_engine.dispose()


def test_the_same_name_in_another_schema_of_the_database_is_not_held(backend: Backend, other_schema: Backend) -> None:
    mine, theirs = backend.engine(), other_schema.engine()
    try:
        with Session(mine) as here, Session(theirs) as there:
            locks.hold(here, "paging:nursecall-4w:M1")
            assert locks.try_hold(there, "paging:nursecall-4w:M1")
    finally:
        mine.dispose()
        theirs.dispose()
