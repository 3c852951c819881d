"""The migrations build exactly the schema the code declares, on every database."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from opengp.store.sql import SqlStore
from opengp.store.sql.tables import metadata


def _declared(name: str | None, kind: str, parent: object) -> bool:
    # The word index of search_text is the database's own (FTS5 tables on SQLite, GIN
    # expression indexes on PostgreSQL): made by the migration, not declared in metadata.
    return not (name or "").startswith(
        ("search_text_fts", "ix_search_text_narrative_words", "ix_search_text_content_words")
    )


def test_migrated_schema_matches_the_table_definitions(store: SqlStore) -> None:
    with store.engine.connect() as conn, warnings.catch_warnings():
        # SQLAlchemy cannot reflect expression indexes, and says so.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        context = MigrationContext.configure(conn, opts={"include_name": _declared})
        differences = compare_metadata(context, metadata)
    assert differences == []
