"""The OpenAPI description of the endpoints that are not FHIR (GET /openapi.json), and
schemathesis over it against the real app: never a server error, and every response as
described (status code, media type, headers, body)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient, get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from opengp.api.openapi import AUTHORIZE_QUERY, OPERATIONS, document
from opengp.app import create_app
from opengp.config import Settings
from opengp.services.launch import AUTHORIZE_PARAMETERS
from opengp.services.oauth import add_client
from opengp.store.sql import SqlStore

from .conftest import BASE, register

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Deterministic, and modest: every operation gets the coverage phase (boundary, missing and
# unexpected values, other methods) and 15 generated examples.
CONFIG = {
    "base-url": BASE,
    "generation": {"max-examples": 15, "deterministic": True, "database": "none"},
}
APP_REDIRECT = "https://app.example/callback"
# These handlers hardly touch the database: running them on PostgreSQL too buys little.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _routes(app: Starlette) -> set[tuple[str, str]]:
    """(method, path) of every route that is not the FHIR API (HEAD comes with GET)."""
    out = set()
    for route in app.routes:
        if isinstance(route, Mount):
            out.add(("GET", f"{route.path}/{{path}}"))
        elif isinstance(route, Route) and route.methods:
            fhir = route.path.startswith("/fhir") and "/.well-known/" not in route.path
            out |= {(m, route.path) for m in route.methods if m != "HEAD" and not fhir}
    return out


def test_every_route_is_described(settings: Settings, store: SqlStore) -> None:
    app = create_app(settings, store)
    described = {(op.method, op.path) for op in OPERATIONS}
    assert described == _routes(app)
    with TestClient(app, base_url=BASE) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    paths = response.json()["paths"]
    assert {(m.upper(), p) for p, item in paths.items() for m in item} == described


def test_the_authorize_parameters_are_the_services() -> None:
    # launch (EHR launch) is refused, so it is not described
    assert set(AUTHORIZE_QUERY) == set(AUTHORIZE_PARAMETERS) - {"launch"}


def test_schemathesis_loads_it_from_the_app(settings: Settings, store: SqlStore) -> None:
    app = create_app(settings, store)
    try:
        loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
        loaded.validate()
    finally:
        shutdown_lifespans()
    assert loaded.raw_schema == document()


@SQLITE_ONLY
def test_an_unreadable_authorization_header_is_a_401(settings: Settings, store: SqlStore) -> None:
    """Found by schemathesis: Authlib failed (a 500) on a header of one word and spaces, and
    on Basic credentials that are not UTF-8 (api/oauth.py: _basic_readable)."""
    form = {"grant_type": "client_credentials", "token": "x"}
    with TestClient(create_app(settings, store), base_url=BASE) as client:
        for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
            for header in ("Basic /w==", "Basic ", "Basic\t /w=="):
                response = client.post(path, data=form, headers={"Authorization": header})
                assert response.status_code == 401, (path, header)
                assert response.json()["error"] == "invalid_client"
                assert response.headers["www-authenticate"].startswith("Basic ")


# ---- schemathesis over every operation ----------------------------------------------------


class FromAddress:
    """The app, seeing each request come from `address` (rate limits count per address)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.address = "testclient"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.address, 50000)}
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Server:
    http: ASGIClient  # schemathesis's in-process client: requests over ASGI
    app: FromAddress
    system: tuple[str, str]  # a registered system client's id and secret
    token: str  # an access token issued to it
    app_id: str  # a registered public app (redirect URI APP_REDIRECT)


@pytest.fixture
def server(settings: Settings, store: SqlStore) -> Iterator[Server]:
    app = FromAddress(create_app(settings, store))
    system = register(store, "system/*.rs")
    scopes = "openid fhirUser launch/patient patient/*.rs"
    app_id, _ = add_client(
        store, "An app", scopes, "direct-care", redirect_uris=[APP_REDIRECT], public=True
    )
    try:
        with get_client(app) as http:
            http.base_url = BASE
            form = {"grant_type": "client_credentials", "scope": "system/*.rs"}
            token = http.post("/oauth2/token", data=form, auth=system).json()["access_token"]
            yield Server(http, app, system, token, app_id)
    finally:
        shutdown_lifespans()


anonymous = schemathesis.openapi.from_dict(document(), config=schemathesis.Config.from_dict(CONFIG))


@anonymous.parametrize()
@SQLITE_ONLY
# One app and database per operation, its state carried from one example to the next, as a
# server's would be: not a fixture that should have been reset between examples.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_responses_are_as_described(case: Case[Any], server: Server) -> None:
    """Every operation, as a stranger would call it: all from one address, so the rate
    limits answer too (429)."""
    case.call_and_validate(base_url=BASE, session=server.http, checks=CHECKS)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode()


KNOWN, GOOD = "registered client", "registered client, good request"
LATIN1 = st.text(st.characters(max_codepoint=255, exclude_characters=":"), max_size=8)
# Who the client says it is (the Authorization header): a registered client, and then maybe
# with a good request too, Basic credentials of any Latin-1 text (as schemathesis makes them;
# it makes none here, where client authentication is optional), or a header hardly Basic.
CREDENTIALS = st.one_of(
    st.sampled_from([KNOWN, GOOD]),
    st.builds(_basic, LATIN1, LATIN1),
    st.sampled_from(["Basic ", "Basic\t /w==", "Bearer x"]),
)
addresses = (f"192.0.2.{n}" for n in itertools.cycle(range(1, 255)))


def _as_client(case: Case[Any], server: Server, credentials: str) -> None:
    """The case, sent by a client that says who it is: each from its own address, so that the
    handlers answer rather than the rate limits."""
    server.app.address = next(addresses)
    known = credentials in (KNOWN, GOOD)
    if case.path == "/oauth2/authorize":  # the app: registered, and maybe a good request
        app = {"client_id": server.app_id, "redirect_uri": APP_REDIRECT} if known else {}
        if credentials == GOOD:
            app |= {"aud": f"{BASE}/fhir", "scope": "openid patient/*.rs"}
        if case.method == "GET":
            case.query.update(app)
        elif isinstance(case.body, dict):
            case.body.update(app)
        return
    case.headers["Authorization"] = _basic(*server.system) if known else credentials
    if credentials == GOOD and case.path == "/oauth2/token":
        case.body = {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
    elif credentials == GOOD:
        case.body = {"token": server.token, "token_type_hint": "access_token"}


clients = schemathesis.openapi.from_dict(
    document(),
    # The schema-examples phase cannot run with `given`; the coverage phase does not either.
    config=schemathesis.Config.from_dict({**CONFIG, "phases": {"examples": {"enabled": False}}}),
).include(path_regex="^/oauth2/(authorize|token|introspect|revoke)$")


@clients.parametrize()
@SQLITE_ONLY
@clients.given(credentials=CREDENTIALS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # as above
def test_responses_to_clients_are_as_described(
    case: Case[Any], credentials: str, server: Server
) -> None:
    """The OAuth2 operations, as called by clients that say who they are."""
    _as_client(case, server, credentials)
    case.call_and_validate(base_url=BASE, session=server.http, checks=CHECKS)
