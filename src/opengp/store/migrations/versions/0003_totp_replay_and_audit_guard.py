"""TOTP codes accepted once (user_account.totp_last_step); the audit trail append-only.

Expand-only, so the previous release keeps running against this schema: it never writes the
new nullable column, and never updates or deletes audit entries.

The guard refuses UPDATE and DELETE on audit_event (and TRUNCATE, on PostgreSQL) whoever
issues them; someone allowed to change the schema can still drop it, which the hash chain
and an externally recorded head catch. On SQLite the triggers belong to the table: a later
migration that rebuilds audit_event (batch mode) must create them again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MESSAGE = "audit_event is append-only"

GUARD = {
    "postgresql": [
        f"""
        CREATE FUNCTION audit_event_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP;
        END
        $$
        """,
        # Per statement: refused even when no row matches, and at no cost per row.
        "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
    ],
    "sqlite": [
        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event"
        f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event"
        f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    ],
}

UNGUARD = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
        "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
        "DROP FUNCTION IF EXISTS audit_event_append_only()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS audit_event_no_delete",
        "DROP TRIGGER IF EXISTS audit_event_no_update",
    ],
}


def upgrade() -> None:
    # The last time step whose code signed in or enrolled (RFC 6238 §5.2: accepted once).
    op.add_column("user_account", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    for statement in GUARD[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    for statement in UNGUARD[op.get_bind().dialect.name]:
        op.execute(statement)
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("totp_last_step")
