"""Alembic environment: runs migrations on the engine handed over by opengp.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from opengp.store.sql.tables import metadata

engine = context.config.attributes["engine"]
assert isinstance(engine, Engine)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
