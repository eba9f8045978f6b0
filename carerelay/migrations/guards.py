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


SEARCH_OBJECTS = ("search_vector", "ix_messages_search", "messages_fts")
"""Full-text search objects that exist only on one database and are made by hand, not by the models."""


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Tell Alembic's model comparison to leave the hand-made search objects alone."""
    return not (name and name.startswith(SEARCH_OBJECTS))


def immutable_messages() -> None:
    """Messages: no UPDATE ever; DELETE only past the retention cut-off and on no legal hold."""
    bind = op.get_bind()
    edit = "messages are immutable: they cannot be edited or retracted"
    early = "messages cannot be deleted before their retention ends or while on legal hold"
    if bind.dialect.name == "sqlite":
        op.execute(
            f"CREATE TRIGGER messages_refuse_update BEFORE UPDATE ON messages BEGIN SELECT RAISE(ABORT, '{edit}'); END"
        )
        op.execute(
            "CREATE TRIGGER messages_guard_delete BEFORE DELETE ON messages WHEN NOT ("
            "OLD.created_at < COALESCE((SELECT purge_before FROM retention_state WHERE id = 1), '0000') "
            "AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.conversation_id = OLD.conversation_id "
            "AND h.released_at IS NULL)) "
            f"BEGIN SELECT RAISE(ABORT, '{early}'); END"
        )
        op.execute(
            "CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
            "INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
            "INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.id, old.body); END"
        )
        return
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_vector tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search ON messages USING gin (search_vector)")
    op.execute(
        "CREATE OR REPLACE FUNCTION messages_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{edit}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER messages_refuse_update BEFORE UPDATE ON messages "
        "FOR EACH ROW EXECUTE FUNCTION messages_refuse_update()"
    )
    op.execute(
        "CREATE TRIGGER messages_refuse_truncate BEFORE TRUNCATE ON messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION messages_refuse_update()"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION messages_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF OLD.created_at < COALESCE((SELECT purge_before FROM retention_state WHERE id = 1), '-infinity') "
        "AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.conversation_id = OLD.conversation_id "
        "AND h.released_at IS NULL) THEN RETURN OLD; END IF; "
        f"RAISE EXCEPTION '{early}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER messages_guard_delete BEFORE DELETE ON messages "
        "FOR EACH ROW EXECUTE FUNCTION messages_guard_delete()"
    )


def drop_immutable_messages() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        triggers = ("messages_refuse_update", "messages_guard_delete", "messages_fts_insert", "messages_fts_delete")
        for trigger in triggers:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
        return
    op.execute("DROP TRIGGER IF EXISTS messages_refuse_update ON messages")
    op.execute("DROP TRIGGER IF EXISTS messages_refuse_truncate ON messages")
    op.execute("DROP TRIGGER IF EXISTS messages_guard_delete ON messages")
    op.execute("DROP FUNCTION IF EXISTS messages_refuse_update()")
    op.execute("DROP FUNCTION IF EXISTS messages_guard_delete()")
