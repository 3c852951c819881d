"""Search: typed index tables, one per parameter kind; the reindex marker; result snapshots
for paging; resource by time (_lastUpdated).

Expand-only: the previous release neither reads nor writes these tables, and still keeps
identifier_index (which this release also keeps writing, until a later contract migration
drops it). Rows are filled by `opengp db upgrade` (it re-indexes when the search definitions
changed, see opengp.store.sql.reindex) and by every write.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WIDTH = 255
# Byte order on PostgreSQL (as SQLite's BINARY), so prefix matches are index range scans.
TEXT = sa.String(WIDTH).with_variant(sa.String(WIDTH, collation="C"), "postgresql")


# The word index of search_text: SQLite FTS5 over the table (external content, kept in step
# by triggers; rows are only ever inserted and deleted), PostgreSQL GIN over tsvectors.
FULL_TEXT = {
    "sqlite": [
        "CREATE VIRTUAL TABLE search_text_fts USING fts5(narrative, content,"
        " content='search_text', content_rowid='rowid',"
        " tokenize='porter unicode61 remove_diacritics 2')",
        "CREATE TRIGGER search_text_added AFTER INSERT ON search_text BEGIN"
        " INSERT INTO search_text_fts(rowid, narrative, content)"
        " VALUES (new.rowid, new.narrative, new.content); END",
        "CREATE TRIGGER search_text_removed AFTER DELETE ON search_text BEGIN"
        " INSERT INTO search_text_fts(search_text_fts, rowid, narrative, content)"
        " VALUES ('delete', old.rowid, old.narrative, old.content); END",
    ],
    "postgresql": [
        "CREATE INDEX ix_search_text_narrative_words ON search_text"
        " USING gin (to_tsvector('english', narrative))",
        "CREATE INDEX ix_search_text_content_words ON search_text"
        " USING gin (to_tsvector('english', content))",
    ],
}


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _table(name: str, *columns: sa.Column[Any]) -> None:
    op.create_table(
        name,
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", TEXT, nullable=False),
        *columns,
    )
    # One resource's values of one parameter: sorting (a correlated min/max), replacing rows.
    op.create_index(f"ix_{name}_resource", name, ["resource_type", "resource_id", "param"])


def upgrade() -> None:
    _table(
        "search_string",
        sa.Column("value", TEXT, nullable=False),
        sa.Column("exact", TEXT, nullable=False),
    )
    op.create_index("ix_search_string_value", "search_string", ["resource_type", "param", "value"])
    _table(
        "search_token",
        sa.Column("system", TEXT, nullable=True),
        sa.Column("code", TEXT, nullable=True),
        sa.Column("text", TEXT, nullable=True),
    )
    op.create_index(
        "ix_search_token_code", "search_token", ["resource_type", "param", "code", "system"]
    )
    _table(
        "search_date",
        sa.Column("low", _utc(), nullable=False),
        sa.Column("high", _utc(), nullable=False),
    )
    op.create_index("ix_search_date_low", "search_date", ["resource_type", "param", "low", "high"])
    for name in ("search_number", "search_quantity"):
        extra = (
            [
                sa.Column("system", TEXT, nullable=True),
                sa.Column("code", TEXT, nullable=True),
                sa.Column("unit", TEXT, nullable=True),
            ]
            if name == "search_quantity"
            else []
        )
        _table(
            name,
            sa.Column("value", sa.Float(), nullable=False),
            sa.Column("low", sa.Float(), nullable=False),
            sa.Column("high", sa.Float(), nullable=False),
            *extra,
        )
        op.create_index(f"ix_{name}_low", name, ["resource_type", "param", "low", "high"])
    _table(
        "search_reference",
        sa.Column("target_type", sa.String(64), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("url", TEXT, nullable=True),
        sa.Column("version", TEXT, nullable=True),
    )
    op.create_index(
        "ix_search_reference_target",
        "search_reference",
        ["resource_type", "param", "target_id", "target_type"],
    )
    op.create_index(
        "ix_search_reference_reverse",
        "search_reference",
        ["target_id", "target_type", "resource_type"],
    )
    op.create_index(
        "ix_search_reference_url", "search_reference", ["resource_type", "param", "url"]
    )
    _table("search_uri", sa.Column("uri", TEXT, nullable=False))
    op.create_index("ix_search_uri_value", "search_uri", ["resource_type", "param", "uri"])
    op.create_table(
        "search_text",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("narrative", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_index("ix_search_text_resource", "search_text", ["resource_type", "resource_id"])
    for statement in FULL_TEXT[op.get_bind().dialect.name]:
        op.execute(statement)
    op.create_table(
        "search_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "search_snapshot",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("query", sa.String(64), nullable=False),
        sa.Column("created", _utc(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
    )
    op.create_index("ix_search_snapshot_created", "search_snapshot", ["created"])
    op.create_table(
        "search_snapshot_entry",
        sa.Column("snapshot_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_resource_type_updated", "resource", ["resource_type", "last_updated"])


def downgrade() -> None:
    op.drop_index("ix_resource_type_updated", "resource")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE search_text_fts")
    for name in (
        "search_snapshot_entry",
        "search_snapshot",
        "search_state",
        "search_text",
        "search_uri",
        "search_reference",
        "search_quantity",
        "search_number",
        "search_date",
        "search_token",
        "search_string",
    ):
        op.drop_table(name)
