"""Access tokens: signed JWTs (RFC 9068 profile), how they are issued, checked and revoked.

A token is a JWS signed with the server's key (`keys.py`), header `typ: at+jwt` and `kid`,
claims:

    iss        the server's base URL (the OAuth2 issuer)
    aud        the FHIR base URL: the only resource server the token is for
    sub        the client id (system clients); later, the user
    client_id  the client the token was issued to
    scope      space-separated SMART scopes granted
    jti        random id, for revocation
    iat, exp   issued and expiry times (5 minutes for system clients by default)
    purpose    the client's registered purpose: direct-care | migration

Issuing goes through Authlib's RFC 9068 generator (`AccessTokenGenerator`), signing through
joserfc. `verify_access_token` refuses a token for a distinct reason each way it can be bad.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from authlib.oauth2.rfc9068 import (  # type: ignore[import-untyped]
    JWTBearerTokenGenerator,
)
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption
from sqlalchemy import Connection, delete, select

from opengp.access.keys import SigningKey
from opengp.access.principal import Principal
from opengp.access.revocation import revocations
from opengp.store.sql import dialects
from opengp.store.sql.access_tables import revoked_token

TOKEN_TYPE = "at+jwt"  # noqa: S105 (RFC 9068 §2.1, not a secret)
# Our own servers' clocks may differ slightly; clients' tokens are checked without mercy.
LEEWAY_SECONDS = 5
REQUIRED_CLAIMS = ("iss", "aud", "sub", "client_id", "scope", "jti", "iat", "exp")


@dataclass(frozen=True, slots=True)
class TokenAuthority:
    """Who issues tokens, for which resource server, signed with which key."""

    issuer: str  # the server's base URL, e.g. https://gp.example.nhs.uk
    audience: str  # the FHIR base URL, e.g. https://gp.example.nhs.uk/fhir
    key: SigningKey


class TokenRejected(Exception):
    """The token is not acceptable; `reason` says why (one word, safe to log and to send)."""

    REASONS = (
        "malformed",  # not a compact JWS, or its JSON is broken
        "algorithm-not-allowed",  # alg none, HS256, or any other than ours
        "bad-signature",  # not signed by our key
        "wrong-type",  # a JWT, but not an access token (typ is not at+jwt)
        "wrong-issuer",
        "wrong-audience",
        "expired",
        "not-yet-valid",  # iat or nbf in the future
        "missing-claim",
        "revoked",
    )

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in self.REASONS
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access token's claims."""

    issuer: str
    audience: str
    subject: str
    client_id: str
    scopes: tuple[str, ...]
    jti: str
    issued_at: datetime
    expires_at: datetime
    purpose: str | None
    claims: dict[str, Any]

    def principal(self, display: str | None = None) -> Principal:
        """The principal of a system client (client-credentials tokens)."""
        return Principal(
            kind="system",
            id=self.client_id,
            display=display or self.client_id,
            scopes=frozenset(self.scopes),
            purpose=self.purpose,
            client_id=self.client_id,
        )


class TokenClient(Protocol):
    """What the generator needs of a client (an Authlib ClientMixin with a purpose)."""

    purpose: str

    def get_client_id(self) -> str: ...


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """Authlib's RFC 9068 generator, with our audience, purpose claim and token lifetime."""

    def __init__(self, authority: TokenAuthority, lifetime_seconds: int) -> None:
        super().__init__(
            issuer=authority.issuer,
            alg=authority.key.alg,
            expires_generator=lambda client, grant_type: lifetime_seconds,
        )
        self.authority = authority

    def get_jwks(self) -> KeySet:
        return self.authority.key.signing_keys()

    def get_audiences(self, client: TokenClient, user: object, scope: str) -> str:
        return self.authority.audience

    def get_jti(self, client: TokenClient, grant_type: str, user: object, scope: str) -> str:
        return secrets.token_urlsafe(24)  # 192 bits

    def get_extra_claims(
        self, client: TokenClient, grant_type: str, user: object, scope: str
    ) -> dict[str, Any]:
        return {"purpose": client.purpose}


# Tokens whose signature has been verified, by the exact token and key: a client sends the
# same token for minutes, and the signature check is most of a token's cost. The signature
# is remembered here, the checked claims in `_ACCEPTED`; expiry and revocation are checked on
# every request.
_VERIFIED: OrderedDict[tuple[str, str], jwt.Token] = OrderedDict()
_VERIFIED_MAX = 4096
_VERIFIED_LOCK = threading.Lock()


def _decode(token: str, key: SigningKey) -> jwt.Token:
    cache_key = (token, key.kid)
    with _VERIFIED_LOCK:
        found = _VERIFIED.get(cache_key)
        if found is not None:
            _VERIFIED.move_to_end(cache_key)
            return found
    decoded = jwt.decode(token, key.public, algorithms=[key.alg])
    with _VERIFIED_LOCK:
        _VERIFIED[cache_key] = decoded
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return decoded


# Tokens accepted before, by the exact token, key, issuer and audience: everything about them
# but time and revocation is settled once. While the clock is within the window the claims
# were checked in, the answer is the same; outside it the full check runs again and says
# why (expired, not yet valid).
_ACCEPTED: OrderedDict[tuple[str, str, str, str], AccessClaims] = OrderedDict()


def _in_time(claims: dict[str, Any], now: int) -> bool:
    """What joserfc's exp, iat and nbf checks accept (leeway included)."""
    expires: float = claims["exp"]
    starts: float = max(claims["iat"], claims.get("nbf", claims["iat"]))
    return expires > now - LEEWAY_SECONDS and starts <= now + LEEWAY_SECONDS


def verify_access_token(
    token: str, authority: TokenAuthority, conn: Connection, *, now: datetime | None = None
) -> AccessClaims:
    """The claims of a valid access token; `TokenRejected` with the reason otherwise.

    Checks, in order: a compact JWS with our algorithm (never `none`), our signature,
    typ at+jwt, issuer, audience, expiry and the other required claims, and that its jti was
    not revoked (the database `conn` connects to: `revocation.revocations`).
    """
    moment = int((now or datetime.now(UTC)).timestamp())
    cache_key = (token, authority.key.kid, authority.issuer, authority.audience)
    with _VERIFIED_LOCK:
        accepted = _ACCEPTED.get(cache_key)
    if accepted is None or not _in_time(accepted.claims, moment):
        accepted = _check_claims(token, authority, moment)
        with _VERIFIED_LOCK:
            _ACCEPTED[cache_key] = accepted
            while len(_ACCEPTED) > _VERIFIED_MAX:
                _ACCEPTED.popitem(last=False)
    if revocations(conn.engine).is_revoked(conn, accepted.jti):
        raise TokenRejected("revoked", "the token was revoked")
    return accepted


def _check_claims(token: str, authority: TokenAuthority, now: int) -> AccessClaims:
    try:
        decoded = _decode(token, authority.key)
    except UnsupportedAlgorithmError as exc:
        raise TokenRejected("algorithm-not-allowed", exc.description) from None
    except (BadSignatureError, InvalidKeyIdError):
        raise TokenRejected("bad-signature", "not signed by this server's key") from None
    except (JoseError, ValueError, TypeError):
        raise TokenRejected("malformed", "not a compact JWS with a JSON payload") from None
    if decoded.header.get("typ") != TOKEN_TYPE:
        raise TokenRejected("wrong-type", f"typ must be {TOKEN_TYPE}")
    claims = decoded.claims
    options: dict[str, ClaimsOption] = {name: {"essential": True} for name in REQUIRED_CLAIMS}
    options["iss"] = {"essential": True, "value": authority.issuer}
    options["aud"] = {"essential": True, "value": authority.audience}
    registry = jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY_SECONDS, **options)
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise TokenRejected("expired", "the token has expired") from None
    except MissingClaimError as exc:
        raise TokenRejected("missing-claim", exc.description) from None
    except InvalidClaimError as exc:
        raise _claim_error(exc) from None
    if not isinstance(claims["client_id"], str) or not isinstance(claims["scope"], str):
        raise TokenRejected("missing-claim", "client_id and scope must be strings")
    return AccessClaims(
        issuer=claims["iss"],
        audience=authority.audience,
        subject=claims["sub"],
        client_id=claims["client_id"],
        scopes=tuple(claims["scope"].split()),
        jti=claims["jti"],
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        purpose=claims.get("purpose"),
        claims=claims,
    )


def _claim_error(exc: InvalidClaimError) -> TokenRejected:
    claim = exc.claim
    if claim == "iss":
        return TokenRejected("wrong-issuer", "the token is from another issuer")
    if claim == "aud":
        return TokenRejected("wrong-audience", "the token is for another resource server")
    if claim in ("iat", "nbf"):
        return TokenRejected("not-yet-valid", f"{claim} is in the future")
    return TokenRejected("missing-claim", f"claim {claim!r} is not valid")


def is_revoked(conn: Connection, jti: str) -> bool:
    """Whether the table lists `jti` now (requests use the in-memory `revocations`)."""
    query = select(revoked_token.c.jti).where(revoked_token.c.jti == jti)
    return conn.execute(query).first() is not None


def revoke(conn: Connection, jti: str, expires: datetime, now: datetime) -> None:
    """Refuse the token with this jti from now until it would have expired anyway.

    Rows of tokens past their expiry are removed on the way: they would be refused anyway.
    """
    conn.execute(delete(revoked_token).where(revoked_token.c.expires < now))
    insert = dialects.insert_or_ignore(revoked_token, conn.dialect.name)
    conn.execute(insert, {"jti": jti, "expires": expires})
    revocations(conn.engine).note(jti)  # refused here at once, not at the next re-read
