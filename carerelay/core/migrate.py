"""Alembic, driven from code: the only way the schema changes (``carerelay db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def autogenerate(message: str, rev_id: str, scratch_url: str) -> None:
    """Write a new revision from the models' difference to a scratch database brought to head."""
    from carerelay.core.db import make_engine

    engine = make_engine(scratch_url)
    upgrade(engine)
    command.revision(alembic_config(engine), message=message, autogenerate=True, rev_id=rev_id)
    engine.dispose()


def head_revision() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return revision_of(conn)


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
