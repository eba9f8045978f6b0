"""CLI tests run the command in-process against a database of their own, on SQLite and on PostgreSQL.

The commands number what they make (``schedule 1``) and purge by age, so they get an empty,
migrated database per test instead of the shared, rolled-back one: a fresh SQLite file, or a fresh
PostgreSQL schema reached through ``search_path`` exactly as an operator's URL would.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from carerelay.config import get_settings
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from tests.conftest import Backend


@pytest.fixture
def cli_db(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    schema: str | None = None
    if backend.name == "sqlite":
        url = f"sqlite:///{tmp_path / 'cli.db'}"
        engine = make_engine(url)
    else:
        schema = f"crcli_{os.getpid()}_{secrets.token_hex(3)}"
        admin = make_engine(backend.url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = Backend("postgresql", backend.url, schema).cli_url()
        engine = make_engine(backend.url, schema=schema)
    upgrade(engine)
    monkeypatch.setenv("CARERELAY_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield Database(engine)
    finally:
        get_settings.cache_clear()
        engine.dispose()
        if schema is not None:
            admin = make_engine(backend.url)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
