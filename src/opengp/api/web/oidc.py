"""Signing in to the screens with an OpenID provider: NHS CIS2 for staff, NHS login for
patients (services/oidc.py, services/external_sign_in.py; docs/security.md).

    GET  /staff/sign-in/oidc            leave for the provider (a link on the sign-in page)
    GET  /staff/sign-in/oidc/callback   back from it: check, find the account, sign in
    POST /staff/sign-in/oidc/role       the role chosen, when NHS CIS2 gives several
    GET  /patient/sign-in/oidc          ... and the same for NHS login, without roles
    GET  /patient/sign-in/oidc/callback

Each answers 404 while its area has no provider configured. Leaving is a plain link (a GET:
it changes nothing but a cookie, and a form posting to another site would break the pages'
`form-action 'self'`). What the flow needs when it comes back (state, nonce, PKCE verifier)
travels in the `__Host-opengp-oidc` cookie, sealed with an HMAC and good for 10 minutes:
`SameSite=Lax`, as the provider sends the browser back with a cross-site navigation. It is
cleared by the callback, whatever its outcome, and the provider takes each code once.

The role choice is carried from the callback to its form by a token sealed the same way and
bound to the browser's form cookie, like the new-password step of signin.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from opengp.access import accounts
from opengp.access.accounts import NATIONAL_ROLES
from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.areas import PATIENT, STAFF, Area, Web
from opengp.api.web.forms import same_secret
from opengp.api.web.guard import refused, see_other
from opengp.api.web.session import (
    FORM_COOKIE,
    browser_id,
    set_form_cookie,
    set_session_cookie,
)
from opengp.api.web.signin import ASK_AGAIN, checked_form, sign_in_page
from opengp.config import OidcProvider
from opengp.services import external_sign_in
from opengp.services.external_sign_in import Refused, Role
from opengp.services.oidc import Flow, OidcFailed, RelyingParty

log = logging.getLogger("opengp.web")

FLOW_COOKIE = "__Host-opengp-oidc"
FLOW_SECONDS = 10 * 60
ROLE_SECONDS = 10 * 60
START_AGAIN = "The sign-in could not be completed: please start again."


@dataclass(frozen=True, slots=True)
class Provider:
    """An area's OpenID provider, as its pages name it."""

    area: Area
    name: str  # NHS CIS2, NHS login
    button: str  # the sign-in page's button
    relying_party: RelyingParty
    org_code: str | None = None

    @property
    def start(self) -> str:
        return f"{self.area.sign_in}/oidc"

    @property
    def callback(self) -> str:
        return f"{self.area.sign_in}/oidc/callback"

    @property
    def choose_role(self) -> str:
        return f"{self.area.sign_in}/oidc/role"


def providers(staff: OidcProvider | None, patient: OidcProvider | None) -> dict[str, Provider]:
    """The configured providers, by area name."""
    found = {}
    if staff is not None:
        found[STAFF.name] = Provider(
            STAFF, "NHS CIS2", "Sign in with NHS CIS2", RelyingParty(staff), staff.org_code
        )
    if patient is not None:
        found[PATIENT.name] = Provider(
            PATIENT, "NHS login", "Continue with NHS login", RelyingParty(patient)
        )
    return found


class Sealer:
    """Values the browser carries for us, sealed with an HMAC (and a time) so it cannot
    change them: the flow cookie and the role choice."""

    def __init__(self, secret: Callable[[], bytes], clock: Callable[[], float]) -> None:
        self._secret = secret
        self._clock = clock

    def seal(self, purpose: str, *parts: str) -> str:
        body = ".".join((str(int(self._clock())), *parts))
        return f"{body}.{self._mac(purpose, body)}"

    def open(self, purpose: str, sealed: str, lifetime: int) -> list[str] | None:
        body, _, mac = sealed.rpartition(".")
        issued, *parts = body.split(".")
        if not (issued.isascii() and issued.isdigit() and len(issued) < 16 and mac):
            return None
        if not 0 <= self._clock() - int(issued) <= lifetime:
            return None
        return parts if same_secret(mac, self._mac(purpose, body)) else None

    def _mac(self, purpose: str, body: str) -> str:
        message = f"oidc {purpose}\n{body}".encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()


def routes(
    web: Web, configured: dict[str, Provider], secret: Callable[[], bytes]
) -> list[BaseRoute]:
    sealer = Sealer(secret, lambda: web.store.clock().timestamp())
    table: list[BaseRoute] = []

    def bind(
        handler: Callable[[Web, Provider, Sealer, Request], Awaitable[Response]], area: Area
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            provider = configured.get(area.name)
            if provider is None:
                return PlainTextResponse("Not Found", status_code=404)
            return await handler(web, provider, sealer, request)

        return endpoint

    for area in (STAFF, PATIENT):
        base = f"{area.sign_in}/oidc"
        table += [
            Route(base, bind(start, area)),
            Route(f"{base}/callback", bind(callback, area)),
        ]
    table.append(Route(f"{STAFF.sign_in}/oidc/role", bind(choose_role, STAFF), methods=["POST"]))
    return table


def _redirect_uri(web: Web, provider: Provider, request: Request) -> str:
    base = web.public_url or str(request.base_url).rstrip("/")
    return f"{base}{provider.callback}"


def _unavailable(provider: Provider) -> Response:
    message = f"{provider.name} cannot be reached just now. Try again in a few minutes" + (
        ", or sign in with your username and password." if provider.area.staff else "."
    )
    return refused(provider.area, message, 503)


# ---- leaving for the provider ------------------------------------------------------------------


async def start(web: Web, provider: Provider, sealer: Sealer, request: Request) -> Response:
    redirect_uri = _redirect_uri(web, provider, request)
    try:
        url, flow = await run_in_threadpool(provider.relying_party.begin, redirect_uri)
    except OidcFailed as failed:
        log.warning("cannot start a sign-in with %s: %s", provider.name, failed.reason)
        return _unavailable(provider)
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    sealed = sealer.seal(f"flow {provider.area.name}", flow.state, flow.nonce, flow.verifier)
    response.set_cookie(
        FLOW_COOKIE,
        sealed,
        max_age=FLOW_SECONDS,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response


# ---- coming back --------------------------------------------------------------------------------


async def callback(web: Web, provider: Provider, sealer: Sealer, request: Request) -> Response:
    response = await _callback(web, provider, sealer, request)
    response.delete_cookie(FLOW_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


async def _callback(web: Web, provider: Provider, sealer: Sealer, request: Request) -> Response:
    area, params = provider.area, request.query_params
    flow = _flow(sealer, provider, request.cookies.get(FLOW_COOKIE, ""))
    if flow is None:
        return await _failed(web, provider, "no-flow", START_AGAIN)
    if not same_secret(params.get("state", ""), flow.state):
        # Not the sign-in this browser started (login CSRF), or started again since.
        return await _failed(web, provider, "state", START_AGAIN)
    if "error" in params:
        cancelled = params.get("error") == "access_denied"
        message = "You did not sign in." if cancelled else START_AGAIN
        return await _failed(web, provider, "provider-refused", message)
    code = params.get("code", "")
    if not code or len(code) > 2048:
        return await _failed(web, provider, "no-code", START_AGAIN)
    redirect_uri = _redirect_uri(web, provider, request)
    try:
        person = await run_in_threadpool(provider.relying_party.finish, flow, code, redirect_uri)
    except OidcFailed as failed:
        log.info("sign-in with %s failed: %s", provider.name, failed.reason)
        if failed.reason in ("provider-unreachable", "provider-insecure"):
            await run_in_threadpool(external_sign_in.audit_failure, web.store, failed.reason)
            return _unavailable(provider)
        return await _failed(web, provider, failed.reason, START_AGAIN)
    try:
        if area.staff:
            member = await run_in_threadpool(
                external_sign_in.staff_member, web.store, person, provider.org_code
            )
            if len(member.roles) > 1:
                return _role_page(web, provider, sealer, request, member.principal, member.roles)
            principal, role = member.principal, member.roles[0].code
        else:
            principal = await run_in_threadpool(external_sign_in.patient, web.store, person)
            role = None
    except Refused as refusal:
        return await _failed(web, provider, refusal.reason, str(refusal), 403)
    return await _signed_in(web, provider, principal, role)


def _flow(sealer: Sealer, provider: Provider, cookie: str) -> Flow | None:
    parts = sealer.open(f"flow {provider.area.name}", cookie, FLOW_SECONDS)
    if parts is None or len(parts) != 3:
        return None
    return Flow(*parts)


async def _failed(
    web: Web, provider: Provider, reason: str, message: str, status: int = 400
) -> Response:
    await run_in_threadpool(external_sign_in.audit_failure, web.store, reason)
    return refused(provider.area, message, status)


async def _signed_in(
    web: Web, provider: Provider, principal: Principal, role: str | None
) -> Response:
    issuer = provider.relying_party.provider.issuer
    token = await run_in_threadpool(
        external_sign_in.start_session, web.store, principal, issuer, role
    )
    response = see_other(provider.area.home)
    set_session_cookie(response, token)
    return response


# ---- choosing the role (NHS CIS2) ------------------------------------------------------------


def _role_page(
    web: Web,
    provider: Provider,
    sealer: Sealer,
    request: Request,
    principal: Principal,
    roles: tuple[Role, ...],
    *,
    role_token: str | None = None,
    error: str | None = None,
) -> Response:
    browser = browser_id(request)
    if role_token is None:
        codes = "+".join(role.code for role in roles)
        role_token = sealer.seal(f"role {browser}", principal.id, codes)
    context = provider.area.page(
        "Choose your role",
        form_token=web.signer.form_token(browser),
        role_token=role_token,
        action=provider.choose_role,
        roles=roles,
        display=principal.display,
        errors={"role": error} if error else None,
        back_href=provider.area.sign_in,
    )
    response = pages.render("choose_role.jinja", context, status=400 if error else 200)
    set_form_cookie(response, browser)
    return response


async def choose_role(web: Web, provider: Provider, sealer: Sealer, request: Request) -> Response:
    area = provider.area
    form = await checked_form(web, area, request)
    if isinstance(form, Response):
        return form
    browser = request.cookies.get(FORM_COOKIE, "")
    role_token = form.get("role_token", "")
    parts = sealer.open(f"role {browser}", role_token, ROLE_SECONDS) if browser else None
    if parts is None or len(parts) != 2:
        return await run_in_threadpool(sign_in_page, web, area, request, errors=ASK_AGAIN)
    user_id, codes = parts[0], parts[1].split("+")
    try:
        principal = await run_in_threadpool(_principal, web, user_id)
    except Refused as refusal:
        return await _failed(web, provider, refusal.reason, str(refusal), 403)
    chosen = form.get("role", "")
    if chosen not in codes or chosen not in principal.roles:
        roles = tuple(Role(c, NATIONAL_ROLES.get(c, c), None, None) for c in codes)
        return _role_page(
            web,
            provider,
            sealer,
            request,
            principal,
            roles,
            role_token=role_token,
            error="Choose the role you are working in",
        )
    return await _signed_in(web, provider, principal, chosen)


def _principal(web: Web, user_id: str) -> Principal:
    with web.store.reading() as tx:
        try:
            return accounts.principal_for(tx.conn, user_id)
        except (accounts.SignInFailed, accounts.UnknownAccount):
            raise Refused("disabled", "Your account is disabled: contact the practice.") from None
