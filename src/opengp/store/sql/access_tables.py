"""Tables of the access layer: accounts, OAuth2 clients and grants, sessions, audit trail.

Change them only together with a new Alembic migration.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from opengp.store.sql.tables import SEQ_TYPE, UtcDateTime, metadata

# A person who signs in: staff, patient, or proxy (acting for patients via proxy_grant).
user_account = Table(
    "user_account",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(255), nullable=False, unique=True),  # case-folded
    Column("kind", String(16), nullable=False),  # staff | patient | proxy
    Column("display_name", String(255), nullable=False),
    Column("password_hash", Text, nullable=True),  # argon2id; NULL: no password sign-in
    Column("must_change_password", Boolean, nullable=False),  # after a one-time password
    Column("totp_secret", String(64), nullable=True),  # base32; NULL: no second factor yet
    # The last time step whose code was accepted: codes are accepted once (RFC 6238 §5.2).
    Column("totp_last_step", BigInteger, nullable=True),
    Column("fhir_user", String(140), nullable=True),  # Practitioner/x | Patient/x | RelatedPerson/x
    Column("practitioner_role", String(140), nullable=True),  # PractitionerRole/x
    Column("organization_id", String(64), nullable=True),
    Column("roles", Text, nullable=False),  # space-separated national RBAC codes
    Column("failed_attempts", Integer, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("created", UtcDateTime, nullable=False),
)

# A clinician's emergency access to a record without a legitimate relationship: the stated
# reason, and until when it lasts (policy.glass_broken).
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("opened", UtcDateTime, nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Index("ix_break_glass_user", "user_id", "until"),
)

# What a proxy may do for a patient, as granted by the practice.
proxy_grant = Table(
    "proxy_grant",
    metadata,
    Column("user_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # SMART v2 patient/ scopes
    Column("granted_by", String(64), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("revoked", UtcDateTime, nullable=True),
    UniqueConstraint("user_id", "patient_id", name="uq_proxy_grant"),
)

# A registered OAuth2 client: an app (SMART launch) or a system (backend services).
oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("secret_hash", Text, nullable=True),  # argon2id, for client_secret_basic
    # client_secret_basic | private_key_jwt | none (public apps, with PKCE)
    Column("auth_method", String(32), nullable=False),
    Column("jwks", Text, nullable=True),  # registered public keys (JSON), for private_key_jwt
    Column("scopes", Text, nullable=False),  # the most it may be granted, space-separated
    Column("purpose", String(32), nullable=False),  # direct-care | migration
    Column("grant_types", Text, nullable=False),  # space-separated
    Column("redirect_uris", Text, nullable=False),  # space-separated
    Column("organization_id", String(64), nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("created", UtcDateTime, nullable=False),
)

# Authorisation codes and refresh tokens (hashed); access tokens are signed JWTs.
oauth_grant = Table(
    "oauth_grant",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 hex of the code/token
    Column("kind", String(16), nullable=False),  # code | refresh
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=True),
    Column("scope", Text, nullable=False),
    Column("patient_id", String(64), nullable=True),  # launch/patient context
    Column("redirect_uri", Text, nullable=True),
    Column("code_challenge", String(128), nullable=True),
    Column("code_challenge_method", String(8), nullable=True),
    Column("nonce", String(255), nullable=True),
    Column("issued", UtcDateTime, nullable=False),
    Column("expires", UtcDateTime, nullable=False),
    Column("used", UtcDateTime, nullable=True),  # codes: once; refresh: rotated
    Column("revoked", UtcDateTime, nullable=True),
    Index("ix_oauth_grant_client", "client_id"),
)

# Access tokens revoked before they expire (by JWT id).
revoked_token = Table(
    "revoked_token",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires", UtcDateTime, nullable=False),
)

# Screen sessions (cookie holds the token; only its hash is stored).
login_session = Table(
    "login_session",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("expires", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
)

# The append-only audit trail: one row per access, chained by SHA-256. Triggers (migration
# 0003) refuse UPDATE, DELETE and (PostgreSQL) TRUNCATE on it.
audit_event = Table(
    "audit_event",
    metadata,
    Column("seq", SEQ_TYPE, primary_key=True, autoincrement=True),
    Column("recorded", UtcDateTime, nullable=False),
    Column("action", String(16), nullable=False),  # read search create update delete ...
    Column("outcome", String(16), nullable=False),  # success | denied | failed
    Column("principal", String(140), nullable=False),  # Principal.label, or "anonymous"
    Column("on_behalf_of", String(140), nullable=True),  # proxy's patient, client's user
    Column("client_id", String(64), nullable=True),
    Column("purpose", String(32), nullable=True),
    Column("patient_id", String(64), nullable=True),  # whose record, when known
    Column("resource_type", String(64), nullable=True),
    Column("resource_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),  # JSON: query shape, reason, break-glass ...
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_patient", "patient_id", "seq"),
    Index("ix_audit_principal", "principal", "seq"),
    Index("ix_audit_recorded", "recorded"),
)

# Who an account is at an OpenID provider (NHS CIS2, NHS login): the provider's issuer and
# its subject for the person. Made by an administrator (`opengp users link`); a sign-in
# through the provider finds the account here.
user_identity = Table(
    "user_identity",
    metadata,
    Column("issuer", String(255), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", String(64), ForeignKey("user_account.id"), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Index("ix_user_identity_user", "user_id"),
)

# The roles a screen session acts in, when fewer than its account's: the one NHS CIS2 role
# chosen at sign-in. No row: every role of the account. Goes with its session.
session_role = Table(
    "session_role",
    metadata,
    Column(
        "token_hash",
        String(64),
        ForeignKey("login_session.token_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("roles", Text, nullable=False),  # space-separated national RBAC codes
)

# One-time setup tokens for the first administrator of a new deployment (SHA-256 only), and,
# once it exists, the row SETUP_DONE (access/first_run.py): its primary key makes the setup
# happen once, even when two browsers try at the same moment.
setup_token = Table(
    "setup_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("issued", UtcDateTime, nullable=False),
    Column("expires", UtcDateTime, nullable=False),
)
