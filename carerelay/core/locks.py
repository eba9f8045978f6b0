"""Named locks held until the transaction ends, so nodes sharing a PostgreSQL never do one thing twice.

PostgreSQL's advisory locks belong to the database, not to a schema: two installations in schemas of
one database (a training copy beside production, parallel test runs) must not block or refuse each
other, so the key is a hash of the schema and the name, computed by the server. SQLite needs none: a
writing transaction already holds the database's only write lock.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_KEY = "('x' || left(md5(current_schema() || ':' || :name), 16))::bit(64)::bigint"
_HOLD = text(f"SELECT pg_advisory_xact_lock({_KEY})")
_TRY_HOLD = text(f"SELECT pg_try_advisory_xact_lock({_KEY})")


def hold(session: Session, name: str) -> None:
    """Waits for ``name`` until no other transaction holds it, then holds it until this one ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_HOLD, {"name": name})


def try_hold(session: Session, name: str) -> bool:
    """Holds ``name`` until this transaction ends, or answers False at once if another transaction has it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.execute(_TRY_HOLD, {"name": name}).scalar_one())
