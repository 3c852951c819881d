"""The migrations build exactly the schema the code declares, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from opengp.store.sql import SqlStore
from opengp.store.sql.tables import metadata


def test_migrated_schema_matches_the_table_definitions(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
