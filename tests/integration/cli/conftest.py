"""CLI tests run the command in-process against a database of their own (``fresh_database``), on
SQLite and on PostgreSQL: the commands number what they make (``schedule 1``) and purge by age."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carerelay.config import get_settings
from carerelay.core.db import Database
from tests.integration.conftest import FreshDatabase


@pytest.fixture
def cli_db(fresh_database: FreshDatabase, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("CARERELAY_DATABASE_URL", fresh_database.url)
    get_settings.cache_clear()
    try:
        yield fresh_database.db
    finally:
        get_settings.cache_clear()
