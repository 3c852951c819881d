"""OpenID Connect relying party: the screens sign in with NHS CIS2 (staff) or NHS login
(patients), or any OpenID provider in their place (a second OpenGP, in the tests).

Authorization code flow (OpenID Connect Core §3.1) with PKCE S256 (RFC 7636), `state`
against login CSRF and `nonce` against ID token replay; the protocol is Authlib's client
(`authlib.oauth2.client.OAuth2Client`: the authorization URL, the token request and its
client authentication, `client_secret_basic` or `private_key_jwt`), the ID token is checked
by joserfc (signature, against the provider's JWKS) and Authlib's `CodeIDToken` (issuer,
audience, expiry, issued-at, nonce, azp, at_hash), as Core §3.1.3.7 lists. Then the userinfo
endpoint (Core §5.3), whose `sub` must be the ID token's (§5.3.2).

Nothing here decides who the person is *here*: services/external_sign_in.py does.

HTTP goes through the standard library (`Http`): the provider's URLs must be https, or http
to this machine (a local stand-in, the tests), as OPENGP_OIDC_*_ISSUER.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.base import OAuth2Error  # type: ignore[import-untyped]
from authlib.oauth2.client import OAuth2Client  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from opengp.access.keys import signing_key_from_pem
from opengp.config import ConfigError, OidcProvider

log = logging.getLogger("opengp.oidc")

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 1024 * 1024
METADATA_SECONDS = 3600  # discovery documents are re-read hourly
JWKS_REFETCH_SECONDS = 60  # an unknown key id refetches the JWKS, at most this often
LEEWAY_SECONDS = 60  # clock skew allowed between the provider and us
# Asymmetric signatures only: never `none`, never an HMAC keyed by our client secret.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
# NHS login asks for client assertions signed with RS512 (its "Using private_key_jwt").
ASSERTION_ALGORITHMS = {"RS256": "RS512", "ES256": "ES256", "ES384": "ES384"}
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class OidcFailed(Exception):
    """The sign-in with the provider did not succeed. `reason` is one word for the audit
    trail; `str(exc)` is safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in LOOPBACK


# ---- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response, as Authlib's client reads it (requests-like)."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise OidcFailed("provider-error", f"the provider answered HTTP {self.status_code}")


class Http:
    """The few requests a relying party makes, over urllib: https, or http to loopback."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._default = urllib.request.build_opener()

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Reply:
        if not https_or_loopback(url):
            raise OidcFailed("provider-insecure", "the provider's address is not https")
        parts = urlsplit(url)
        opener = self._direct if parts.hostname in LOOPBACK else self._default
        # https, or http to loopback: checked above.
        request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)  # noqa: S310
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return Reply(response.status, _read(response))
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _read(error))
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            log.warning("OpenID provider %s unreachable: %s", parts.netloc, type(exc).__name__)
            raise OidcFailed("provider-unreachable", "the provider cannot be reached") from None

    def get_json(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        reply = self.request("GET", url, {"Accept": "application/json", **(headers or {})})
        reply.raise_for_status()
        try:
            return reply.json()
        except ValueError:
            raise OidcFailed("provider-error", "the provider's answer is not JSON") from None

    def post(
        self,
        url: str,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        **_: Any,
    ) -> Reply:
        """Authlib's session interface: a form POST, signed by its client authentication."""
        sent = dict(headers or {})  # Authlib hands over a module constant: never change it
        body = urlencode(list((data or {}).items()))
        if auth is not None:
            url, sent, body = auth.prepare("POST", url, sent, body)
        return self.request("POST", url, sent, body.encode())


def _read(response: Any) -> bytes:
    content: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    if len(content) > MAX_RESPONSE_BYTES:
        raise OidcFailed("provider-error", "the provider's answer is too large")
    return content


# ---- the provider ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What discovery (OpenID Connect Discovery §3) says of the provider."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]

    @classmethod
    def of(cls, document: Any, issuer: str) -> ProviderMetadata:
        if not isinstance(document, dict):
            raise OidcFailed("provider-metadata", "the provider's discovery document is not valid")
        # Discovery §4.3: the issuer in the document must be exactly the one configured.
        if document.get("issuer", "").rstrip("/") != issuer:
            raise OidcFailed("provider-metadata", "the provider says it is another issuer")
        urls = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            value = document.get(name)
            if value is None and name == "userinfo_endpoint":
                continue
            if not isinstance(value, str) or not https_or_loopback(value):
                raise OidcFailed("provider-metadata", f"the provider's {name} is not https")
            urls[name] = value
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in ID_TOKEN_ALGORITHMS if a in offered)
        if not algorithms:
            raise OidcFailed("provider-metadata", "the provider signs ID tokens unsafely")
        return cls(
            issuer=issuer,
            authorization_endpoint=urls["authorization_endpoint"],
            token_endpoint=urls["token_endpoint"],
            jwks_uri=urls["jwks_uri"],
            userinfo_endpoint=urls.get("userinfo_endpoint"),
            algorithms=algorithms,
        )


@dataclass(frozen=True, slots=True)
class Flow:
    """What the browser keeps (sealed, api/web/oidc.py) from leaving for the provider until
    it comes back: the state, the nonce and the PKCE code verifier."""

    state: str
    nonce: str
    verifier: str = field(repr=False)

    @classmethod
    def new(cls) -> Flow:
        # RFC 7636 §4.1: 43-128 characters; 32 random bytes make 43.
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))


@dataclass(frozen=True, slots=True)
class Verified:
    """A person the provider vouched for: its ID token's and userinfo's claims."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]


class RelyingParty:
    """Signing in with one OpenID provider, as one registered client."""

    def __init__(
        self,
        provider: OidcProvider,
        http: Http | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.http = http or Http()
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, KeySet] | None = None
        self._assertion_key: Any = None

    # ---- leaving for the provider ----------------------------------------------------------

    def begin(self, redirect_uri: str) -> tuple[str, Flow]:
        """The provider's authorization URL to send the browser to, and the flow to keep."""
        metadata = self.metadata()
        flow = Flow.new()
        url, _ = self._client(redirect_uri).create_authorization_url(
            metadata.authorization_endpoint,
            state=flow.state,
            code_verifier=flow.verifier,
            nonce=flow.nonce,
        )
        return url, flow

    # ---- coming back ---------------------------------------------------------------------

    def finish(self, flow: Flow, code: str, redirect_uri: str) -> Verified:
        """Exchange the code (with the PKCE verifier) and check what comes back; the caller
        has checked `state`. Raises `OidcFailed`."""
        metadata = self.metadata()
        client = self._client(redirect_uri)
        try:
            token = client.fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=flow.verifier,
            )
        except OAuth2Error as error:
            # e.g. invalid_grant: a code used before, expired, or for another client.
            log.info("OpenID provider refused the code: %s", error.error)
            raise OidcFailed(
                "code-refused", "The sign-in could not be completed: please start again."
            ) from None
        except ValueError:
            raise OidcFailed("provider-error", "the provider's answer is not valid") from None
        id_token, access_token = token.get("id_token"), token.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise OidcFailed("no-id-token", "the provider sent no ID token")
        claims = self.id_token_claims(id_token, flow.nonce, access_token)
        if metadata.userinfo_endpoint is not None:
            claims = {**self._userinfo(metadata.userinfo_endpoint, access_token, claims), **claims}
        return Verified(metadata.issuer, claims["sub"], claims)

    def id_token_claims(
        self, id_token: str, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """The claims of a valid ID token for us (Core §3.1.3.7); `OidcFailed` otherwise."""
        metadata = self.metadata()
        try:
            try:
                decoded = jwt.decode(id_token, self._keys(), algorithms=list(metadata.algorithms))
            except InvalidKeyIdError:  # the provider may have a new key: look once more
                decoded = jwt.decode(
                    id_token, self._keys(refresh=True), algorithms=list(metadata.algorithms)
                )
        except (JoseError, ValueError, TypeError):
            raise OidcFailed(
                "id-token-signature", "the ID token is not signed by the provider"
            ) from None
        options = {
            "iss": {"essential": True, "value": metadata.issuer},
            "aud": {"essential": True, "value": self.provider.client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        params = {"nonce": nonce, "client_id": self.provider.client_id}
        if access_token is not None:
            params["access_token"] = access_token
        checked = CodeIDToken(decoded.claims, decoded.header, options=options, params=params)
        try:
            checked.validate(now=int(self.clock()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            claim = str(getattr(exc, "claim", None) or "claims").replace(",", "-")
            raise OidcFailed(f"id-token-{claim}", f"the ID token's {claim} is not right") from None
        if not isinstance(checked["sub"], str) or not checked["sub"]:
            raise OidcFailed("id-token-sub", "the ID token names nobody")
        return dict(checked)

    def _userinfo(self, url: str, access_token: str, claims: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.http.get_json(url, {"Authorization": f"Bearer {access_token}"})
        if not isinstance(answer, dict) or answer.get("sub") != claims["sub"]:
            # Core §5.3.2: the userinfo must be of the same person as the ID token.
            raise OidcFailed("userinfo-sub", "the provider's userinfo is of someone else")
        return answer

    # ---- the provider's documents ----------------------------------------------------------

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if self._metadata is not None and self.clock() - self._metadata[0] < METADATA_SECONDS:
                return self._metadata[1]
        url = f"{self.provider.issuer}/.well-known/openid-configuration"
        metadata = ProviderMetadata.of(self.http.get_json(url), self.provider.issuer)
        with self._lock:
            self._metadata = (self.clock(), metadata)
        return metadata

    def _keys(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._jwks
        if cached is not None:
            age = self.clock() - cached[0]
            if not refresh or age < JWKS_REFETCH_SECONDS:
                return cached[1]
        document = self.http.get_json(self.metadata().jwks_uri)
        try:
            keys = KeySet.import_key_set(_public_keys(document))
        except (JoseError, ValueError, TypeError, KeyError):
            raise OidcFailed("provider-jwks", "the provider's keys cannot be read") from None
        with self._lock:
            self._jwks = (self.clock(), keys)
        return keys

    # ---- Authlib's client ----------------------------------------------------------------

    def _client(self, redirect_uri: str) -> OAuth2Client:
        provider = self.provider
        if provider.private_key_path is not None:
            key, alg, kid = self._private_key()
            client = OAuth2Client(
                self.http,
                client_id=provider.client_id,
                client_secret=key,
                token_endpoint_auth_method="private_key_jwt",  # noqa: S106
                scope=provider.scope,
                redirect_uri=redirect_uri,
                code_challenge_method="S256",
            )
            client.register_client_auth_method(
                PrivateKeyJWT(self.metadata().token_endpoint, headers={"kid": kid}, alg=alg)
            )
            return client
        return OAuth2Client(
            self.http,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            scope=provider.scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )

    def _private_key(self) -> tuple[Any, str, str]:
        """The client's key (checked as the signing key is), without the `alg` that
        loading gives it: its assertions are signed RS512; its key id, the thumbprint."""
        with self._lock:
            if self._assertion_key is None:
                path = self.provider.private_key_path
                assert path is not None
                try:
                    pem = Path(path).read_bytes()
                except OSError as exc:
                    raise ConfigError(
                        f"cannot read the OpenID client key {path}: {exc.strerror}"
                    ) from None
                loaded = signing_key_from_pem(pem, path)
                private = type(loaded.private).import_key(pem)
                self._assertion_key = (private, ASSERTION_ALGORITHMS[loaded.alg], loaded.kid)
            key: tuple[Any, str, str] = self._assertion_key
            return key


def _public_keys(document: Any) -> KeySetSerialization:
    """The signing keys of a JWKS (RFC 7517 §5), private members dropped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS")
    keys = [k for k in document["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    public = [
        {n: v for n, v in k.items() if n not in ("d", "p", "q", "dp", "dq", "qi")} for k in keys
    ]
    return {"keys": public}
