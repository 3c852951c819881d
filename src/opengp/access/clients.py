"""The registry of OAuth2 clients (table `oauth_client`): register, find, authenticate.

A system client (SMART Backend Services) authenticates either with a secret over HTTP Basic
(`client_secret_basic`) or with a JWT signed by a key it registered (`private_key_jwt`,
RFC 7523). Secrets are 256-bit random values shown once and stored only as an argon2id hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from sqlalchemy import Connection, delete, insert, select

from opengp.access.scopes import OTHER_SCOPES, ScopeError, parse_scope, parse_scopes
from opengp.store.sql import dialects
from opengp.store.sql.access_tables import oauth_client, oauth_grant

AUTH_METHODS = ("client_secret_basic", "private_key_jwt")
# Apps (SMART App Launch) may also be public: no secret, PKCE instead (auth method "none").
APP_AUTH_METHODS = ("client_secret_basic", "none")
PURPOSES = ("direct-care", "migration")
SYSTEM_GRANT_TYPES = ("client_credentials",)
APP_GRANT_TYPES = ("authorization_code", "refresh_token")
GRANT_TYPES = SYSTEM_GRANT_TYPES + APP_GRANT_TYPES  # what the authorization server implements
# SMART Backend Services asks clients to sign with RS384 or ES384, and servers to accept one.
ASSERTION_ALGORITHMS = ("RS384", "ES384")
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# A client secret is 256 random bits: no guessing attack exists for the hash to slow down, so
# the OWASP minimum argon2id cost (m=19 MiB, t=2, p=1) is enough, and keeps the token
# endpoint cheap. (Passwords people choose get the heavier RFC 9106 profile, passwords.py.)
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


class ClientError(ValueError):
    """A registration is not acceptable; the message names the field and the rule."""


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    auth_method: str  # client_secret_basic | private_key_jwt | none (public apps)
    scopes: tuple[str, ...]  # the most it may be granted
    purpose: str  # direct-care | migration
    grant_types: tuple[str, ...]
    jwks: dict[str, Any] | None  # public keys, for private_key_jwt
    secret_hash: str | None = field(repr=False)
    organization_id: str | None
    disabled: bool
    created: datetime
    redirect_uris: tuple[str, ...] = ()  # apps: where codes may be sent, matched exactly


def register_client(
    conn: Connection,
    name: str,
    scopes: str | Sequence[str],
    purpose: str = "direct-care",
    auth_method: str = "client_secret_basic",
    jwks: dict[str, Any] | None = None,
    *,
    grant_types: Sequence[str] = SYSTEM_GRANT_TYPES,
    redirect_uris: Sequence[str] = (),
    organization_id: str | None = None,
    now: datetime | None = None,
) -> tuple[str, str | None]:
    """Register a client: its id, and its secret (None for private_key_jwt and public clients).

    A system client (client_credentials) holds system/ scopes; an app (authorization_code,
    optionally refresh_token) holds patient/ and user/ scopes and the launch and identity
    scopes, and needs at least one redirect URI. The secret is returned once, here; only its
    hash is kept.
    """
    name = _check_name(name)
    scope_text = scopes if isinstance(scopes, str) else " ".join(scopes)
    unsupported = set(grant_types) - set(GRANT_TYPES)
    if unsupported or not grant_types:
        raise ClientError(f"grant_types must be from {', '.join(GRANT_TYPES)}")
    is_app = "authorization_code" in grant_types
    if is_app and "client_credentials" in grant_types:
        raise ClientError("a client is either a system (client_credentials) or an app")
    if "refresh_token" in grant_types and not is_app:
        raise ClientError("refresh_token is only for apps (with authorization_code)")
    granted = check_app_scopes(scope_text) if is_app else check_client_scopes(scope_text)
    if purpose not in PURPOSES:
        raise ClientError(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    methods = APP_AUTH_METHODS if is_app else AUTH_METHODS
    if auth_method not in methods:
        raise ClientError(f"auth_method must be one of {', '.join(methods)}")
    uris = check_redirect_uris(redirect_uris) if is_app else ()
    if redirect_uris and not is_app:
        raise ClientError("redirect URIs are only for apps (authorization_code)")
    secret: str | None = None
    if auth_method == "none":
        if jwks is not None:
            raise ClientError("a public app has no keys")
    elif auth_method == "private_key_jwt":
        if jwks is None:
            raise ClientError("a private_key_jwt client needs its public keys (a JWKS)")
        jwks = check_jwks(jwks)
    else:
        if jwks is not None:
            raise ClientError("a JWKS is only for private_key_jwt clients")
        secret = secrets.token_urlsafe(32)
    client_id = str(uuid.uuid4())
    conn.execute(
        insert(oauth_client),
        {
            "client_id": client_id,
            "name": name,
            "secret_hash": _hasher.hash(secret) if secret is not None else None,
            "auth_method": auth_method,
            "jwks": json.dumps(jwks, sort_keys=True) if jwks is not None else None,
            "scopes": " ".join(granted),
            "purpose": purpose,
            "grant_types": " ".join(grant_types),
            "redirect_uris": " ".join(uris),
            "organization_id": organization_id,
            "disabled": False,
            "created": now or datetime.now(UTC),
        },
    )
    return client_id, secret


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255:
        raise ClientError("the client name must be 1 to 255 characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ClientError("the client name must not contain control characters")
    return name


def check_client_scopes(text: str) -> tuple[str, ...]:
    """The scopes a system client may be registered with: system/ resource scopes only."""
    try:
        scopes = parse_scopes(text)
        for scope in scopes:
            if scope in OTHER_SCOPES or parse_scope(scope).context != "system":
                raise ClientError(
                    f"{scope!r}: a system client may hold only system/ scopes"
                    " (e.g. system/Patient.rs, system/*.cruds)"
                )
    except ScopeError as exc:
        raise ClientError(str(exc)) from None
    return scopes


def check_app_scopes(text: str) -> tuple[str, ...]:
    """The scopes an app may be registered with: patient/ and user/ scopes, and the
    identity and launch scopes (openid fhirUser launch/patient offline_access)."""
    try:
        scopes = parse_scopes(text)
        for scope in scopes:
            if scope not in OTHER_SCOPES and parse_scope(scope).context == "system":
                raise ClientError(
                    f"{scope!r}: an app may hold only patient/ and user/ scopes"
                    " (and openid fhirUser launch/patient offline_access)"
                )
    except ScopeError as exc:
        raise ClientError(str(exc)) from None
    return scopes


def check_redirect_uris(uris: Sequence[str]) -> tuple[str, ...]:
    """An app's redirect URIs: absolute https URIs without a fragment (RFC 6749 §3.1.2),
    or http on a loopback address for native apps (RFC 8252 §7.3)."""
    if not uris:
        raise ClientError("an app needs at least one redirect URI")
    checked = []
    for uri in uris:
        parts = urlsplit(uri)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")
        if (
            (parts.scheme != "https" and not loopback)
            or not parts.hostname
            or parts.fragment
            or "#" in uri
            or any(c.isspace() for c in uri)
            or len(uri) > 2000
        ):
            raise ClientError(
                f"redirect URI {uri!r} must be an absolute https URI without a fragment"
                " (or http on a loopback address)"
            )
        checked.append(uri)
    return tuple(dict.fromkeys(checked))


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A client's JWKS, checked: public RSA (2048+ bits) or EC P-384 signing keys with ids."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ClientError('the JWKS must be a JSON object with a non-empty "keys" array')
    kids = set()
    for key in jwks["keys"]:
        if not isinstance(key, dict):
            raise ClientError("each JWKS key must be a JSON object")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid or kid in kids:
            raise ClientError('each JWKS key needs its own "kid" (SMART Backend Services)')
        kids.add(kid)
        if PRIVATE_MEMBERS & set(key):
            raise ClientError(
                f"JWKS key {kid!r} holds private key material: register the public key"
            )
        if key.get("kty") not in ("RSA", "EC"):
            raise ClientError(f"JWKS key {kid!r}: kty must be RSA or EC")
        if key.get("kty") == "EC" and key.get("crv") != "P-384":
            raise ClientError(f"JWKS key {kid!r}: EC keys must be on P-384 (for ES384)")
        if "alg" in key and key["alg"] not in ASSERTION_ALGORITHMS:
            raise ClientError(
                f"JWKS key {kid!r}: alg must be one of {', '.join(ASSERTION_ALGORITHMS)}"
            )
        if key.get("use", "sig") != "sig":
            raise ClientError(f'JWKS key {kid!r}: use must be "sig"')
        if key["kty"] == "RSA" and _rsa_bits(key.get("n")) < 2048:
            raise ClientError(f"JWKS key {kid!r}: RSA keys need at least 2048 bits")
    try:
        KeySet.import_key_set(cast(KeySetSerialization, jwks))
    except (JoseError, ValueError, TypeError) as exc:
        raise ClientError(f"the JWKS is not valid: {exc}") from None
    return {"keys": [dict(key) for key in jwks["keys"]]}


def _rsa_bits(modulus: Any) -> int:
    if not isinstance(modulus, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def find_client(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(select(oauth_client).where(oauth_client.c.client_id == client_id)).first()
    return None if row is None else _client(row)


def list_clients(conn: Connection) -> list[Client]:
    c = oauth_client.c
    return [_client(row) for row in conn.execute(select(oauth_client).order_by(c.created, c.name))]


def _client(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        auth_method=row.auth_method,
        scopes=tuple(row.scopes.split()),
        purpose=row.purpose,
        grant_types=tuple(row.grant_types.split()),
        jwks=json.loads(row.jwks) if row.jwks else None,
        secret_hash=row.secret_hash,
        organization_id=row.organization_id,
        disabled=row.disabled,
        created=row.created,
        redirect_uris=tuple(row.redirect_uris.split()),
    )


def check_secret(client: Client, secret: str) -> bool:
    """Whether `secret` is the client's secret (constant-time, through argon2)."""
    if client.secret_hash is None:
        return False
    try:
        return _hasher.verify(client.secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def remember_assertion(
    conn: Connection, client_id: str, jti: str, keep_until: datetime, now: datetime
) -> bool:
    """Record the jti of a client's JWT assertion: False if it was used before (a replay).

    RFC 7523 §3 lets the server refuse a JWT it has seen; SMART Backend Services requires it.
    The ids are kept (hashed, in `oauth_grant` as kind "assertion") until `keep_until`, after
    which the assertion itself has expired; expired ones are removed on the way.
    """
    g = oauth_grant.c
    conn.execute(
        delete(oauth_grant).where(g.client_id == client_id, g.kind == "assertion", g.expires < now)
    )
    digest = hashlib.sha256(f"{client_id}\n{jti}".encode()).hexdigest()
    statement = dialects.insert_or_ignore(oauth_grant, conn.dialect.name)
    values = {
        "token_hash": digest,
        "kind": "assertion",
        "client_id": client_id,
        "scope": "",
        "issued": now,
        "expires": keep_until,
    }
    return conn.execute(statement, values).first() is not None
