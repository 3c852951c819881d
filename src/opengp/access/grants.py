"""Authorization codes and refresh tokens (table `oauth_grant`), stored only as hashes.

- A code lives `CODE_LIFETIME` and is claimed once, atomically: of two requests racing with
  the same code, one gets it. Presenting a used code again revokes the refresh tokens issued
  to that user and app (RFC 6749 §4.1.2: "SHOULD revoke ... all tokens previously issued").
- A refresh token is rotated: claimed once when used, a new one issued in its place
  (OAuth 2.0 Security BCP, RFC 9700 §4.14.2). Presenting a used refresh token again means
  it was copied: every live refresh token of that user and app is revoked. The "family" is
  the (client, user) pair, not one chain of rotations: `oauth_grant` has no family column,
  and ending all of one user's sessions with an app whose token leaked is the safe side.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, delete, insert, select, update

from opengp.store.sql.access_tables import oauth_grant

CODE_LIFETIME = timedelta(seconds=60)
REFRESH_LIFETIME = timedelta(days=30)

GrantKind = Literal["code", "refresh"]


@dataclass(frozen=True, slots=True)
class Grant:
    """A claimed code or refresh token: what the user granted to the client."""

    kind: str
    client_id: str
    user_id: str
    scope: str
    patient_id: str | None
    redirect_uri: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    issued: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    conn: Connection,
    kind: GrantKind,
    *,
    client_id: str,
    user_id: str,
    scope: str,
    patient_id: str | None,
    now: datetime,
    redirect_uri: str | None = None,
    code_challenge: str | None = None,
    code_challenge_method: str | None = None,
    nonce: str | None = None,
) -> str:
    """A new code or refresh token (256 random bits); only its hash is stored."""
    g = oauth_grant.c
    # Housekeeping: expired rows of this client are of no use to anyone.
    conn.execute(
        delete(oauth_grant).where(
            g.client_id == client_id, g.kind.in_(("code", "refresh")), g.expires < now
        )
    )
    token = secrets.token_urlsafe(32)
    lifetime = CODE_LIFETIME if kind == "code" else REFRESH_LIFETIME
    conn.execute(
        insert(oauth_grant),
        {
            "token_hash": _hash(token),
            "kind": kind,
            "client_id": client_id,
            "user_id": user_id,
            "scope": scope,
            "patient_id": patient_id,
            "redirect_uri": redirect_uri,
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method,
            "nonce": nonce,
            "issued": now,
            "expires": now + lifetime,
        },
    )
    return token


def claim(
    conn: Connection, kind: GrantKind, token: str, client_id: str, now: datetime
) -> Grant | None:
    """The grant of a live, unused code or refresh token of this client, now marked used;
    None otherwise. A used one presented again revokes the user's tokens for the client."""
    g = oauth_grant.c
    digest = _hash(token)
    row = conn.execute(
        update(oauth_grant)
        .where(
            g.token_hash == digest,
            g.kind == kind,
            g.client_id == client_id,
            g.used.is_(None),
            g.revoked.is_(None),
            g.expires > now,
        )
        .values(used=now)
        .returning(*oauth_grant.c)
    ).first()
    if row is not None:
        return Grant(
            kind=row.kind,
            client_id=row.client_id,
            user_id=row.user_id,
            scope=row.scope,
            patient_id=row.patient_id,
            redirect_uri=row.redirect_uri,
            code_challenge=row.code_challenge,
            code_challenge_method=row.code_challenge_method,
            nonce=row.nonce,
            issued=row.issued,
        )
    seen = conn.execute(
        select(g.user_id, g.used).where(
            g.token_hash == digest, g.kind == kind, g.client_id == client_id
        )
    ).first()
    if seen is not None and seen.used is not None and seen.user_id is not None:
        revoke_family(conn, client_id, seen.user_id, now)
    return None


def revoke_family(conn: Connection, client_id: str, user_id: str, now: datetime) -> int:
    """Revoke every live refresh token of this user for this client; how many there were."""
    g = oauth_grant.c
    result = conn.execute(
        update(oauth_grant)
        .where(
            g.client_id == client_id,
            g.user_id == user_id,
            g.kind == "refresh",
            g.revoked.is_(None),
        )
        .values(revoked=now)
    )
    return int(result.rowcount or 0)
