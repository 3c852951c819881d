"""SMART App Launch v2, standalone launch: the authorization endpoint and the user grants.

https://hl7.org/fhir/smart-app-launch/app-launch.html

- `Launch.check` validates an authorization request (RFC 6749 §4.1.1, SMART's `aud`, PKCE
  S256 required for every client, RFC 7636). A bad client or redirect URI is shown on our
  page and never redirected (§4.1.2.1); other errors go back to the registered redirect URI.
- `Launch.sign_in` signs the user in (accounts.sign_in), works out what may be granted
  (requested ∩ registered ∩ what the kind of account may hold) and issues a code.
- `AuthorizationCode` and `Refresh` are Authlib's grants over our storage (access/grants.py):
  codes single-use, 60 s; refresh tokens rotated, reuse revoking the user's tokens for the app.

No consent screen yet: signing in is taken as consent to the scopes the app may have.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import InvalidGrantError  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    AuthorizationCodeGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636.challenge import (  # type: ignore[import-untyped]
    CODE_CHALLENGE_PATTERN,
)
from joserfc import jwt
from sqlalchemy import Connection

from opengp.access import accounts, grants
from opengp.access import clients as registry
from opengp.access.audit import AuditEntry, entry_for
from opengp.access.clients import Client
from opengp.access.grants import Grant
from opengp.access.passwords import WeakPassword
from opengp.access.principal import Principal
from opengp.access.scopes import OTHER_SCOPES, ScopeError, covered, parse_scope, parse_scopes
from opengp.access.tokens import AccessTokenGenerator, TokenClient
from opengp.store.sql import SqlStore

log = logging.getLogger("opengp.oauth")

APP_TOKEN_AUTH_METHODS = ["client_secret_basic", "none"]
AUTHORIZE_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "launch",
)
# The scopes of a plain OpenID Connect sign-in: no FHIR data, so no `aud` needed.
IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile", "nationalrbacaccess"})
FORM_LIFETIME_SECONDS = 15 * 60  # a sign-in page older than this must be reloaded
ID_TOKEN_SECONDS = 300


class AuthorizePage(Exception):
    """An authorization request that must not be redirected: shown on our page (safe text)."""


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the browser back to the app (a registered redirect URI, checked)."""

    location: str


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    nonce: str | None
    params: tuple[tuple[str, str], ...]  # the request's own parameters, to echo in the form


class SignInProblem(Exception):
    """The sign-in did not succeed: the message is safe to show on the page."""


class PasswordProblem(Exception):
    """The new password was not accepted: the message is safe to show on the page."""


@dataclass(frozen=True, slots=True)
class PasswordChange:
    """Signed in with a one-time password: a new one must be chosen (`change_token` vouches
    for the sign-in, for FORM_LIFETIME_SECONDS and until the password changes)."""

    change_token: str


def redirect_to(uri: str, **params: str | None) -> Redirect:
    query = urlencode([(k, v) for k, v in params.items() if v is not None])
    return Redirect(f"{uri}{'&' if '?' in uri else '?'}{query}")


def grantable(requested: Sequence[str], registered: Sequence[str], kind: str) -> tuple[str, ...]:
    """What may be granted: asked for, within the app's registration, and fit for the kind of
    account (patient/ scopes for patients and proxies, user/ scopes for staff)."""
    out = []
    for scope in requested:
        if not covered(scope, registered):
            continue
        if scope in OTHER_SCOPES:
            if scope == "launch/patient" and kind == "staff":
                continue
            out.append(scope)
            continue
        context = parse_scope(scope).context
        if (context == "patient" and kind in ("patient", "proxy")) or (
            context == "user" and kind == "staff"
        ):
            out.append(scope)
    return tuple(out)


class Launch:
    """The authorization endpoint's use cases, over the OAuth service's store and key."""

    def __init__(self, store: SqlStore, secret: bytes) -> None:
        self.store = store
        self._secret = secret

    # ---- the request ------------------------------------------------------------------

    def check(self, params: Sequence[tuple[str, str]], fhir_base: str) -> AuthorizeRequest:
        """A valid request, or `AuthorizePage` (not redirected) or `Redirect` (an error sent
        back to the app, raised as `RedirectError`)."""
        names = [name for name, _ in params]
        if any(names.count(name) > 1 for name in AUTHORIZE_PARAMETERS):
            raise AuthorizePage("The request repeats a parameter: go back to the app.")
        given = dict(params)
        client_id, redirect_uri = given.get("client_id", ""), given.get("redirect_uri", "")
        with self.store.reading() as tx:
            client = registry.find_client(tx.conn, client_id) if client_id else None
        if client is None or client.disabled or "authorization_code" not in client.grant_types:
            raise AuthorizePage("This app is not registered with the practice.")
        if redirect_uri not in client.redirect_uris:  # exact match (RFC 9700 §4.1.3)
            raise AuthorizePage("This app's return address is not registered.")
        state = given.get("state")

        def fail(error: str, description: str) -> RedirectError:
            return RedirectError(
                redirect_to(redirect_uri, error=error, error_description=description, state=state)
            )

        if given.get("response_type") != "code":
            raise fail("unsupported_response_type", "response_type must be code")
        challenge = given.get("code_challenge", "")
        if not CODE_CHALLENGE_PATTERN.match(challenge):
            raise fail("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
        if given.get("code_challenge_method") != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        # SMART's aud keeps a token for our FHIR data from going to another server; a sign-in
        # that asks for identity only (an OpenID Connect relying party) need not send it.
        identity_only = set(given.get("scope", "").split()) <= IDENTITY_SCOPES
        wrong_aud = given.get("aud", "").rstrip("/") != fhir_base.rstrip("/")
        if wrong_aud and ("aud" in given or not identity_only):
            raise fail("invalid_request", f"aud must be this server's FHIR base URL {fhir_base}")
        if "launch" in given:
            raise fail("invalid_request", "EHR launch is not supported: use standalone launch")
        try:
            scopes = parse_scopes(given.get("scope", ""))
        except ScopeError:
            raise fail("invalid_scope", "scope is missing or not valid") from None
        return AuthorizeRequest(
            client=client,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=state,
            code_challenge=challenge,
            nonce=given.get("nonce"),
            params=tuple((n, v) for n, v in params if n in AUTHORIZE_PARAMETERS),
        )

    # ---- the form's CSRF token: bound to the request and to the browser's cookie ---------

    def form_token(self, request: AuthorizeRequest, browser: str, now: float) -> str:
        issued = str(int(now))
        return f"{issued}.{self._mac(request, browser, issued)}"

    def form_token_ok(self, request: AuthorizeRequest, browser: str, token: str) -> bool:
        issued, _, mac = token.partition(".")
        if not browser or not issued.isdigit():
            return False
        if not 0 <= time.time() - int(issued) <= FORM_LIFETIME_SECONDS:
            return False
        return hmac.compare_digest(mac, self._mac(request, browser, issued))

    def _mac(self, request: AuthorizeRequest, browser: str, issued: str) -> str:
        message = urlencode([("browser", browser), ("issued", issued), *sorted(request.params)])
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    # ---- signing in -------------------------------------------------------------------

    def sign_in(
        self, request: AuthorizeRequest, username: str, password: str, totp_code: str | None
    ) -> Redirect | PasswordChange:
        """Sign the user in and send a code back to the app, or (after a one-time password)
        ask for a new password first; `SignInProblem` otherwise."""
        try:
            principal = accounts.sign_in(self.store, username, password, totp_code or None)
        except accounts.SignInFailed as failed:
            detail = {"via": "oauth2", "reason": failed.reason}
            with self.store.auditing() as trail:  # never the username typed
                trail.audit(entry_for(None, "signin", "failed", detail=detail))
            raise SignInProblem(str(failed)) from None
        with self.store.writing() as tx:
            account = accounts.get_account(tx.conn, principal.id)
            if account is None:
                raise SignInProblem("This account no longer exists.")
            if account.must_change_password:
                fingerprint = accounts.password_fingerprint(tx.conn, principal.id)
                return PasswordChange(self._change_token(principal.id, fingerprint, time.time()))
            code = self._issue_code(tx.conn, request, principal)
            tx.audit(self._signed_in(request, principal))
        return self._code_redirect(request, code)

    def _signed_in(self, request: AuthorizeRequest, principal: Principal) -> AuditEntry:
        """The audit entry of a sign-in that sends the app its code."""
        detail = {"via": "oauth2", "client_id": request.client.client_id}
        return entry_for(principal, "signin", detail=detail)

    def change_password(
        self, request: AuthorizeRequest, change_token: str, new: str, confirm: str
    ) -> Redirect:
        """Set the new password asked for after a one-time password, then send the code."""
        user_id, fingerprint = self._change_token_claims(change_token)
        if new != confirm:
            raise PasswordProblem("The two passwords are different: type the same one twice.")
        try:
            with self.store.writing() as tx:
                accounts.replace_one_time_password(tx.conn, user_id, fingerprint, new)
                principal = accounts.principal_for(tx.conn, user_id)
                code = self._issue_code(tx.conn, request, principal)
                tx.audit(self._signed_in(request, principal))
        except WeakPassword as weak:
            raise PasswordProblem(f"Choose a different password: {weak}.") from None
        except (accounts.SignInFailed, accounts.UnknownAccount):
            raise SignInProblem("This page has expired: sign in again.") from None
        return self._code_redirect(request, code)

    def _change_token(self, user_id: str, fingerprint: str, now: float) -> str:
        body = f"{int(now)}.{user_id}.{fingerprint}"
        return f"{body}.{self._token_mac(body)}"

    def _change_token_claims(self, token: str) -> tuple[str, str]:
        body, _, mac = token.rpartition(".")
        issued, _, rest = body.partition(".")
        user_id, _, fingerprint = rest.rpartition(".")
        fresh = issued.isdigit() and 0 <= time.time() - int(issued) <= FORM_LIFETIME_SECONDS
        if not (fresh and user_id and hmac.compare_digest(mac, self._token_mac(body))):
            raise SignInProblem("This page has expired: sign in again.")
        return user_id, fingerprint

    def _token_mac(self, body: str) -> str:
        return hmac.new(self._secret, b"password-change." + body.encode(), "sha256").hexdigest()

    def _issue_code(self, conn: Connection, request: AuthorizeRequest, principal: Principal) -> str:
        scope = grantable(request.scopes, request.client.scopes, principal.kind)
        patient_id = principal.patient_id
        if principal.kind == "proxy":
            proxied = accounts.proxy_patients(conn, principal.id)
            # One patient only: choosing among several needs a picker screen (to come).
            patient_id = next(iter(proxied)) if len(proxied) == 1 else None
        return grants.issue(
            conn,
            "code",
            client_id=request.client.client_id,
            user_id=principal.id,
            scope=" ".join(scope),
            patient_id=patient_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            code_challenge_method="S256",
            nonce=request.nonce,
            now=self.store.clock(),
        )

    def _code_redirect(self, request: AuthorizeRequest, code: str) -> Redirect:
        log.info("authorization code issued to client %s", request.client.client_id)
        return redirect_to(request.redirect_uri, code=code, state=request.state)


class RedirectError(Exception):
    """An authorization error to send back to the app's (registered) redirect URI."""

    def __init__(self, redirect: Redirect) -> None:
        super().__init__("authorization error")
        self.redirect = redirect


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)


# ---- the token endpoint: Authlib's grants over access/grants.py ---------------------------


class User:
    """A signed-in user as Authlib's grants see them."""

    def __init__(self, principal: Principal, grant: Grant) -> None:
        self.principal = principal
        self.grant = grant

    def get_user_id(self) -> str:
        return self.principal.id


class _Code:
    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.code_challenge = grant.code_challenge
        self.code_challenge_method = grant.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope


class _RefreshCredential:
    def __init__(self, grant: Grant) -> None:
        self.grant = grant

    def check_client(self, client: Any) -> bool:
        return bool(self.grant.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.grant.scope


class UserTokenGenerator(AccessTokenGenerator):
    """Access tokens for users: sub is the account, with fhirUser and the patient context."""

    def get_extra_claims(
        self, client: TokenClient, grant_type: str, user: object, scope: str
    ) -> dict[str, Any]:
        claims = super().get_extra_claims(client, grant_type, user, scope)
        if isinstance(user, User):
            if user.principal.fhir_user is not None:
                claims["fhirUser"] = user.principal.fhir_user
            if user.grant.patient_id is not None:
                claims["patient"] = user.grant.patient_id
        return claims


class _UserGrant:
    """What the two user grants share: who the user is, and the token response."""

    server: Any
    request: Any
    GRANT_TYPE: str

    def _user(self, grant: Grant) -> User | None:
        with self.server.service.store.reading() as tx:
            try:
                return User(accounts.principal_for(tx.conn, grant.user_id), grant)
            except (accounts.UnknownAccount, accounts.SignInFailed):
                return None

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        service = self.server.service
        client = self.request.client
        granted = scope or ""
        generator = UserTokenGenerator(
            service.authority(self.server.urls), service.settings.token_lifetime_seconds
        )
        token: dict[str, Any] = generator.generate(
            grant_type or self.GRANT_TYPE, client, user, granted, include_refresh_token=False
        )
        token["scope"] = granted
        scopes = granted.split()
        grant = user.grant
        if grant.patient_id is not None and "launch/patient" in scopes:
            token["patient"] = grant.patient_id
        if "offline_access" in scopes and client.check_grant_type("refresh_token"):
            with service.store.writing() as tx:
                token["refresh_token"] = grants.issue(
                    tx.conn,
                    "refresh",
                    client_id=grant.client_id,
                    user_id=grant.user_id,
                    scope=grant.scope,  # RFC 6749 §6: the same scope as the grant
                    patient_id=grant.patient_id,
                    now=tx.clock(),
                )
        if "openid" in scopes:
            token["id_token"] = self._id_token(user, client.get_client_id(), scopes)
        return token

    def _id_token(self, user: User, client_id: str, scopes: list[str]) -> str:
        """OpenID Connect ID token (Core §2), with SMART's fhirUser claim when asked for; the
        claims of `profile` and `nationalrbacaccess` come from the userinfo endpoint."""
        key = self.server.service.signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.server.urls.issuer,
            "sub": user.principal.id,
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
        }
        if user.principal.fhir_user is not None and "fhirUser" in scopes:
            claims["fhirUser"] = f"{self.server.urls.fhir_base}/{user.principal.fhir_user}"
        if self.GRANT_TYPE == "authorization_code" and user.grant.nonce:
            claims["nonce"] = user.grant.nonce
        header = {"alg": key.alg, "typ": "JWT"}
        return jwt.encode(header, claims, key.signing_keys(), algorithms=[key.alg])

    def save_token(self, token: dict[str, Any]) -> None:
        log.info("user token issued to client %s", self.request.client.get_client_id())


class AuthorizationCode(_UserGrant, AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = APP_TOKEN_AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        raise NotImplementedError("codes are issued by Launch.sign_in")

    def query_authorization_code(self, code: str, client: Any) -> _Code | None:
        store = self.server.service.store
        with store.writing() as tx:
            grant = grants.claim(tx.conn, "code", code, client.get_client_id(), tx.clock())
        return None if grant is None else _Code(grant)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        pass  # claimed, once, by query_authorization_code

    def authenticate_user(self, authorization_code: _Code) -> User | None:
        return self._user(authorization_code.grant)


class Refresh(_UserGrant, RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = APP_TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshCredential | None:
        store = self.server.service.store
        client_id = self.request.client.get_client_id()
        with store.writing() as tx:
            grant = grants.claim(tx.conn, "refresh", refresh_token, client_id, tx.clock())
        return None if grant is None else _RefreshCredential(grant)

    def authenticate_user(self, refresh_token: _RefreshCredential) -> User | None:
        return self._user(refresh_token.grant)

    def issue_token(self, user: User, refresh_token: _RefreshCredential) -> dict[str, Any]:
        scope = self.request.payload.scope or refresh_token.get_scope()
        if "offline_access" not in refresh_token.get_scope().split():
            raise InvalidGrantError("the grant has no offline_access")
        return self.generate_token(user=user, scope=scope)

    def revoke_old_credential(self, refresh_token: _RefreshCredential) -> None:
        pass  # claimed, once, by authenticate_refresh_token


def code_challenge() -> CodeChallenge:
    return CodeChallenge(required=True)
