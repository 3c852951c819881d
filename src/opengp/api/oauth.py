"""HTTP adapter for the OAuth2 authorization server and its discovery documents.

GET  /oauth2/authorize                      sign-in page (SMART App Launch, standalone)
POST /oauth2/authorize                      sign in; back to the app with a code
POST /oauth2/token                          client credentials, authorization code, refresh
POST /oauth2/introspect                     RFC 7662
POST /oauth2/revoke                         RFC 7009
GET  /oauth2/jwks                           the public keys tokens are signed with
GET  /oauth2/userinfo (and POST)            OpenID Connect userinfo (services/userinfo.py)
GET  /fhir/.well-known/smart-configuration  SMART App Launch 2.0 metadata
GET  /.well-known/openid-configuration      discovery (RFC 8414 fields: what exists)
GET  /.well-known/oauth-authorization-server
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from opengp.access.principal import Principal
from opengp.access.tokens import TokenRejected
from opengp.api import authorize
from opengp.config import Settings
from opengp.fhir.errors import Unauthorized
from opengp.services import userinfo
from opengp.services.oauth import (
    Answer,
    FormPost,
    OAuthService,
    ServerUrls,
    server_metadata,
    smart_configuration,
)
from opengp.store import ResourceStore

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024  # assertions are a few kB; nothing legitimate is bigger
MAX_FORM_FIELDS = 50

_Handler = Callable[[FormPost], Answer]


class OAuthEndpoints:
    def __init__(self, settings: Settings, store: ResourceStore) -> None:
        self.settings = settings
        self.service = OAuthService(store, settings)

    def routes(self) -> list[BaseRoute]:
        """The routes; mount them before /fhir/{path}, which would take the SMART one."""
        return [
            Route("/oauth2/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/oauth2/token", self.token, methods=["POST"]),
            Route("/oauth2/introspect", self.introspect, methods=["POST"]),
            Route("/oauth2/revoke", self.revoke, methods=["POST"]),
            Route("/oauth2/jwks", self.jwks, methods=["GET"]),
            Route("/oauth2/userinfo", self.userinfo, methods=["GET", "POST"]),
            Route("/fhir/.well-known/smart-configuration", self.smart, methods=["GET"]),
            Route("/.well-known/openid-configuration", self.metadata, methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", self.metadata, methods=["GET"]),
        ]

    def urls(self, request: Request) -> ServerUrls:
        """This server's URLs: configured (behind a proxy), or as this request addressed it."""
        issuer = self.settings.public_url or str(request.base_url).rstrip("/")
        return ServerUrls(issuer, self.settings.fhir_base_url or f"{issuer}/fhir")

    def identify(self, request: Request) -> Callable[[], Principal]:
        """From a request, a function (to run on a worker thread) giving the principal of its
        bearer token (RFC 6750 §2.1); it raises `Unauthorized`, carrying the
        `WWW-Authenticate` challenge, when the token is missing or not good."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        urls = self.urls(request)

        def principal() -> Principal:
            if scheme.lower() != "bearer":
                raise Unauthorized(
                    "this needs an access token: see /fhir/.well-known/smart-configuration",
                    challenge=bearer_challenge(),
                )
            try:
                return self.service.principal_of(self.service.verify(token.strip(), urls))
            except TokenRejected as rejected:
                raise Unauthorized(
                    f"the access token was refused: {rejected.reason}",
                    challenge=bearer_challenge(rejected),
                ) from None

        return principal

    async def authorize(self, request: Request) -> Response:
        # The first call may load (or make) the key the form tokens are keyed from.
        launch = await run_in_threadpool(self.service.launch)
        fhir_base = self.urls(request).fhir_base
        if request.method == "GET":
            return await authorize.show(request, launch, fhir_base)
        return await authorize.submit(request, launch, fhir_base)

    async def token(self, request: Request) -> Response:
        urls = self.urls(request)
        return await self._post(request, urls.token, lambda post: self.service.token(post, urls))

    async def introspect(self, request: Request) -> Response:
        urls = self.urls(request)
        url = urls.introspect
        return await self._post(request, url, lambda post: self.service.introspect(post, urls))

    async def revoke(self, request: Request) -> Response:
        urls = self.urls(request)
        return await self._post(request, urls.revoke, lambda post: self.service.revoke(post, urls))

    async def jwks(self, request: Request) -> Response:
        # The first call may generate the key (embedded database): off the event loop.
        keys = await run_in_threadpool(self.service.jwks)
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})

    async def smart(self, request: Request) -> Response:
        return JSONResponse(smart_configuration(self.urls(request)))

    async def metadata(self, request: Request) -> Response:
        key = await run_in_threadpool(self.service.signing_key)
        urls = self.urls(request)
        body = server_metadata(urls, key.alg)
        # OpenID Connect Discovery §3: the userinfo endpoint, and the claims it can give.
        body["userinfo_endpoint"] = f"{urls.issuer}/oauth2/userinfo"
        body["scopes_supported"] = [*body["scopes_supported"], "profile", "nationalrbacaccess"]
        body["claims_supported"] = list(userinfo.CLAIMS_SUPPORTED)
        return JSONResponse(body)

    async def userinfo(self, request: Request) -> Response:
        """OpenID Connect Core §5.3: the claims about the user an access token was issued
        for, if it holds `openid`; errors as RFC 6750 §3 (401 invalid_token, 403
        insufficient_scope). The token comes in the Authorization header only."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _bearer_error(401, "invalid_token", "an access token is required")
        urls = self.urls(request)

        def claims() -> dict[str, object] | tuple[int, str, str]:
            try:
                verified = self.service.verify(token.strip(), urls)
                if verified.subject == verified.client_id:
                    return 403, "insufficient_scope", "a system client has no user"
                if "openid" not in verified.scopes:
                    return 403, "insufficient_scope", "the token was not granted openid"
                principal = self.service.principal_of(verified)
            except TokenRejected as rejected:
                return 401, "invalid_token", f"the access token was refused: {rejected.reason}"
            return userinfo.claims_for(
                self.service.store, principal, verified.scopes, urls.fhir_base
            )

        answer = await run_in_threadpool(claims)
        if isinstance(answer, tuple):
            return _bearer_error(*answer)
        return JSONResponse(answer)

    async def _post(self, request: Request, url: str, run: _Handler) -> Response:
        form, refused = await _read_form(request)
        if refused is not None:
            # Refused before the form was read: audited here, as the service never saw it.
            status, error, description = refused
            endpoint = url.rsplit("/", 1)[-1]
            await run_in_threadpool(
                self.service.audit_answer, endpoint, Answer(status, {"error": error})
            )
            return _error(status, error, description)
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer: Answer = await run_in_threadpool(run, FormPost(url, headers, form))
        return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))


_Refusal = tuple[int, str, str]  # status, error, description


async def _read_form(request: Request) -> tuple[list[tuple[str, str]], _Refusal | None]:
    """The request's form; or, with no form, why it cannot be read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        return [], (400, "invalid_request", f"the body must be {FORM} (RFC 6749 §3.2)")
    if not _basic_readable(request.headers.get("authorization", "")):
        # RFC 6749 §5.2: 401 with the challenge of the scheme the client tried.
        return [], (401, "invalid_client", "the Authorization header is not readable")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return [], (413, "invalid_request", "the request body is too large")
    try:
        form = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return [], (400, "invalid_request", "the body is not a well-formed UTF-8 form")
    return form, None


def bearer_challenge(rejected: TokenRejected | None = None) -> str:
    """WWW-Authenticate for a request without a good token (RFC 6750 §3)."""
    if rejected is None:
        return 'Bearer realm="fhir"'
    return f'Bearer realm="fhir", error="invalid_token", error_description="{rejected.reason}"'


def _basic_readable(authorization: str) -> bool:
    """Whether Authlib can read this Authorization header (rfc6749.util's
    extract_basic_authorization, mirrored): it fails, a 500, on a header of one word and
    spaces, and on Basic credentials that are not UTF-8. Anything else it reads, or ignores."""
    if " " not in authorization:
        return True
    words = authorization.split(None, 1)
    if len(words) < 2:
        return False
    if words[0].lower() != "basic":
        return True
    try:
        base64.b64decode(words[1]).decode("utf-8")
    except binascii.Error:
        return True
    except UnicodeDecodeError:
        return False
    return True


def _bearer_error(status: int, error: str, description: str) -> Response:
    """RFC 6750 §3: the error in WWW-Authenticate, and as JSON for the curious."""
    body = {"error": error, "error_description": description}
    challenge = f'Bearer error="{error}", error_description="{description}"'
    return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": challenge})


def _error(status: int, error: str, description: str) -> Response:
    body = {"error": error, "error_description": description}
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = f'Basic error="{error}", error_description="{description}"'
    return JSONResponse(body, status_code=status, headers=headers)
