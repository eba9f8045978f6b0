"""Alembic environment: runs against the engine carerelay hands it (see core/migrate.py)."""

from __future__ import annotations

from alembic import context

from carerelay.migrations.guards import include_object
from carerelay.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
