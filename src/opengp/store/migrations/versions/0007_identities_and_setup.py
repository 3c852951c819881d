"""OpenID Connect sign-in and the first administrator: accounts' identities at OpenID
providers (NHS CIS2, NHS login), the role a screen session acts in, and one-time setup
tokens.

Expand-only: new tables the previous release never touches.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_identity",
        sa.Column("issuer", sa.String(255), primary_key=True),
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_user_identity_user", "user_identity", ["user_id"])
    op.create_table(
        "session_role",
        sa.Column(
            "token_hash",
            sa.String(64),
            sa.ForeignKey("login_session.token_hash", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("roles", sa.Text(), nullable=False),
    )
    op.create_table(
        "setup_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("issued", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("setup_token")
    op.drop_table("session_role")
    op.drop_table("user_identity")
