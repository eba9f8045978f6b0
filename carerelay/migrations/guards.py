"""Database-level guards that no application code path can bypass.

The audit log (and later message content) must refuse UPDATE and DELETE even from a hand-typed
SQL session, so the refusal lives in triggers on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic import op


def refuse_changes(table: str, message: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_refuse_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        return
    op.execute(
        f"CREATE OR REPLACE FUNCTION {table}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {table}_refuse_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse_change()"
    )


def drop_refusal(table: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_delete")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_change ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_truncate ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {table}_refuse_change()")
