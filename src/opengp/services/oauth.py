"""The OAuth2 authorization server for system clients (SMART Backend Services), on Authlib.

Authlib does the protocol: the client-credentials grant (RFC 6749 §4.4), client
authentication by HTTP Basic and by JWT assertion (RFC 7523, `private_key_jwt`), RFC 9068
JWT access tokens, introspection (RFC 7662) and revocation (RFC 7009). This module gives it
what it cannot know: our clients, keys, URLs and storage, through a framework-neutral request
(`FormPost`) so the HTTP layer stays a thin adapter.

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    ClientCredentialsGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from opengp.access import break_glass
from opengp.access import clients as registry
from opengp.access.accounts import SignInFailed, UnknownAccount, principal_for, proxy_patients
from opengp.access.audit import ANONYMOUS, AuditEntry, Outcome
from opengp.access.clients import ASSERTION_ALGORITHMS, AUTH_METHODS, Client
from opengp.access.keys import SigningKey, load_signing_key
from opengp.access.principal import Principal
from opengp.access.scopes import ScopeError, covered, parse_scopes
from opengp.access.tokens import (
    AccessClaims,
    AccessTokenGenerator,
    TokenAuthority,
    TokenRejected,
    revoke,
    verify_access_token,
)
from opengp.config import ConfigError, Settings
from opengp.services.launch import AuthorizationCode, Launch, Refresh, code_challenge
from opengp.store import ResourceStore
from opengp.store.sql import SqlStore

log = logging.getLogger("opengp.oauth")

# SMART Backend Services: an assertion's exp is at most five minutes ahead.
MAX_ASSERTION_SECONDS = 300
ASSERTION_LEEWAY_SECONDS = 30  # clock skew allowed between client and server
GRANT_TYPES = ["authorization_code", "client_credentials", "refresh_token"]
# Examples, not a full list: any scope within a client's registration may be asked for.
SCOPES_SUPPORTED = [
    "system/*.cruds",
    "system/*.rs",
    "patient/*.rs",
    "user/*.rs",
    "launch/patient",
    "openid",
    "fhirUser",
    "offline_access",
]
TOKEN_AUTH_METHODS = [*AUTH_METHODS, "none"]  # none: public apps, with PKCE


@dataclass(frozen=True, slots=True)
class ServerUrls:
    """Where this server is, as clients address it."""

    issuer: str  # the server's base URL, e.g. https://gp.example.nhs.uk
    fhir_base: str  # the FHIR base URL: the audience of access tokens

    @property
    def token(self) -> str:
        return f"{self.issuer}/oauth2/token"

    @property
    def authorize(self) -> str:
        return f"{self.issuer}/oauth2/authorize"

    @property
    def jwks(self) -> str:
        return f"{self.issuer}/oauth2/jwks"

    @property
    def introspect(self) -> str:
        return f"{self.issuer}/oauth2/introspect"

    @property
    def revoke(self) -> str:
        return f"{self.issuer}/oauth2/revoke"


def server_metadata(urls: ServerUrls, id_token_alg: str | None = None) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414), also served as OpenID discovery.

    Only what exists. ID tokens are issued to apps asking for `openid` (SMART's
    sso-openid-connect); `/oauth2/userinfo` gives the claims of `profile` and
    `nationalrbacaccess` to relying parties (another OpenGP signing people in).
    """
    auth_methods, algorithms = list(AUTH_METHODS), list(ASSERTION_ALGORITHMS)
    return {
        "issuer": urls.issuer,
        "jwks_uri": urls.jwks,
        "authorization_endpoint": urls.authorize,
        "token_endpoint": urls.token,
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [id_token_alg] if id_token_alg else [],
        "scopes_supported": SCOPES_SUPPORTED,
        "introspection_endpoint": urls.introspect,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        "revocation_endpoint": urls.revoke,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
    }


def smart_configuration(urls: ServerUrls) -> dict[str, Any]:
    """/.well-known/smart-configuration (SMART App Launch 2.0 §"Metadata").

    The capabilities are only those implemented: standalone launch with a patient in
    context, public apps and confidential ones with a secret (symmetric) or a key pair
    (asymmetric, backend services), SMART v1 and v2 scope syntax, patient/ and user/
    scopes, refresh tokens (offline_access) and OpenID Connect ID tokens.
    """
    return {
        "issuer": urls.issuer,
        "jwks_uri": urls.jwks,
        "authorization_endpoint": urls.authorize,
        "token_endpoint": urls.token,
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": GRANT_TYPES,
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-offline",
            "permission-v1",
            "permission-v2",
            "sso-openid-connect",
        ],
        "code_challenge_methods_supported": ["S256"],
        "introspection_endpoint": urls.introspect,
        "revocation_endpoint": urls.revoke,
    }


@dataclass(frozen=True, slots=True)
class FormPost:
    """An HTTP POST of form parameters, as the OAuth2 endpoints receive it."""

    url: str  # the endpoint's URL as clients address it (https, or a loopback address)
    headers: Mapping[str, str]  # names in lower case
    form: Sequence[tuple[str, str]]  # every parameter, in order, repeats included


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)


def error_answer(error: OAuth2Error) -> Answer:
    status, body, headers = error()
    return Answer(status, body, list(headers))


class OAuthService:
    """The authorization server's use cases over one store and one signing key."""

    def __init__(self, store: ResourceStore, settings: Settings) -> None:
        if not isinstance(store, SqlStore):
            raise TypeError("the OAuth2 server keeps its clients in the SQL store")
        self.store = store
        self.settings = settings
        self._key: SigningKey | None = None
        self._key_lock = threading.Lock()

    def signing_key(self) -> SigningKey:
        """The server's key, loaded (or, for the embedded database, made) on first use."""
        with self._key_lock:
            if self._key is None:
                self._key = load_signing_key(self.settings)
                log.info("access tokens are signed with key %s (%s)", self._key.kid, self._key.alg)
            return self._key

    def authority(self, urls: ServerUrls) -> TokenAuthority:
        return TokenAuthority(urls.issuer, urls.fhir_base, self.signing_key())

    def token(self, post: FormPost, urls: ServerUrls) -> Answer:
        """POST /oauth2/token (RFC 6749 §4.4, client credentials)."""
        return self._audited("token", urls, lambda s: s.create_token_response(post), post)

    def introspect(self, post: FormPost, urls: ServerUrls) -> Answer:
        """POST /oauth2/introspect (RFC 7662)."""
        return self._audited(
            "introspect", urls, lambda s: s.create_endpoint_response("introspection", post), post
        )

    def revoke(self, post: FormPost, urls: ServerUrls) -> Answer:
        """POST /oauth2/revoke (RFC 7009)."""
        return self._audited(
            "revoke", urls, lambda s: s.create_endpoint_response("revocation", post), post
        )

    def _audited(
        self, endpoint: str, urls: ServerUrls, call: Callable[[_Server], Answer], post: FormPost
    ) -> Answer:
        """`_run`, and one audit entry: which endpoint and grant, the outcome, and the client
        (once authenticated; else anonymous). Never a token or a secret."""
        server: list[_Server] = []

        def remembered(s: _Server) -> Answer:
            server.append(s)
            return call(s)

        answer = self._run(urls, remembered, post)
        self.audit_answer(endpoint, answer, post.form, server[0].client_id if server else None)
        return answer

    def audit_answer(
        self,
        endpoint: str,
        answer: Answer,
        form: Sequence[tuple[str, str]] = (),
        client_id: str | None = None,
    ) -> None:
        """Audit the answer of the token, introspection or revocation endpoint (also when
        the request was refused before it was read)."""
        detail: dict[str, Any] = {"endpoint": endpoint, "status": answer.status}
        grant_type = dict(form).get("grant_type")
        if endpoint == "token" and grant_type in GRANT_TYPES:
            detail["grant_type"] = grant_type
        denied = answer.status in (400, 401, 403) and answer.body.get("error") != "invalid_request"
        outcome: Outcome = "success" if answer.status < 400 else "denied" if denied else "failed"
        entry = AuditEntry(
            "token",
            outcome,
            f"system/{client_id}" if client_id else ANONYMOUS,
            client_id=client_id,
            detail=detail,
        )
        with self.store.auditing() as trail:
            trail.audit(entry)

    def verify(self, token: str, urls: ServerUrls) -> AccessClaims:
        """The claims of a valid access token for this server; `TokenRejected` otherwise."""
        authority = self.authority(urls)
        with self.store.reading() as tx:
            return verify_access_token(token, authority, tx.conn, now=self.store.clock())

    def principal_of(self, claims: AccessClaims) -> Principal:
        """Who a verified token speaks for: a system client, or the user an app acts for.

        A user's token gives their account's principal now (a disabled or removed account's
        tokens are refused as revoked), narrowed to the token's scopes, with the patient in
        context from the token (for a proxy, only while the grant for that patient stands).
        """
        if claims.subject == claims.client_id:
            return claims.principal()
        with self.store.reading() as tx:
            try:
                user = principal_for(tx.conn, claims.subject)
            except (UnknownAccount, SignInFailed):
                raise TokenRejected("revoked", "the account is disabled or removed") from None
            patient = claims.claims.get("patient")
            patient_id = user.patient_id
            if user.kind == "proxy" and isinstance(patient, str):
                patient_id = patient if patient in proxy_patients(tx.conn, user.id) else None
            glass = break_glass.active(tx.conn, user.id, self.store.clock())
        return replace(
            user,
            scopes=frozenset(claims.scopes),
            client_id=claims.client_id,
            purpose=claims.purpose,
            patient_id=patient_id,
            break_glass=glass if user.kind == "staff" else (),
        )

    def launch(self) -> Launch:
        """The authorization endpoint's use cases; its form tokens are keyed from our key."""
        pem = self.signing_key().private.as_pem(private=True)
        return Launch(self.store, hashlib.sha256(b"opengp authorize form\n" + pem).digest())

    def jwks(self) -> dict[str, Any]:
        return self.signing_key().jwks()

    def _run(self, urls: ServerUrls, call: Callable[[_Server], Answer], post: FormPost) -> Answer:
        problem = _form_problem(post)
        if problem is not None:
            return error_answer(InvalidRequestError(_safe(problem)))
        try:
            return call(_Server(self, urls))
        except OAuth2Error as error:  # raised before Authlib's own handling (e.g. http)
            return error_answer(error)
        except ConfigError as exc:
            log.error("OAuth2 endpoints unavailable: %s", exc)
            return Answer(
                503, {"error": "temporarily_unavailable"}, [("Cache-Control", "no-store")]
            )


def _form_problem(post: FormPost) -> str | None:
    names = [name for name, _ in post.form]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # RFC 6749 §3.2: parameters MUST NOT be included more than once.
        return f"parameters sent more than once: {', '.join(repeated)}"
    if "authorization" in post.headers and "client_assertion" in names:
        # RFC 6749 §2.3: one authentication method per request.
        return "use one client authentication method: HTTP Basic or client_assertion"
    return None


def add_client(
    store: SqlStore,
    name: str,
    scopes: str,
    purpose: str,
    jwks: Any = None,
    *,
    redirect_uris: Sequence[str] = (),
    public: bool = False,
) -> tuple[str, str | None]:
    """Register a client; its id and its secret (None when it signs with its keys, or is a
    public app). With redirect URIs it is an app (authorization code, refresh tokens)."""
    if redirect_uris:
        method = "none" if public else "client_secret_basic"
        grant_types: tuple[str, ...] = registry.APP_GRANT_TYPES
    else:
        method = "private_key_jwt" if jwks is not None else "client_secret_basic"
        grant_types = registry.SYSTEM_GRANT_TYPES
    with store.writing() as tx:
        return registry.register_client(
            tx.conn,
            name,
            scopes,
            purpose,
            method,
            jwks,
            grant_types=grant_types,
            redirect_uris=redirect_uris,
            now=tx.clock(),
        )


def list_clients(store: SqlStore) -> list[Client]:
    with store.reading() as tx:
        return registry.list_clients(tx.conn)


# ---- Authlib, given our clients, storage and URLs ----------------------------------------


def _safe(text: str) -> str:
    """Text allowed in error_description (RFC 6749 §5.2: printable ASCII without " and \\)."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:300]


class _Headers(dict[str, str]):
    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: Sequence[tuple[str, str]]) -> None:
        self._data = dict(form)
        self._datalist: dict[str, list[str]] = {}
        for name, value in form:
            self._datalist.setdefault(name, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, post: FormPost) -> None:
        super().__init__("POST", post.url, headers=_Headers(post.headers))
        self.payload = _Payload(post.form)

    @property
    def form(self) -> dict[str, str]:
        data: dict[str, str] = self.payload.data
        return data

    @property
    def args(self) -> dict[str, str]:
        return {}


class _Client(ClientMixin):  # type: ignore[misc]
    """A registered client as Authlib sees it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.purpose = client.purpose

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        return " ".join(parse_scopes(scope)) if scope else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.client.redirect_uris  # exact match (RFC 9700 §4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        return registry.check_secret(self.client, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.client.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.client.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.client.grant_types


class _Token:
    """A verified access token as Authlib's introspection and revocation see it."""

    def __init__(self, claims: AccessClaims) -> None:
        self.claims = claims

    def check_client(self, client: _Client) -> bool:
        return self.claims.client_id == client.get_client_id()

    def is_expired(self) -> bool:
        return False  # verified just now

    def is_revoked(self) -> bool:
        return False  # verified just now


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        """The scopes asked for, each within the client's registration (SMART requires some)."""
        scope = self.request.payload.scope
        if not scope:
            raise InvalidScopeError("scope is required, e.g. scope=system/Patient.rs")
        try:
            requested = parse_scopes(scope)
        except ScopeError as exc:
            raise InvalidScopeError(_safe(str(exc))) from None
        registered = self.request.client.client.scopes
        beyond = [s for s in requested if not covered(s, registered)]
        if beyond:
            raise InvalidScopeError(_safe(f"not registered for this client: {' '.join(beyond)}"))


class _PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """`private_key_jwt`: a JWT signed with a key the client registered (RFC 7523 §2.2)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: _Server) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY_SECONDS)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.urls.token]  # SMART Backend Services: aud is the token URL

    def resolve_client_public_key(self, client: _Client) -> KeySet:
        # Never a TypeError here: Authlib would retry with a deprecated signature.
        if client.client.auth_method != self.CLIENT_AUTH_METHOD or not client.client.jwks:
            raise InvalidClientError(description="the client has no registered keys")
        return KeySet.import_key_set(cast(KeySetSerialization, client.client.jwks))

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        # Authlib leaves the algorithms to joserfc's defaults (RS256, ES256, HS256); SMART's
        # are RS384 and ES384, and only those are accepted.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError as exc:
            raise InvalidClientError(
                description=_safe(f"the client assertion is not valid: {exc.error}")
            ) from None
        self.verify_claims(token.claims)
        claims: dict[str, Any] = token.claims
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        super().verify_claims(claims)
        now = self.server.service.store.clock().timestamp()
        if claims["exp"] > now + MAX_ASSERTION_SECONDS + ASSERTION_LEEWAY_SECONDS:
            raise InvalidClientError(
                description="the client assertion's exp must be at most 5 minutes ahead"
            )

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not jti:
            return False
        store = self.server.service.store
        # Kept past exp plus the leeway, when the assertion is refused as expired anyway.
        keep = timedelta(seconds=ASSERTION_LEEWAY_SECONDS + 60)
        with store.writing() as tx:
            now = tx.clock()
            expires = datetime.fromtimestamp(float(claims["exp"]), UTC) + keep
            return registry.remember_assertion(tx.conn, claims["sub"], jti, expires, now)


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        try:
            return _Token(self.server.service.verify(token_string, self.server.urls))
        except TokenRejected:
            return None

    def check_permission(self, token: _Token, client: _Client, request: _Request) -> bool:
        # A client may introspect its own tokens; others' are reported inactive (RFC 7662 §2.2).
        return token.check_client(client)

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        claims = token.claims
        return {
            "active": True,
            "token_type": "Bearer",
            "client_id": claims.client_id,
            "scope": " ".join(claims.scopes),
            "sub": claims.subject,
            "aud": claims.audience,
            "iss": claims.issuer,
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "jti": claims.jti,
            "purpose": claims.purpose,
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        # An invalid, expired or already revoked token: nothing to do, and 200 (RFC 7009 §2.2).
        try:
            return _Token(self.server.service.verify(token_string, self.server.urls))
        except TokenRejected:
            return None

    def revoke_token(self, token: _Token, request: _Request) -> None:
        store = self.server.service.store
        with store.writing() as tx:
            revoke(tx.conn, token.claims.jti, token.claims.expires_at, tx.clock())
        log.info("access token revoked by client %s", token.claims.client_id)


class _Server(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server for one request (the URLs may come from the request)."""

    def __init__(self, service: OAuthService, urls: ServerUrls) -> None:
        super().__init__()
        self.service = service
        self.urls = urls
        authority = service.authority(urls)
        self.register_grant(_ClientCredentials)
        self.register_grant(AuthorizationCode, [code_challenge()])
        self.register_grant(Refresh)
        self.register_client_auth_method(_PrivateKeyJwt.CLIENT_AUTH_METHOD, _PrivateKeyJwt(self))
        generator = AccessTokenGenerator(authority, service.settings.token_lifetime_seconds)
        self.register_token_generator("default", generator)
        self.register_endpoint(_Introspection(self))
        self.register_endpoint(_Revocation(self))

    client_id: str | None = None  # the client, once authenticated (for the audit trail)

    def authenticate_client(self, request: _Request, methods: Any, endpoint: str = "token") -> Any:
        client = super().authenticate_client(request, methods, endpoint)
        self.client_id = client.get_client_id()
        return client

    def query_client(self, client_id: str) -> _Client | None:
        with self.service.store.reading() as tx:
            client = registry.find_client(tx.conn, client_id)
        return _Client(client) if client is not None and not client.disabled else None

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        # Access tokens are self-contained JWTs: nothing to store (revocation stores the jti).
        log.info("access token issued to client %s", request.client.get_client_id())

    def create_oauth2_request(self, request: FormPost | _Request) -> _Request:
        return request if isinstance(request, _Request) else _Request(request)

    def create_json_request(self, request: object) -> None:
        raise NotImplementedError

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        pass  # no listeners

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Answer:
        return Answer(status, body, list(headers))

    def handle_error_response(self, request: _Request, error: OAuth2Error) -> Answer:
        if isinstance(error, InvalidClientError):
            # RFC 6749 §5.2: 401 with WWW-Authenticate for failed client authentication.
            error.status_code = 401
        return error_answer(error)
