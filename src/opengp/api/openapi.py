"""GET /openapi.json: the OpenAPI 3.1 description of every HTTP endpoint that is not FHIR.

The FHIR API describes itself (its CapabilityStatement at /fhir/metadata); this covers the
rest: the OAuth2 authorization server and its discovery documents, the operational
endpoints, and the screens. It is built from one table, `OPERATIONS`, one row per path and
method, written from what the handlers do (their parameters, limits, status codes, media
types and headers), and from the constants they use, so the two cannot drift apart quietly.
tests/functional/test_openapi.py checks that every route of the app has a row, and runs
schemathesis over the table against the app.

https://spec.openapis.org/oas/v3.1.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

import opengp
from opengp.api import authorize
from opengp.api.oauth import MAX_FORM_BYTES, MAX_FORM_FIELDS
from opengp.api.protection import HEADERS, LIMITED
from opengp.api.web import forms, oidc, practice_admin_sessions, setup, signin
from opengp.api.web.areas import PATIENT, STAFF, Area
from opengp.api.web.session import FORM_COOKIE, SESSION_COOKIE

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
FORM = "application/x-www-form-urlencoded"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class Header:
    key: str  # its name under components/headers
    name: str  # the HTTP header
    schema: Schema
    description: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # path, query, header or cookie (OpenAPI `in`)
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    description: str
    media: str | None = None  # None: no body
    schema: Schema | None = None
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    tag: str
    summary: str
    replies: Mapping[int, Reply]
    params: tuple[Param, ...] = ()
    form: Schema | None = None  # an application/x-www-form-urlencoded body
    security: tuple[str, ...] | None = None  # alternatives; "" is "none of these"


# ---- headers ------------------------------------------------------------------------------

# api/protection.py sets these on every response.
PROTECTION = tuple(
    Header(name, name, {"type": "string", "pattern": "frame-ancestors 'none'"}, "No framing")
    if name == "Content-Security-Policy"
    else Header(name, name, {"const": value}, "Set on every response (api/protection.py)")
    for name, value in HEADERS.items()
)
NO_STORE = Header("NoStore", "Cache-Control", {"const": "no-store"}, "Never cached")
LOCATION = Header("Location", "Location", STRING, "Where the browser goes next")
RETRY_AFTER = Header(
    "RetryAfter", "Retry-After", {"type": "integer", "minimum": 1}, "Seconds to wait"
)
CHALLENGE = Header(
    "WWWAuthenticate",
    "WWW-Authenticate",
    STRING,
    "The authentication scheme to use (RFC 6749 §5.2), when the client sent Basic credentials",
    required=False,
)
SET_COOKIE = Header(
    "SetCookie", "Set-Cookie", STRING, "The form or session cookie (HttpOnly, Secure)", False
)
JWKS_CACHE = Header(
    "JwksCache", "Cache-Control", {"const": "public, max-age=300"}, "Keys may be cached briefly"
)

# ---- bodies -------------------------------------------------------------------------------

OAUTH_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": STRING, "error_description": STRING, "error_uri": STRING},
}
SCHEMAS: dict[str, Schema] = {
    "OAuthError": OAUTH_ERROR,
    "Token": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": STRING,
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer"},
            "scope": STRING,
            "refresh_token": STRING,
            "id_token": STRING,
            "patient": STRING,
        },
    },
    "Introspection": {
        "type": "object",
        "required": ["active"],
        "properties": {"active": {"type": "boolean"}, "scope": STRING, "client_id": STRING},
    },
    "Jwks": {
        "type": "object",
        "required": ["keys"],
        "properties": {
            "keys": {"type": "array", "items": {"type": "object", "required": ["kty", "kid"]}}
        },
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"],
        "properties": {"issuer": STRING, "token_endpoint": STRING, "jwks_uri": STRING},
    },
    "SmartConfiguration": {
        "type": "object",
        "required": ["authorization_endpoint", "token_endpoint", "capabilities"],
        "properties": {"capabilities": {"type": "array", "items": STRING}},
    },
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: Schema, *headers: Header) -> Reply:
    return Reply(description, "application/json", schema, headers)


def _html(description: str, *headers: Header) -> Reply:
    """A page: never cached (api/web/pages.py, api/authorize.py)."""
    return Reply(description, "text/html", None, (NO_STORE, *headers))


def _fields(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties}


# ---- OAuth2 -------------------------------------------------------------------------------

# /oauth2 answers are never cached (protection.NO_STORE_PREFIXES), except the rate limit's.
OAUTH_FAILED = _json("The request is not valid (RFC 6749 §5.2)", _ref("OAuthError"), NO_STORE)
CLIENT_FAILED = _json(
    "The client did not authenticate (RFC 6749 §5.2)", _ref("OAuthError"), NO_STORE, CHALLENGE
)
TOO_LARGE = _json(f"The body is over {MAX_FORM_BYTES} bytes", _ref("OAuthError"), NO_STORE)
UNAVAILABLE = _json("No signing key is configured", _ref("OAuthError"), NO_STORE)
TOO_MANY = _json("Too many requests from this address", _ref("OAuthError"), RETRY_AFTER)
# Clients authenticate with HTTP Basic or, in the body, with a signed JWT (private_key_jwt).
ASSERTION = {
    "client_assertion_type": {"const": JWT_BEARER},
    "client_assertion": {"type": "string", "pattern": r"^[\w-]+\.[\w-]+\.[\w-]+$"},
}
CLIENT_AUTH = ("clientSecretBasic", "")
TOKEN_HINT = {"enum": ["access_token", "refresh_token"]}
OAUTH_REPLIES = {400: OAUTH_FAILED, 401: CLIENT_FAILED, 413: TOO_LARGE, 503: UNAVAILABLE}


def _limited(path: str, replies: Mapping[int, Reply]) -> dict[int, Reply]:
    """With the 429 of the paths protection.LIMITED rate-limits (POST only)."""
    return {**replies, 429: TOO_MANY} if path in LIMITED else dict(replies)


def _oauth_post(path: str, summary: str, ok: Reply, form: Schema) -> Operation:
    replies = _limited(path, {200: ok, **OAUTH_REPLIES})
    return Operation("POST", path, "OAuth2", summary, replies, (), form, CLIENT_AUTH)


AUTHORIZE_QUERY: dict[str, tuple[Schema, bool]] = {
    "response_type": ({"const": "code"}, True),
    "client_id": (STRING, True),
    "redirect_uri": ({"type": "string", "format": "uri"}, True),
    "scope": ({"type": "string", "examples": ["openid fhirUser patient/*.rs"]}, True),
    "state": (STRING, False),
    "aud": (
        {
            "type": "string",
            "format": "uri",
            "description": "The FHIR base URL; not needed when only openid, fhirUser, profile"
            " and nationalrbacaccess are asked for",
        },
        False,
    ),
    "code_challenge": ({"type": "string", "pattern": "^[A-Za-z0-9._~-]{43,128}$"}, True),
    "code_challenge_method": ({"const": "S256"}, True),
    "nonce": (STRING, False),
}
AUTHORIZE_FORM = _fields(
    ("form_token", *(name for name, (_, required) in AUTHORIZE_QUERY.items() if required)),
    **{name: schema for name, (schema, _) in AUTHORIZE_QUERY.items()},
    **dict.fromkeys(sorted(authorize.FORM_FIELDS), STRING),
)
PAGE_REFUSED = _html("An error page: an unknown app or redirect URI, or a repeated parameter")
BACK_TO_APP = Reply(
    "Back to the app: a code, or an error (RFC 6749 §4.1.2)", None, None, (LOCATION, NO_STORE)
)

OAUTH: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/oauth2/authorize",
        "OAuth2",
        "The sign-in page of SMART App Launch (standalone)",
        {
            200: _html("The sign-in page", SET_COOKIE),
            303: BACK_TO_APP,
            400: PAGE_REFUSED,
        },
        tuple(
            Param(name, "query", schema, "RFC 6749 §4.1.1, SMART App Launch", required)
            for name, (schema, required) in AUTHORIZE_QUERY.items()
        ),
    ),
    Operation(
        "POST",
        "/oauth2/authorize",
        "OAuth2",
        "Sign in (and replace a one-time password), then back to the app with a code",
        _limited(
            "/oauth2/authorize",
            {
                200: _html("Choose a new password (after a one-time password)"),
                303: BACK_TO_APP,
                400: _html("The sign-in did not succeed, or the form is not valid"),
            },
        ),
        (Param(authorize.COOKIE, "cookie", STRING, "Binds the form to this browser"),),
        AUTHORIZE_FORM,
    ),
    _oauth_post(
        "/oauth2/token",
        "An access token: client credentials, authorization code or refresh (RFC 6749)",
        _json("The token", _ref("Token"), NO_STORE),
        _fields(
            ("grant_type",),
            grant_type={"enum": ["client_credentials", "authorization_code", "refresh_token"]},
            scope=STRING,
            code=STRING,
            redirect_uri={"type": "string", "format": "uri"},
            code_verifier={"type": "string", "pattern": "^[A-Za-z0-9._~-]{43,128}$"},
            refresh_token=STRING,
            client_id={"type": "string", "description": "Public apps (no authentication)"},
            **ASSERTION,
        ),
    ),
    _oauth_post(
        "/oauth2/introspect",
        "Whether an access token is active, and its claims (RFC 7662)",
        _json("Active (the caller's own token), or not", _ref("Introspection"), NO_STORE),
        _fields(("token",), token=STRING, token_type_hint=TOKEN_HINT, **ASSERTION),
    ),
    _oauth_post(
        "/oauth2/revoke",
        "Revoke an access token (RFC 7009)",
        _json("Revoked, or nothing to revoke", {"type": "object"}, NO_STORE),
        _fields(("token",), token=STRING, token_type_hint=TOKEN_HINT, **ASSERTION),
    ),
    Operation(
        "GET",
        "/oauth2/jwks",
        "OAuth2",
        "The public keys access tokens are signed with",
        {200: _json("A JSON Web Key Set (RFC 7517)", _ref("Jwks"), JWKS_CACHE)},
    ),
    Operation(
        "GET",
        "/fhir/.well-known/smart-configuration",
        "Discovery",
        "SMART App Launch 2.0 configuration",
        {200: _json("The configuration", _ref("SmartConfiguration"))},
    ),
    *(
        Operation(
            "GET",
            path,
            "Discovery",
            summary,
            {200: _json("The metadata", _ref("ServerMetadata"))},
        )
        for path, summary in (
            ("/.well-known/openid-configuration", "OpenID Connect discovery"),
            ("/.well-known/oauth-authorization-server", "Server metadata (RFC 8414)"),
        )
    ),
)

# ---- operations ---------------------------------------------------------------------------

OPERATIONS_TAG = "Operations"
OPERATIONAL: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/healthz",
        OPERATIONS_TAG,
        "The process is alive",
        {200: _json("Alive", _fields(("status",), status={"const": "ok"}))},
    ),
    Operation(
        "GET",
        "/readyz",
        OPERATIONS_TAG,
        "The database is reachable and migrated",
        {
            200: _json("Ready", _fields(("status",), status={"const": "ready"}, detail=STRING)),
            503: _json(
                "Not ready", _fields(("status",), status={"const": "not ready"}, detail=STRING)
            ),
        },
    ),
    Operation(
        "GET",
        "/metrics",
        OPERATIONS_TAG,
        "Counts and timings of requests, for Prometheus",
        {200: Reply("The Prometheus text format", "text/plain")},
    ),
    Operation(
        "GET",
        "/openapi.json",
        OPERATIONS_TAG,
        "This description",
        {200: _json("OpenAPI 3.1", {"type": "object", "required": ["openapi", "paths"]})},
    ),
)

# ---- the screens --------------------------------------------------------------------------

SEE_OTHER = Reply("On to another page", headers=(LOCATION, NO_STORE))
SESSION = ("screenSession", "")  # signed in, or not
VALUE: Schema = {"type": "string", "maxLength": forms.MAX_FIELD_LENGTH}
BROWSER = (
    Param(FORM_COOKIE, "cookie", STRING, "Binds the form tokens to this browser"),
    Param("Origin", "header", STRING, "Must be our own origin, when sent"),
    Param(
        "Sec-Fetch-Site",
        "header",
        {"enum": ["same-origin", "same-site", "cross-site", "none"]},
        "Must be same-origin, when sent",
    ),
)
USERNAME = {"type": "string", "maxLength": signin.MAX_USERNAME}
CODE = {"type": "string", "pattern": "^[0-9 ]*$", "description": "The 6-digit TOTP code"}


def _form_post(area: Area, path: str, summary: str, form: Schema, *pages: int) -> Operation:
    """A form of the screens (api/web/forms.py: read_form, from_our_pages)."""
    replies = {
        303: SEE_OTHER,
        400: _html("The form is not valid: the page again, with the problems"),
        403: _html("Not sent from our own page (the CSRF defences of api/web/forms.py)"),
    }
    if 200 in pages:
        replies[200] = _html("Choose a new password (after a one-time password)")
    security = SESSION if path == area.sign_out else None
    tag = f"Screens: {area.name}"
    return Operation("POST", path, tag, summary, _limited(path, replies), BROWSER, form, security)


def _area(area: Area) -> tuple[Operation, ...]:
    """The pages of one area (api/web/__init__.py: routes)."""
    tag = f"Screens: {area.name}"
    return (
        Operation(
            "GET",
            area.home,
            tag,
            "The area's home page",
            {200: _html("The page"), 303: SEE_OTHER, 403: _html("Signed in to the other area")},
            security=SESSION,
        ),
        Operation(
            "GET",
            area.sign_in,
            tag,
            "The sign-in page",
            {200: _html("The page", SET_COOKIE), 303: SEE_OTHER},
            (Param("timed-out", "query", STRING, "Say the session timed out"),),
            security=SESSION,
        ),
        _form_post(
            area,
            area.sign_in,
            "Sign in: username, password and (staff) the code from an authenticator app",
            _fields(
                ("form_token", "username", "password"),
                form_token=VALUE,
                username=USERNAME,
                password=VALUE,
                code=CODE,
            ),
            200,
        ),
        Operation("GET", area.new_password, tag, "Back to sign in", {303: SEE_OTHER}),
        _form_post(
            area,
            area.new_password,
            "Replace a one-time password, and start the session",
            _fields(
                ("form_token", "change_token", "new_password", "confirm_password"),
                form_token=VALUE,
                change_token=VALUE,
                new_password=VALUE,
                confirm_password=VALUE,
            ),
        ),
        _form_post(area, area.sign_out, "Sign out", _fields(("csrf_token",), csrf_token=VALUE)),
        Operation("GET", area.signed_out, tag, "You have signed out", {200: _html("The page")}),
    )


def _patient_appointments() -> tuple[Operation, ...]:
    """The patient's appointments: list, book and cancel (api/web/patient_booking.py)."""
    tag = "Screens: patient appointments"
    base = "/patient/appointments"
    page = {
        200: _html("The page"),
        303: SEE_OTHER,
        400: _html("The question again, with the problem"),
        403: _html("Not allowed"),
        404: _html("No such appointment"),
        409: _html("No longer possible"),
        422: _html("Refused by the appointment rules"),
    }
    one = (Param("id", "path", STRING, "The Appointment's id", True),)
    e = Param("e", "query", STRING, "Show the question's error")
    posted = {
        303: SEE_OTHER,
        400: _html("The form is not valid"),
        403: _html("Not sent from our own page, or not allowed"),
        404: _html("No such appointment"),
        409: _html("No longer free"),
        422: _html("Refused by the appointment rules"),
    }
    token = {"csrf_token": VALUE}
    return (
        Operation("GET", base, tag, "Your appointments", page, security=SESSION),
        Operation("GET", f"{base}/book", tag, "Book: the type", page, (e,), security=SESSION),
        Operation(
            "POST", f"{base}/book", tag, "Book the chosen slot", posted, BROWSER,
            _fields(("csrf_token", "slot"), slot=VALUE, **token), SESSION,
        ),
        Operation(
            "GET", f"{base}/book/time", tag, "Book: the time", page,
            (Param("type", "query", STRING, "The type of appointment"), e), security=SESSION,
        ),
        Operation(
            "GET", f"{base}/book/check", tag, "Book: check your answers", page,
            (Param("slot", "query", STRING, "The slot"),
             Param("type", "query", STRING, "The type of appointment")),
            security=SESSION,
        ),
        Operation("GET", f"{base}/{{id}}/booked", tag, "Booked", page, one, security=SESSION),
        Operation(
            "GET", f"{base}/{{id}}/cancel", tag, "Cancel: are you sure", page, (*one, e),
            security=SESSION,
        ),
        Operation(
            "POST", f"{base}/{{id}}/cancel", tag, "Cancel the appointment", posted,
            (*one, *BROWSER),
            _fields(("csrf_token", "reason"), reason=VALUE, reason_text=VALUE, **token),
            SESSION,
        ),
        Operation("GET", f"{base}/{{id}}/cancelled", tag, "Cancelled", page, one, security=SESSION),
    )  # fmt: skip


def _practice_admin() -> tuple[Operation, ...]:
    """The practice admin screens: appointment books, sessions, slots, online booking
    (api/web/practice_admin.py), and the weekly appointments report (report_screens.py)."""
    tag = "Screens: practice admin"
    page = {
        200: _html("The page"),
        303: SEE_OTHER,
        400: _html("The page again, with the problems"),
        403: _html("Not allowed (the access role), or no practice"),
        404: _html("No such appointment book"),
        409: _html("Changed meanwhile: choose again"),
        422: _html("Refused by the appointment rules"),
    }
    posted = {**page, 403: _html("Not sent from our own page, or not allowed")}
    del posted[200]
    with_page = {**posted, 400: _html("The form again, with the problems")}
    one = (Param("id", "path", STRING, "The Schedule's id", True),)
    token = {"csrf_token": VALUE}
    day = (
        Param("clinician", "query", STRING, "The PractitionerRole's id"),
        Param("d", "query", STRING, "Day of the month"),
        Param("m", "query", STRING, "Month"),
        Param("y", "query", STRING, "Year"),
    )
    chosen = (
        *day,
        Param("action", "query", {"enum": ["block", "release"]}, "Block or release"),
        Param("reason", "query", STRING, "Why they are blocked"),
        Param("slot", "query", {"type": "array", "items": STRING}, "The chosen slots' ids"),
    )
    session = _fields(
        ("csrf_token",),
        **dict.fromkeys(practice_admin_sessions.FORM_FIELDS, VALUE),
        **token,
    )
    week = Param("week", "query", {"type": "string", "format": "date"}, "A day of the week")
    csv = Reply(
        "The week's GPAD rows",
        "text/csv",
        {"type": "string"},
        (NO_STORE, Header("Attachment", "Content-Disposition", STRING, "With its filename")),
    )
    not_a_week = Reply("Not a week that has begun", "text/plain", None, (NO_STORE,))
    books, slots = "/staff/practice/books", "/staff/practice/slots"
    online, report = "/staff/practice/online-booking", "/staff/practice/report"
    return (
        Operation("GET", books, tag, "The appointment books", page, security=SESSION),
        Operation("GET", f"{books}/new", tag, "A new book: choose", page, security=SESSION),
        Operation(
            "POST", f"{books}/new", tag, "Create the book", with_page, BROWSER,
            _fields(("csrf_token",), clinician=VALUE, site=VALUE, **token), SESSION,
        ),
        Operation("GET", f"{books}/{{id}}", tag, "One book", page,
                  (*one, Param("changed", "query", STRING, "What just changed"),
                   Param("made", "query", STRING, "Slots just made"),
                   Param("skipped", "query", STRING, "Slots already there"),
                   Param("weeks", "query", STRING, "Weeks ahead")), security=SESSION),
        Operation(
            "POST", f"{books}/{{id}}/generate", tag, "Make slots weeks ahead", with_page,
            (*one, *BROWSER), _fields(("csrf_token",), weeks=VALUE, **token), SESSION,
        ),
        Operation("GET", f"{books}/{{id}}/sessions/new", tag, "Add a session: the form", page,
                  one, security=SESSION),
        Operation(
            "POST", f"{books}/{{id}}/sessions/new", tag, "Add the session", with_page,
            (*one, *BROWSER), session, SESSION,
        ),
        Operation(
            "POST", f"{books}/{{id}}/sessions/{{key}}/remove", tag, "Remove a session", posted,
            (*one, Param("key", "path", STRING, "The session's key", True), *BROWSER),
            _fields(("csrf_token",), **token), SESSION,
        ),
        Operation("GET", slots, tag, "A clinician's day: choose slots", page,
                  (*day, Param("done", "query", STRING, "What was just done"),
                   Param("n", "query", STRING, "How many")), security=SESSION),
        Operation("GET", f"{slots}/confirm", tag, "Block or release: are you sure", page,
                  chosen, security=SESSION),
        Operation(
            "POST", f"{slots}/confirm", tag, "Block or release the slots", with_page,
            (*chosen, *BROWSER), _fields(("csrf_token",), **token), SESSION,
        ),
        Operation("GET", online, tag, "Online booking settings", page,
                  (Param("saved", "query", STRING, "Just saved"),), security=SESSION),
        Operation(
            "POST", online, tag, "Save the online booking settings", with_page, BROWSER,
            _fields(("csrf_token",), online_horizon_days=VALUE, cancellation_cutoff_hours=VALUE,
                    **token),
            SESSION,
        ),
        Operation("GET", report, tag, "The weekly appointments report", page, (week,),
                  security=SESSION),
        Operation(
            "GET", f"{report}.csv", tag, "The weekly report as CSV (GPAD)",
            {**page, 200: csv, 400: not_a_week},
            (week,), security=SESSION,
        ),
    )  # fmt: skip


def _staff_appointments() -> tuple[Operation, ...]:
    """Reception's and clinicians' appointment screens (api/web/reception.py)."""
    tag = "Screens: staff appointments"
    patients, one = "/staff/patients", "/staff/patients/{patient}"
    appointment = f"{one}/appointments/{{appointment}}"
    page = {
        200: _html("The page"),
        303: SEE_OTHER,
        400: _html("The question again, with the problem"),
        403: _html("Not allowed for this role"),
        404: _html("No such patient or appointment"),
        409: _html("That time is no longer free: the choice again"),
        422: _html("Refused by the appointment rules"),
    }
    posted = page | {403: _html("Not sent from our own page, or not allowed")}
    del posted[200]
    who = (Param("patient", "path", STRING, "The Patient's id", True),)
    which = (*who, Param("appointment", "path", STRING, "The Appointment's id", True))
    find = tuple(
        Param(name, "query", STRING, what)
        for name, what in (
            ("name", "Names starting with"),
            ("nhs_number", "An NHS number (checked)"),
            ("postcode", "A postcode"),
            ("dob-day", "Date of birth: day"),
            ("dob-month", "Date of birth: month"),
            ("dob-year", "Date of birth: year"),
        )
    )
    chosen = tuple(
        Param(name, "query", STRING, what)
        for name, what in (
            ("day", "YYYY-MM-DD (today)"),
            ("clinician", "A PractitionerRole id"),
            ("type", "A slot type"),
            ("slot", "The chosen slot"),
        )
    )
    back = {"clinician": VALUE, "day": VALUE, "csrf_token": VALUE}
    slot = _fields(("csrf_token", "slot"), slot=VALUE, type=VALUE, **back)
    status = _fields(("csrf_token", "change"), change=VALUE, list=VALUE, **back)
    cancel = _fields(("csrf_token", "reason"), reason=VALUE, reason_text=VALUE, **back)
    return (
        Operation("GET", patients, tag, "Find a patient", page, find, security=SESSION),
        Operation("GET", one, tag, "The patient: alerts and appointments", page, who,
                  security=SESSION),
        Operation("GET", f"{one}/book", tag, "Book: choose a free slot", page, (*who, *chosen),
                  security=SESSION),
        Operation("POST", f"{one}/book", tag, "Book the slot", posted, (*who, *BROWSER), slot,
                  SESSION),
        Operation("GET", f"{one}/book/check", tag, "Book: check the patient and time", page,
                  (*who, *chosen), security=SESSION),
        Operation("GET", f"{appointment}/booked", tag, "Booked (or moved)", page,
                  (*which, Param("moved", "query", STRING, "It was moved")), security=SESSION),
        Operation("GET", f"{appointment}/rebook", tag, "Rebook: choose a new slot", page,
                  (*which, *chosen), security=SESSION),
        Operation("POST", f"{appointment}/rebook", tag, "Move to the slot, with a reason",
                  posted, (*which, *BROWSER), slot, SESSION),
        Operation("GET", f"{appointment}/rebook/check", tag, "Rebook: check, and why", page,
                  (*which, *chosen), security=SESSION),
        Operation("GET", f"{appointment}/cancel", tag, "Cancel: are you sure, and why", page,
                  (*which, *chosen), security=SESSION),
        Operation("POST", f"{appointment}/cancel", tag, "Cancel the appointment", posted,
                  (*which, *BROWSER), cancel, SESSION),
        Operation("GET", "/staff/day-list", tag, "A clinician's day list", page, chosen,
                  security=SESSION),
        Operation("GET", "/staff/your-appointments", tag, "Your appointments today", page,
                  chosen, security=SESSION),
        Operation("POST", "/staff/appointments/{appointment}/status", tag,
                  "Arrived, did not attend, call in, start or end", posted,
                  (which[1], *BROWSER), status, SESSION),
    )  # fmt: skip


def _accounts() -> tuple[Operation, ...]:
    """The account screens for Systems Support (api/web/accounts.py, accounts_online.py)."""
    tag = "Screens: accounts"
    page = {
        200: _html("The page"),
        303: SEE_OTHER,
        400: _html("The page again, with the problems"),
        403: _html("Not allowed: only Systems Support (R8015)"),
        404: _html("No such account or patient"),
    }
    posted = {**page, 403: _html("Not sent from our own page, or not allowed")}
    secret = {**posted, 200: _html("The new secret, shown once (not cached)")}
    del posted[200]
    one = (Param("id", "path", STRING, "The account's id", True),)
    patient = (Param("id", "path", STRING, "The Patient's id", True),)
    token = {"csrf_token": VALUE}
    to = Param("to", "query", {"enum": ["disable", "enable"]}, "Disable or enable", True)
    base, online = "/staff/accounts", "/staff/accounts/online-access"
    new = _fields(("csrf_token",), name=VALUE, username=VALUE, practitioner=VALUE, **token)
    level = _fields(
        ("csrf_token",),
        level={"enum": ["none", "summary", "detailed"]},
        history={"enum": ["full", "from"]},
        **{"since-day": VALUE, "since-month": VALUE, "since-year": VALUE},
        **token,
    )
    return (
        Operation("GET", base, tag, "The staff accounts", page, security=SESSION),
        Operation("GET", f"{base}/new", tag, "Add a staff account", page, security=SESSION),
        Operation("POST", f"{base}/new", tag, "Create it: its one-time password, shown once",
                  secret, BROWSER, new, SESSION),
        Operation("GET", f"{base}/{{id}}", tag, "One staff account", page, one, security=SESSION),
        Operation("POST", f"{base}/{{id}}/password", tag, "A new one-time password, shown once",
                  secret, (*one, *BROWSER), _fields(("csrf_token",), **token), SESSION),
        Operation("POST", f"{base}/{{id}}/second-factor", tag,
                  "A new authenticator app key, shown once", secret, (*one, *BROWSER),
                  _fields(("csrf_token",), **token), SESSION),
        Operation("GET", f"{base}/{{id}}/status", tag, "Disable or enable: are you sure", page,
                  (*one, to), security=SESSION),
        Operation("POST", f"{base}/{{id}}/status", tag, "Disable or enable the account", posted,
                  (*one, *BROWSER), _fields(("csrf_token", "to"), to=VALUE, **token), SESSION),
        Operation("GET", online, tag, "Find a patient by NHS number", page,
                  (Param("nhs_number", "query", STRING, "The patient's NHS number"),),
                  security=SESSION),
        Operation("GET", f"{online}/{{id}}", tag, "A patient's online record access", page,
                  patient, security=SESSION),
        Operation("POST", f"{online}/{{id}}", tag, "Set the patient's online record access",
                  posted, (*patient, *BROWSER), level, SESSION),
    )  # fmt: skip


SCREENS: tuple[Operation, ...] = (
    Operation("GET", "/", "Screens", "The start page", {200: _html("The page")}),
    *_area(STAFF),
    *_area(PATIENT),
    *_patient_appointments(),
    *_staff_appointments(),
    *_practice_admin(),
    *_accounts(),
    Operation(
        "GET",
        "/assets/{path}",
        "Screens",
        "The pages' styles, scripts and images (static files)",
        {
            200: Reply("The file", "*/*"),
            404: Reply("No such file", "text/plain"),
        },
        (Param("path", "path", {"type": "string", "examples": ["opengp.js"]}, "A file", True),),
    ),
)

# ---- OpenID Connect: our userinfo endpoint, and signing in to the screens with a provider -----

BEARER_CHALLENGE = Header(
    "BearerChallenge", "WWW-Authenticate", STRING, "RFC 6750 §3: what was wrong with the token"
)
USERINFO = tuple(
    Operation(
        method,
        "/oauth2/userinfo",
        "OAuth2",
        "The claims about the user of an access token with openid (OpenID Connect Core §5.3)",
        {
            200: _json(
                "The claims, by scope (services/userinfo.py)",
                _fields(("sub",), sub=STRING),
                NO_STORE,
            ),
            401: _json("No good access token", _ref("OAuthError"), NO_STORE, BEARER_CHALLENGE),
            403: _json(
                "The token has no openid, or no user",
                _ref("OAuthError"),
                NO_STORE,
                BEARER_CHALLENGE,
            ),
        },
        security=("bearerToken", ""),
    )
    for method in ("GET", "POST")
)
NOT_CONFIGURED = Reply("No OpenID provider is configured for this area", "text/plain")
TO_PROVIDER = Reply("Off to the OpenID provider", headers=(LOCATION, NO_STORE))
FLOW = Param(oidc.FLOW_COOKIE, "cookie", STRING, "The sign-in under way (sealed: state, nonce...)")


def _oidc(area: Area) -> tuple[Operation, ...]:
    """Signing in with the area's OpenID provider (api/web/oidc.py)."""
    tag = f"Screens: {area.name}"
    unreachable = _html("The provider cannot be reached")
    back = {
        303: SEE_OTHER,
        400: _html("The sign-in failed (state, code, ID token...): start again"),
        403: _html("Nobody here: no linked or matching account, or no role"),
        404: NOT_CONFIGURED,
        503: unreachable,
    }
    if area.staff:
        back[200] = _html("Choose a role (NHS CIS2 says they hold several)", SET_COOKIE)
    query = {
        "code": "The authorization code (RFC 6749 §4.1.2)",
        "state": "As sent: checked against the flow cookie",
        "error": "The provider's refusal (RFC 6749 §4.1.2.1)",
        "error_description": "Its explanation",
    }
    operations = [
        Operation(
            "GET",
            f"{area.sign_in}/oidc",
            tag,
            "Sign in with the area's OpenID provider: off to it",
            {303: TO_PROVIDER, 404: NOT_CONFIGURED, 503: unreachable},
        ),
        Operation(
            "GET",
            f"{area.sign_in}/oidc/callback",
            tag,
            "Back from the OpenID provider: the code is exchanged and the person found",
            back,
            (*(Param(n, "query", STRING, d) for n, d in query.items()), FLOW),
        ),
    ]
    if area.staff:
        role = _form_post(
            area,
            f"{area.sign_in}/oidc/role",
            "The role chosen for this session, then the session",
            _fields(
                ("form_token", "role_token", "role"),
                form_token=VALUE,
                role_token=VALUE,
                role={"type": "string", "examples": ["R8000"]},
            ),
        )
        operations.append(
            Operation(
                role.method,
                role.path,
                role.tag,
                role.summary,
                {**role.replies, 404: NOT_CONFIGURED},
                role.params,
                role.form,
            )
        )
    return tuple(operations)


# ---- the first run ----------------------------------------------------------------------------

GONE = Reply("A staff account exists: there is nothing to set up", "text/plain")
FIRST_RUN: tuple[Operation, ...] = (
    Operation(
        "GET",
        setup.PATH,
        "Screens: first run",
        "Create the first administrator, with the one-time link printed on the console",
        {
            200: _html("The form", SET_COOKIE),
            403: _html("The link does not work (used, expired, unknown)"),
            404: GONE,
        },
        (Param("token", "query", STRING, "The one-time setup token", True),),
    ),
    Operation(
        "POST",
        setup.PATH,
        "Screens: first run",
        "Create the first administrator (R8015) with an authenticator app, and sign in",
        {
            303: SEE_OTHER,
            400: _html("The form is not valid: the page again, with the problems", SET_COOKIE),
            403: _html("Not sent from our own page, or the link does not work"),
            404: GONE,
        },
        BROWSER,
        _fields(
            ("form_token", "setup_token", "totp_secret", "username", "name", "password"),
            form_token=VALUE,
            setup_token=VALUE,
            totp_secret=VALUE,
            username=USERNAME,
            name=VALUE,
            password=VALUE,
            confirm_password=VALUE,
            code=CODE,
        ),
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    *OAUTH,
    *USERINFO,
    *OPERATIONAL,
    *SCREENS,
    *_oidc(STAFF),
    *_oidc(PATIENT),
    *FIRST_RUN,
)

SECURITY_SCHEMES = {
    "clientSecretBasic": {
        "type": "http",
        "scheme": "basic",
        "description": (
            "client_secret_basic: the client id and secret (RFC 6749 §2.3.1). Without it, a "
            f"client authenticates in the body instead: client_assertion_type={JWT_BEARER} "
            "and client_assertion, a JWT signed (RS384 or ES384) with a key it registered "
            "(private_key_jwt, RFC 7523 §2.2, SMART Backend Services); or a public app "
            "sends client_id only, at the token endpoint, with PKCE."
        ),
    },
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token (a signed JWT) from /oauth2/token",
    },
    "screenSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "A screen session, started by signing in (api/web/session.py)",
    },
}


# ---- the document -------------------------------------------------------------------------


def _response(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    headers = (*PROTECTION, *reply.headers)
    out["headers"] = {h.name: {"$ref": f"#/components/headers/{h.key}"} for h in headers}
    if reply.media is not None:
        out["content"] = {reply.media: {"schema": reply.schema} if reply.schema else {}}
    return out


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": re.sub("[^A-Za-z0-9]+", "_", f"{op.method.lower()}{op.path}").strip("_"),
        "responses": {str(code): _response(r) for code, r in sorted(op.replies.items())},
    }
    if op.params:
        out["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required}
            | {"description": p.description, "schema": p.schema}
            for p in op.params
        ]
    if op.form is not None:
        out["requestBody"] = {"required": True, "content": {FORM: {"schema": op.form}}}
    if op.security is not None:
        out["security"] = [{name: []} if name else {} for name in op.security]
    return out


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    headers = {
        h.key: {"description": h.description, "required": h.required, "schema": h.schema}
        for op in OPERATIONS
        for reply in op.replies.values()
        for h in (*PROTECTION, *reply.headers)
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OpenGP: OAuth2, discovery, operations and screens",
            "version": opengp.__version__,
            "description": (
                "Every HTTP endpoint of OpenGP except the FHIR API, which describes itself at "
                "/fhir/metadata. Limits: OAuth2 forms at most "
                f"{MAX_FORM_BYTES} bytes and {MAX_FORM_FIELDS} fields, each sent once; "
                "POSTs that check a secret are rate limited per client address (429)."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "headers": headers,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


DOCUMENT = orjson.dumps(document())


async def endpoint(request: Request) -> Response:
    return Response(DOCUMENT, media_type="application/json")
