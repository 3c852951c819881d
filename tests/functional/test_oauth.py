"""The OAuth2 authorization server over HTTP (SMART Backend Services), on both databases.

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import base64
import json
import stat
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from opengp.access.keys import SigningKey, signing_key_from_pem
from opengp.access.tokens import (
    AccessClaims,
    AccessTokenGenerator,
    TokenAuthority,
    TokenRejected,
    verify_access_token,
)
from opengp.api.oauth import OAuthEndpoints
from opengp.app import create_app
from opengp.config import Settings
from opengp.fhir.errors import Unauthorized
from opengp.services.oauth import add_client
from opengp.store.sql import SqlStore

BASE = "https://gp.test"
TOKEN_URL = f"{BASE}/oauth2/token"
ISSUER, AUDIENCE = BASE, f"{BASE}/fhir"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def settings(database_url: str, key_file: Path) -> Settings:
    return Settings(database_url=database_url, signing_key_path=str(key_file))


@pytest.fixture
def http(settings: Settings, store: SqlStore) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store), base_url=BASE) as client:
        yield client


@pytest.fixture
def server_key(key_file: Path) -> SigningKey:
    return signing_key_from_pem(key_file.read_bytes())


class Secret:
    def __init__(self, store: SqlStore, scopes: str = "system/*.rs system/Patient.cruds") -> None:
        self.client_id, secret = add_client(store, "Feed", scopes, "direct-care")
        assert secret is not None
        self.secret = secret

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.secret)


class KeyPair:
    """A client that signs its assertions (private_key_jwt) with a key made here."""

    def __init__(self, store: SqlStore, alg: str = "RS384", purpose: str = "migration") -> None:
        self.alg = alg
        self.key: RSAKey | ECKey = (
            RSAKey.generate_key(2048) if alg == "RS384" else ECKey.generate_key("P-384")
        )
        self.kid = uuid.uuid4().hex
        public = {**self.key.as_dict(private=False), "kid": self.kid, "alg": alg}
        self.client_id, secret = add_client(
            store, "Tool", "system/*.cruds", purpose, {"keys": [public]}
        )
        assert secret is None

    def assertion(
        self,
        *,
        key: RSAKey | ECKey | None = None,
        alg: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        header = {"alg": alg or self.alg, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, body, key or self.key, algorithms=[alg or self.alg])

    def form(self, assertion: str, scope: str = "system/*.rs") -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }


def grant(scope: str = "system/Patient.rs") -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope}


def verified(token: str, store: SqlStore, key: SigningKey, **at: Any) -> AccessClaims:
    authority = TokenAuthority(at.pop("issuer", ISSUER), at.pop("audience", AUDIENCE), key)
    with store.reading() as tx:
        return verify_access_token(token, authority, tx.conn, **at)


def rejected(token: str, store: SqlStore, key: SigningKey, **at: Any) -> str:
    with pytest.raises(TokenRejected) as caught:
        verified(token, store, key, **at)
    return caught.value.reason


# ---- client credentials with a secret (client_secret_basic) ---------------------------------


def test_a_secret_gets_a_token_whose_claims_verify(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    client = Secret(store)
    response = http.post("/oauth2/token", data=grant("system/Patient.rs"), auth=client.auth)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        300,
        "system/Patient.rs",
    )
    header = jws.extract_compact(body["access_token"].encode()).headers()
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": server_key.kid}
    claims = verified(body["access_token"], store, server_key)
    assert (claims.issuer, claims.audience) == (ISSUER, AUDIENCE)
    assert claims.subject == claims.client_id == client.client_id
    assert claims.scopes == ("system/Patient.rs",)
    assert claims.purpose == "direct-care"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=5)
    assert len(claims.jti) >= 32
    principal = claims.principal()
    assert (principal.kind, principal.id, principal.client_id) == (
        "system",
        client.client_id,
        client.client_id,
    )
    assert principal.scopes == frozenset({"system/Patient.rs"})


def test_the_token_lifetime_is_configurable(
    database_url: str, key_file: Path, store: SqlStore
) -> None:
    settings = Settings(
        database_url=database_url, signing_key_path=str(key_file), token_lifetime_seconds=60
    )
    client = Secret(store)
    with TestClient(create_app(settings, store), base_url=BASE) as http:
        response = http.post("/oauth2/token", data=grant(), auth=client.auth)
    assert response.json()["expires_in"] == 60


def test_scopes_may_be_narrower_and_are_given_back_without_repeats(
    http: TestClient, store: SqlStore
) -> None:
    client = Secret(store)
    scope = "system/Observation.r system/Patient.read system/Observation.r"
    response = http.post("/oauth2/token", data=grant(scope), auth=client.auth)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Observation.r system/Patient.read"


def test_a_wrong_secret_is_401_invalid_client(http: TestClient, store: SqlStore) -> None:
    client = Secret(store)
    response = http.post("/oauth2/token", data=grant(), auth=(client.client_id, "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith('Basic error="invalid_client"')
    assert "access_token" not in response.text


@pytest.mark.parametrize(
    "auth",
    [("no-such-client", "secret"), None],
    ids=["unknown client", "no credentials"],
)
def test_unknown_or_missing_clients_are_401(
    http: TestClient, store: SqlStore, auth: tuple[str, str] | None
) -> None:
    Secret(store)
    response = http.post("/oauth2/token", data=grant(), auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    ("scope", "complaint"),
    [
        ("system/Observation.c", "not registered for this client: system/Observation.c"),
        ("system/*.cruds", "not registered for this client: system/*.cruds"),
        ("patient/Patient.rs", "not registered"),
        ("openid", "not registered"),
        ("system/Patinet.rs", "not a FHIR R4 resource type"),
        ("", "scope is required"),
    ],
)
def test_scopes_beyond_the_registration_are_400_invalid_scope(
    http: TestClient, store: SqlStore, scope: str, complaint: str
) -> None:
    client = Secret(store)
    response = http.post("/oauth2/token", data=grant(scope), auth=client.auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert complaint in response.json()["error_description"]


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            400,
            "unsupported_grant_type",
        ),
        # A system client is not an app: it may not use the app grants.
        ({"grant_type": "authorization_code", "code": "x"}, 400, "unauthorized_client"),
        ({"grant_type": "refresh_token", "refresh_token": "x"}, 400, "unauthorized_client"),
        ({"scope": "system/*.rs"}, 400, "unsupported_grant_type"),
    ],
)
def test_other_grant_types_are_refused(
    http: TestClient, store: SqlStore, form: dict[str, str], status: int, error: str
) -> None:
    client = Secret(store)
    response = http.post("/oauth2/token", data=form, auth=client.auth)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_malformed_requests_are_400_invalid_request(http: TestClient, store: SqlStore) -> None:
    client = Secret(store)
    as_json = http.post("/oauth2/token", json=grant(), auth=client.auth)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    twice = http.post(
        "/oauth2/token",
        content="grant_type=client_credentials&scope=system/*.rs&scope=system/*.rs",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=client.auth,
    )
    assert (twice.status_code, twice.json()["error"]) == (400, "invalid_request")
    assert "scope" in twice.json()["error_description"]
    huge = http.post("/oauth2/token", data={"x": "y" * 70_000}, auth=client.auth)
    assert huge.status_code == 413
    assert http.get("/oauth2/token").status_code == 405


def test_plain_http_is_refused_except_on_loopback(settings: Settings, store: SqlStore) -> None:
    client = Secret(store)
    app = create_app(settings, store)
    with TestClient(app, base_url="http://gp.test") as http:
        response = http.post("/oauth2/token", data=grant(), auth=client.auth)
        assert (response.status_code, response.json()["error"]) == (400, "insecure_transport")
    with TestClient(app, base_url="http://127.0.0.1:8000") as http:
        assert http.post("/oauth2/token", data=grant(), auth=client.auth).status_code == 200


# ---- private_key_jwt (RFC 7523 client assertions) ---------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_gets_a_token(
    http: TestClient, store: SqlStore, server_key: SigningKey, alg: str
) -> None:
    client = KeyPair(store, alg)
    response = http.post("/oauth2/token", data=client.form(client.assertion()))
    assert response.status_code == 200, response.text
    claims = verified(response.json()["access_token"], store, server_key)
    assert claims.client_id == client.client_id
    assert claims.purpose == "migration"
    assert claims.scopes == ("system/*.rs",)


def _refused(http: TestClient, form: dict[str, str]) -> str:
    response = http.post("/oauth2/token", data=form)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()
    description: str = response.json().get("error_description", "")
    return description


def test_a_replayed_assertion_is_refused(http: TestClient, store: SqlStore) -> None:
    client = KeyPair(store)
    assertion = client.assertion()
    assert http.post("/oauth2/token", data=client.form(assertion)).status_code == 200
    assert "used before" in _refused(http, client.form(assertion))


def test_an_assertion_signed_with_another_key_is_refused(http: TestClient, store: SqlStore) -> None:
    client = KeyPair(store)
    _refused(http, client.form(client.assertion(key=RSAKey.generate_key(2048))))


def test_an_assertion_for_another_audience_is_refused(http: TestClient, store: SqlStore) -> None:
    client = KeyPair(store)
    for aud in (f"{BASE}/fhir", "https://elsewhere.test/oauth2/token", BASE):
        _refused(http, client.form(client.assertion(aud=aud)))


def test_an_expired_assertion_is_refused(http: TestClient, store: SqlStore) -> None:
    client = KeyPair(store)
    _refused(http, client.form(client.assertion(exp=int(time.time()) - 120)))


def test_an_assertion_living_over_five_minutes_is_refused(
    http: TestClient, store: SqlStore
) -> None:
    client = KeyPair(store)
    description = _refused(http, client.form(client.assertion(exp=int(time.time()) + 3600)))
    assert "5 minutes" in description


def test_assertions_must_use_smart_algorithms(http: TestClient, store: SqlStore) -> None:
    client = KeyPair(store)
    _refused(http, client.form(client.assertion(alg="RS256")))
    unsigned = _unsigned({"alg": "none", "kid": client.kid}, {"iss": client.client_id})
    _refused(http, client.form(unsigned))


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "someone-else"},
        {"jti": None},
        {"sub": "no-such-client", "iss": "no-such-client"},
    ],
    ids=["iss is not sub", "no jti", "unknown client"],
)
def test_assertions_with_bad_claims_are_refused(
    http: TestClient, store: SqlStore, claims: dict[str, Any]
) -> None:
    client = KeyPair(store)
    _refused(http, client.form(client.assertion(**claims)))


def test_clients_must_use_their_registered_method(http: TestClient, store: SqlStore) -> None:
    keyed = KeyPair(store)
    with_secret = Secret(store)
    # A secret client cannot switch to an assertion, nor a key client to a secret.
    impostor = KeyPair(store)
    impostor.client_id = with_secret.client_id
    _refused(http, impostor.form(impostor.assertion()))
    response = http.post("/oauth2/token", data=grant(), auth=(keyed.client_id, "guess"))
    assert response.status_code == 401
    both = http.post("/oauth2/token", data=keyed.form(keyed.assertion()), auth=with_secret.auth)
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")


# ---- discovery ---------------------------------------------------------------------------------


def test_smart_configuration(http: TestClient) -> None:
    response = http.get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    config = response.json()
    assert config["issuer"] == ISSUER
    assert config["token_endpoint"] == TOKEN_URL
    assert config["jwks_uri"] == f"{BASE}/oauth2/jwks"
    assert config["introspection_endpoint"] == f"{BASE}/oauth2/introspect"
    assert config["revocation_endpoint"] == f"{BASE}/oauth2/revoke"
    assert config["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "private_key_jwt",
        "none",
    ]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == [
        "authorization_code",
        "client_credentials",
        "refresh_token",
    ]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert set(config["capabilities"]) == {
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
    }
    assert "system/*.rs" in config["scopes_supported"]
    assert config["authorization_endpoint"] == f"{BASE}/oauth2/authorize"
    assert config["response_types_supported"] == ["code"]


def test_discovery_documents_say_only_what_exists(http: TestClient) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        metadata = http.get(path).json()
        assert metadata["issuer"] == ISSUER
        assert metadata["token_endpoint"] == TOKEN_URL
        assert "client_credentials" in metadata["grant_types_supported"]
        assert metadata["authorization_endpoint"] == f"{BASE}/oauth2/authorize"
        assert metadata["response_types_supported"] == ["code"]
        assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
        assert metadata["userinfo_endpoint"] == f"{BASE}/oauth2/userinfo"
        assert metadata["revocation_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "private_key_jwt",
        ]


def test_the_jwks_is_the_public_signing_key(http: TestClient, server_key: SigningKey) -> None:
    response = http.get("/oauth2/jwks")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert (key["kid"], key["alg"], key["use"], key["kty"]) == (
        server_key.kid,
        "RS256",
        "sig",
        "RSA",
    )
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert RSAKey.import_key(key).thumbprint() == server_key.kid


def test_the_public_url_setting_names_the_issuer_and_audience(
    database_url: str, key_file: Path, store: SqlStore, server_key: SigningKey
) -> None:
    settings = Settings(
        database_url=database_url,
        signing_key_path=str(key_file),
        public_url="https://gp.example.nhs.uk",
        fhir_base_url="https://api.example.nhs.uk/gp/fhir",
    )
    client = Secret(store)
    # Behind a TLS-terminating proxy: plain http inside, the public https URL outside.
    with TestClient(create_app(settings, store), base_url="http://internal:8000") as http:
        config = http.get("/fhir/.well-known/smart-configuration").json()
        token = http.post("/oauth2/token", data=grant(), auth=client.auth).json()["access_token"]
    assert config["token_endpoint"] == "https://gp.example.nhs.uk/oauth2/token"
    claims = verified(
        token,
        store,
        server_key,
        issuer="https://gp.example.nhs.uk",
        audience="https://api.example.nhs.uk/gp/fhir",
    )
    assert claims.client_id == client.client_id


def test_the_embedded_database_gets_a_private_key_made_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'opengp.db'}"
    kids = set()
    for _ in range(2):
        store = SqlStore.from_url(url)
        try:
            with TestClient(create_app(Settings(database_url=url), store), base_url=BASE) as http:
                kids.add(http.get("/oauth2/jwks").json()["keys"][0]["kid"])
        finally:
            store.dispose()
    key_path = tmp_path / "var" / "signing-key.pem"
    assert len(kids) == 1
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert signing_key_from_pem(key_path.read_bytes()).kid in kids
    assert [p.name for p in key_path.parent.iterdir() if p.name.startswith(".")] == []


def test_postgres_without_a_configured_key_says_so(postgres_url: str) -> None:
    store = SqlStore.from_url(postgres_url)
    try:
        with TestClient(
            create_app(Settings(database_url=postgres_url), store), base_url=BASE
        ) as http:
            response = http.post("/oauth2/token", data=grant(), auth=("a", "b"))
            assert (response.status_code, response.json()["error"]) == (
                503,
                "temporarily_unavailable",
            )
            assert http.get("/fhir/.well-known/smart-configuration").status_code == 200
    finally:
        store.dispose()


# ---- introspection (RFC 7662) and revocation (RFC 7009) ---------------------------------------


def _token(http: TestClient, client: Secret, scope: str = "system/Patient.rs") -> str:
    response = http.post("/oauth2/token", data=grant(scope), auth=client.auth)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_introspection_of_active_and_inactive_tokens(http: TestClient, store: SqlStore) -> None:
    client = Secret(store)
    token = _token(http, client)
    active = http.post("/oauth2/introspect", data={"token": token}, auth=client.auth)
    assert active.status_code == 200
    body = active.json()
    assert body["active"] is True
    assert (body["client_id"], body["scope"], body["iss"], body["aud"]) == (
        client.client_id,
        "system/Patient.rs",
        ISSUER,
        AUDIENCE,
    )
    assert body["exp"] - body["iat"] == 300
    assert body["token_type"] == "Bearer"
    for junk in ("not-a-token", token[:-4] + "AAAA", ""):
        inactive = http.post("/oauth2/introspect", data={"token": junk}, auth=client.auth)
        assert inactive.status_code == 200
        assert inactive.json() == {"active": False}


def test_introspection_needs_the_client_and_shows_only_its_own_tokens(
    http: TestClient, store: SqlStore
) -> None:
    owner, other = Secret(store), Secret(store)
    token = _token(http, owner)
    assert http.post("/oauth2/introspect", data={"token": token}).status_code == 401
    response = http.post("/oauth2/introspect", data={"token": token}, auth=other.auth)
    assert response.json() == {"active": False}
    keyed = KeyPair(store)
    form = {"token": token, "client_assertion_type": ASSERTION_TYPE}
    form["client_assertion"] = keyed.assertion()
    assert http.post("/oauth2/introspect", data=form).json() == {"active": False}


def test_a_revoked_token_is_refused(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    client = Secret(store)
    token, other = _token(http, client), _token(http, client)
    revoked = http.post("/oauth2/revoke", data={"token": token}, auth=client.auth)
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert rejected(token, store, server_key) == "revoked"
    assert verified(other, store, server_key).client_id == client.client_id
    introspected = http.post("/oauth2/introspect", data={"token": token}, auth=client.auth)
    assert introspected.json() == {"active": False}
    # Revoking again, or revoking nonsense, is not an error (RFC 7009 §2.2).
    again = http.post("/oauth2/revoke", data={"token": token}, auth=client.auth)
    assert again.status_code == 200
    nonsense = http.post("/oauth2/revoke", data={"token": "nonsense"}, auth=client.auth)
    assert nonsense.status_code == 200


def test_only_the_owner_may_revoke(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    owner, other = Secret(store), Secret(store)
    token = _token(http, owner)
    assert http.post("/oauth2/revoke", data={"token": token}).status_code == 401
    response = http.post("/oauth2/revoke", data={"token": token}, auth=other.auth)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    assert verified(token, store, server_key).client_id == owner.client_id


# ---- verify_access_token refuses each kind of bad token for its own reason ------------------


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def _claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(_b64(token.split(".")[1]))
    return claims


def test_tokens_for_another_audience_or_issuer_are_refused(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    token = _token(http, Secret(store))
    assert (
        rejected(token, store, server_key, audience="https://other.test/fhir") == "wrong-audience"
    )
    assert rejected(token, store, server_key, issuer="https://other.test") == "wrong-issuer"


def test_expired_tokens_are_refused(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    token = _token(http, Secret(store))
    expires = datetime.fromtimestamp(_claims_of(token)["exp"], UTC)
    assert verified(token, store, server_key, now=expires - timedelta(seconds=1))
    assert rejected(token, store, server_key, now=expires + timedelta(seconds=10)) == "expired"
    issued = datetime.fromtimestamp(_claims_of(token)["iat"], UTC)
    before = issued - timedelta(minutes=1)
    assert rejected(token, store, server_key, now=before) == "not-yet-valid"


def test_tokens_signed_with_another_key_are_refused(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    token = _token(http, Secret(store))
    claims = _claims_of(token)
    other = signing_key_from_pem(RSAKey.generate_key(2048).as_pem(private=True))
    forged = jwt.encode(
        {"alg": "RS256", "typ": "at+jwt", "kid": server_key.kid}, claims, other.private
    )
    assert rejected(forged, store, server_key) == "bad-signature"
    own_kid = jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, other.signing_keys())
    assert rejected(own_kid, store, server_key) == "bad-signature"
    # A genuine token, checked by a server with another key.
    assert rejected(token, store, other) == "bad-signature"


def test_unsigned_and_symmetric_tokens_are_refused(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    claims = _claims_of(_token(http, Secret(store)))
    unsigned = _unsigned({"alg": "none", "typ": "at+jwt"}, claims)
    assert rejected(unsigned, store, server_key) == "algorithm-not-allowed"
    # HS256 keyed with public key material: the classic algorithm confusion attack.
    modulus = server_key.jwks()["keys"][0]["n"].encode()
    confused = jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims, OctKey.import_key(modulus))
    assert rejected(confused, store, server_key) == "algorithm-not-allowed"


def test_other_jwts_and_garbage_are_refused(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    claims = _claims_of(_token(http, Secret(store)))
    id_token_like = jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, server_key.signing_keys())
    assert rejected(id_token_like, store, server_key) == "wrong-type"
    incomplete = {k: v for k, v in claims.items() if k != "client_id"}
    missing = jwt.encode({"alg": "RS256", "typ": "at+jwt"}, incomplete, server_key.signing_keys())
    assert rejected(missing, store, server_key) == "missing-claim"
    for junk in ("", "abc", "a.b.c", "e30.e30.e30"):
        assert rejected(junk, store, server_key) == "malformed"


def test_the_generator_and_the_verifier_agree(store: SqlStore, server_key: SigningKey) -> None:
    """A token made by `AccessTokenGenerator` directly (no HTTP) verifies with its authority."""

    class Client:
        purpose = "direct-care"

        def get_client_id(self) -> str:
            return "client-x"

        def get_allowed_scope(self, scope: str) -> str:
            return scope

    authority = TokenAuthority(ISSUER, AUDIENCE, server_key)
    token = AccessTokenGenerator(authority, 120).generate(
        "client_credentials", Client(), scope="system/*.rs", include_refresh_token=False
    )
    assert token["expires_in"] == 120
    claims = verified(token["access_token"], store, server_key)
    assert (claims.client_id, claims.scopes) == ("client-x", ("system/*.rs",))


def test_the_bearer_token_of_a_request_is_authenticated(
    settings: Settings, store: SqlStore, http: TestClient
) -> None:
    """What the FHIR endpoint calls: `OAuthEndpoints.identify`."""
    oauth = OAuthEndpoints(settings, store)

    async def protected(request: Request) -> Response:
        try:
            principal = await run_in_threadpool(oauth.identify(request))
        except Unauthorized as refused:
            headers = {"WWW-Authenticate": refused.challenge}
            return JSONResponse({}, status_code=401, headers=headers)
        return JSONResponse({"client": principal.client_id, "scopes": sorted(principal.scopes)})

    client = Secret(store)
    token = _token(http, client)
    app = Starlette(routes=[Route("/fhir/Patient", protected)])
    with TestClient(app, base_url=BASE) as fhir:
        good = fhir.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
        assert good.json() == {"client": client.client_id, "scopes": ["system/Patient.rs"]}
        missing = fhir.get("/fhir/Patient")
        assert (missing.status_code, missing.headers["www-authenticate"]) == (
            401,
            'Bearer realm="fhir"',
        )
        bad = fhir.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}x"})
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"] == (
            'Bearer realm="fhir", error="invalid_token", error_description="bad-signature"'
        )
