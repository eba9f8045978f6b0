"""Integration tests that need a database of their own (empty, migrated, committed for real), on
SQLite and on PostgreSQL: CLI commands that number what they make or purge by age, and workers that
run on their own threads (they cannot share the rolled-back test connection)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from tests.conftest import Backend


@dataclass(frozen=True)
class FreshDatabase:
    db: Database
    url: str  # what an operator would put in CARERELAY_DATABASE_URL to reach it


@pytest.fixture
def fresh_database(backend: Backend, tmp_path: Path) -> Iterator[FreshDatabase]:
    """A fresh SQLite file, or a fresh PostgreSQL schema reached through ``search_path``."""
    schema: str | None = None
    if backend.name == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        engine = make_engine(url)
    else:
        schema = f"crfresh_{os.getpid()}_{secrets.token_hex(3)}"
        admin = make_engine(backend.url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = Backend("postgresql", backend.url, schema).cli_url()
        engine = make_engine(backend.url, schema=schema)
    upgrade(engine)
    try:
        yield FreshDatabase(Database(engine), url)
    finally:
        engine.dispose()
        if schema is not None:
            admin = make_engine(backend.url)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
