"""Resource store: current resources, version history, identifier index.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opengp.store.sql.tables import SEQ_TYPE, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", UtcDateTime, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "resource_version",
        sa.Column("seq", SEQ_TYPE, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", UtcDateTime, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
        sa.UniqueConstraint("resource_type", "id", "version_id", name="uq_resource_version"),
    )
    op.create_index("ix_resource_version_type_seq", "resource_version", ["resource_type", "seq"])
    op.create_table(
        "identifier_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_index(
        "ix_identifier_lookup", "identifier_index", ["resource_type", "value", "system"]
    )
    op.create_index("ix_identifier_resource", "identifier_index", ["resource_type", "resource_id"])


def downgrade() -> None:
    op.drop_table("identifier_index")
    op.drop_table("resource_version")
    op.drop_table("resource")
