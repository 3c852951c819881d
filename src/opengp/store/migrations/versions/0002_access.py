"""Access: user accounts, proxy grants, OAuth2 clients and grants, sessions, audit trail.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opengp.store.sql.tables import SEQ_TYPE, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", SEQ_TYPE, autoincrement=True, nullable=False),
        sa.Column("recorded", UtcDateTime, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("principal", sa.String(length=140), nullable=False),
        sa.Column("on_behalf_of", sa.String(length=140), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("resource_type", sa.String(length=64), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_audit_patient", "audit_event", ["patient_id", "seq"], unique=False)
    op.create_index("ix_audit_principal", "audit_event", ["principal", "seq"], unique=False)
    op.create_index("ix_audit_recorded", "audit_event", ["recorded"], unique=False)
    op.create_table(
        "login_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created", UtcDateTime, nullable=False),
        sa.Column("expires", UtcDateTime, nullable=False),
        sa.Column("last_seen", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("auth_method", sa.String(length=32), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("grant_types", sa.Text(), nullable=False),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "oauth_grant",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=True),
        sa.Column("code_challenge_method", sa.String(length=8), nullable=True),
        sa.Column("nonce", sa.String(length=255), nullable=True),
        sa.Column("issued", UtcDateTime, nullable=False),
        sa.Column("expires", UtcDateTime, nullable=False),
        sa.Column("used", UtcDateTime, nullable=True),
        sa.Column("revoked", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_oauth_grant_client", "oauth_grant", ["client_id"], unique=False)
    op.create_table(
        "proxy_grant",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("created", UtcDateTime, nullable=False),
        sa.Column("revoked", UtcDateTime, nullable=True),
        sa.UniqueConstraint("user_id", "patient_id", name="uq_proxy_grant"),
    )
    op.create_table(
        "revoked_token",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("fhir_user", sa.String(length=140), nullable=True),
        sa.Column("practitioner_role", sa.String(length=140), nullable=True),
        sa.Column("organization_id", sa.String(length=64), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UtcDateTime, nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )


def downgrade() -> None:
    op.drop_table("user_account")
    op.drop_table("revoked_token")
    op.drop_table("proxy_grant")
    op.drop_index("ix_oauth_grant_client", table_name="oauth_grant")
    op.drop_table("oauth_grant")
    op.drop_table("oauth_client")
    op.drop_table("login_session")
    op.drop_index("ix_audit_recorded", table_name="audit_event")
    op.drop_index("ix_audit_principal", table_name="audit_event")
    op.drop_index("ix_audit_patient", table_name="audit_event")
    op.drop_table("audit_event")
