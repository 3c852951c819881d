"""SMART App Launch v2, standalone launch, over HTTP on both databases: the sign-in page,
authorization code with PKCE, refresh-token rotation, ID tokens, and the tokens at /fhir.

https://hl7.org/fhir/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from joserfc import jwt
from starlette.testclient import TestClient

from opengp.access import accounts, policy
from opengp.access.keys import SigningKey, signing_key_from_pem
from opengp.access.principal import Principal
from opengp.access.tokens import AccessClaims, TokenAuthority, verify_access_token
from opengp.app import create_app
from opengp.config import Settings
from opengp.services.oauth import OAuthService, add_client
from opengp.store.sql import SqlStore
from opengp.store.sql.audit import query_audit
from tests.functional.conftest import FHIR_JSON, bearer_token, patient
from tests.functional.test_search import a_patient, observation

BASE = "https://gp.test"
FHIR_BASE = f"{BASE}/fhir"
APP = "https://app.example/callback"
PASSWORD = "a long enough passphrase 42"
APP_SCOPES = (
    "openid fhirUser launch/patient offline_access patient/*.rs user/*.rs patient/Patient.rs"
)


@pytest.fixture
def settings(database_url: str, key_file: Path) -> Settings:
    return Settings(database_url=database_url, signing_key_path=str(key_file))


@pytest.fixture
def http(settings: Settings, store: SqlStore) -> Iterator[TestClient]:
    app = create_app(settings, store)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield client


@pytest.fixture
def server_key(key_file: Path) -> SigningKey:
    return signing_key_from_pem(key_file.read_bytes())


def new_patient(http: TestClient, store: SqlStore, nhs_number: str) -> str:
    token = bearer_token(http, store, "system/Patient.cruds")
    response = http.post(
        "/fhir/Patient",
        json=patient(nhs_number),
        headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON},
    )
    assert response.status_code == 201, response.text
    patient_id: str = response.json()["id"]
    return patient_id


def new_user(store: SqlStore, username: str, kind: str, **fields: Any) -> str:
    with store.writing() as tx:
        created = accounts.create_user(
            tx.conn, username=username, kind=kind, display_name=username, with_totp=False, **fields
        )
        accounts.change_password(tx.conn, created.user_id, created.one_time_password, PASSWORD)
    return created.user_id


def new_app(store: SqlStore, *, public: bool = True) -> tuple[str, str | None]:
    return add_client(
        store, "Patient app", APP_SCOPES, "direct-care", redirect_uris=[APP], public=public
    )


class Pkce:
    def __init__(self) -> None:
        self.verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(self.verifier.encode()).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(client_id: str, pkce: Pkce, scope: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": APP,
        "scope": scope,
        "state": "st-123",
        "aud": FHIR_BASE,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "nonce": "n-456",
        **extra,
    }


def form_of(page: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {unescape(name): unescape(value) for name, value in fields}


def sign_in(
    http: TestClient,
    client_id: str,
    pkce: Pkce,
    scope: str,
    username: str,
    password: str = PASSWORD,
) -> Any:
    page = http.get("/oauth2/authorize", params=authorize_params(client_id, pkce, scope))
    assert page.status_code == 200, page.text
    assert "text/html" in page.headers["content-type"]
    form = {**form_of(page.text), "username": username, "password": password, "totp": ""}
    return http.post("/oauth2/authorize", data=form)


def code_from(response: Any) -> str:
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    assert location.startswith(APP + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-123"]
    code: str = query["code"][0]
    return code


def exchange(http: TestClient, client_id: str, code: str, verifier: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    return http.post("/oauth2/token", data=form)


def refresh(http: TestClient, client_id: str, token: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return http.post("/oauth2/token", data=form)


def claims_of(token: str, store: SqlStore, key: SigningKey) -> AccessClaims:
    with store.reading() as tx:
        return verify_access_token(token, TokenAuthority(BASE, FHIR_BASE, key), tx.conn)


def launched(
    http: TestClient, store: SqlStore, client_id: str, username: str, scope: str = APP_SCOPES
) -> dict[str, Any]:
    pkce = Pkce()
    code = code_from(sign_in(http, client_id, pkce, scope, username))
    response = exchange(http, client_id, code, pkce.verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---- the whole flow, for a patient ----------------------------------------------------------


def test_a_patient_launches_an_app_and_reads_only_their_own_record(
    http: TestClient, store: SqlStore, settings: Settings, server_key: SigningKey
) -> None:
    mine = new_patient(http, store, "9434765919")
    other = new_patient(http, store, "9434765870")
    user_id = new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, secret = new_app(store)
    assert secret is None

    body = launched(http, store, client_id, "jo.smith")
    assert body["token_type"] == "Bearer"
    assert body["patient"] == mine
    assert "refresh_token" in body
    granted = body["scope"].split()
    assert "patient/*.rs" in granted and "user/*.rs" not in granted
    assert {"openid", "fhirUser", "launch/patient", "offline_access"} <= set(granted)

    claims = claims_of(body["access_token"], store, server_key)
    assert (claims.subject, claims.client_id) == (user_id, client_id)
    assert claims.claims["fhirUser"] == f"Patient/{mine}"
    principal: Principal = OAuthService(store, settings).principal_of(claims)
    assert (principal.kind, principal.id, principal.patient_id) == ("patient", user_id, mine)
    assert principal.client_id == client_id
    assert principal.scopes == frozenset(granted)

    id_token = jwt.decode(body["id_token"], server_key.public)
    assert id_token.claims["iss"] == BASE
    assert id_token.claims["sub"] == user_id
    assert id_token.claims["aud"] == client_id
    assert id_token.claims["nonce"] == "n-456"
    assert id_token.claims["fhirUser"] == f"{FHIR_BASE}/Patient/{mine}"

    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    others = http.get(f"/fhir/Patient/{other}", headers=bearer)
    assert others.status_code == 404, others.text  # not 403: existence is not disclosed


def test_a_patient_token_reads_their_own_record_and_nothing_else(
    http: TestClient, store: SqlStore
) -> None:
    mine = new_patient(http, store, "9434765919")
    other = new_patient(http, store, "9434765870")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    body = launched(http, store, client_id, "jo.smith")
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    own = http.get(f"/fhir/Patient/{mine}", headers=bearer)
    assert own.status_code == 200, own.text
    token = bearer_token(http, store, "system/Observation.cruds")
    system = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}

    def observation(patient: str, **extra: Any) -> str:
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Blood pressure"},
            "subject": {"reference": f"Patient/{patient}"},
            **extra,
        }
        created = http.post("/fhir/Observation", content=orjson.dumps(resource), headers=system)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    assert http.get(f"/fhir/Observation/{observation(mine)}", headers=bearer).status_code == 200
    # Another patient's entry, and a sensitive entry of their own: as if they did not exist.
    assert http.get(f"/fhir/Observation/{observation(other)}", headers=bearer).status_code == 404
    sensitive = {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]
    }
    hidden = observation(mine, meta=sensitive)
    assert http.get(f"/fhir/Observation/{hidden}", headers=bearer).status_code == 404
    gone = observation(other)
    assert http.delete(f"/fhir/Observation/{gone}", headers=system).status_code == 204
    assert http.get(f"/fhir/Observation/{gone}", headers=bearer).status_code == 404

    # Searches run inside their own record, without what is withheld from them.
    visible = observation(mine)
    found = http.get("/fhir/Observation?code:text=blood", headers=bearer)
    assert found.status_code == 200, found.text
    matches = {e["resource"]["id"] for e in found.json()["entry"] if e["search"]["mode"] == "match"}
    assert visible in matches and hidden not in matches
    assert all(
        e["resource"]["subject"]["reference"] == f"Patient/{mine}"
        for e in found.json()["entry"]
        if e["search"]["mode"] == "match"
    )
    theirs = http.get(f"/fhir/Observation?subject=Patient/{other}", headers=bearer)
    assert (theirs.status_code == 200 and "entry" not in theirs.json()) or not [
        e for e in theirs.json()["entry"] if e["search"]["mode"] == "match"
    ]
    compartment = http.get(f"/fhir/Patient/{mine}/Observation", headers=bearer)
    assert compartment.status_code == 200
    assert visible in {e["resource"]["id"] for e in compartment.json()["entry"]}
    assert http.get(f"/fhir/Patient/{other}/Observation", headers=bearer).status_code == 403
    # Writes land in their own record only, within what the role table lets patients do.
    booking = "openid patient/*.rs patient/Appointment.cruds patient/Observation.c"
    booking_app, _ = add_client(
        store, "Booking", booking, "direct-care", redirect_uris=[APP], public=True
    )
    token = launched(http, store, booking_app, "jo.smith", booking)["access_token"]
    writer = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}

    def appointment(who: str) -> bytes:
        actor = {"actor": {"reference": f"Patient/{who}"}, "status": "needs-action"}
        return orjson.dumps(
            {"resourceType": "Appointment", "status": "proposed", "participant": [actor]}
        )

    asked = http.post("/fhir/Appointment", content=appointment(mine), headers=writer)
    assert asked.status_code == 201, asked.text
    assert (
        http.post("/fhir/Appointment", content=appointment(other), headers=writer).status_code
        == 403
    )
    moved = orjson.loads(appointment(other)) | {"id": asked.json()["id"]}
    assert (
        http.put(
            f"/fhir/Appointment/{asked.json()['id']}", content=orjson.dumps(moved), headers=writer
        ).status_code
        == 403
    )
    note = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    note["subject"] = {"reference": f"Patient/{mine}"}
    assert (
        http.post("/fhir/Observation", content=orjson.dumps(note), headers=writer).status_code
        == 403
    )
    assert http.delete(f"/fhir/Appointment/{asked.json()['id']}", headers=writer).status_code == 403
    patients = http.get("/fhir/Patient", headers=bearer).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == [mine]
    assert http.get("/fhir/Practitioner", headers=bearer).status_code == 403


def test_a_confidential_app_authenticates_with_its_secret(
    http: TestClient, store: SqlStore
) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, secret = new_app(store, public=False)
    assert secret is not None
    pkce = Pkce()
    code = code_from(sign_in(http, client_id, pkce, "patient/*.rs", "jo.smith"))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP}
    refused = http.post(
        "/oauth2/token", data={**form, "code_verifier": pkce.verifier, "client_id": client_id}
    )
    assert refused.status_code == 401  # a confidential client must authenticate
    pkce2 = Pkce()
    code2 = code_from(sign_in(http, client_id, pkce2, "patient/*.rs", "jo.smith"))
    form2 = {**form, "code": code2, "code_verifier": pkce2.verifier}
    response = http.post("/oauth2/token", data=form2, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "patient/*.rs"
    assert "refresh_token" not in response.json()  # no offline_access asked


# ---- PKCE and codes -------------------------------------------------------------------------


def test_a_wrong_pkce_verifier_is_refused(http: TestClient, store: SqlStore) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    pkce = Pkce()
    code = code_from(sign_in(http, client_id, pkce, APP_SCOPES, "jo.smith"))
    response = exchange(http, client_id, code, Pkce().verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    missing = exchange(http, client_id, code, "")
    assert missing.status_code == 400


def test_a_code_is_used_once(http: TestClient, store: SqlStore) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    pkce = Pkce()
    code = code_from(sign_in(http, client_id, pkce, APP_SCOPES, "jo.smith"))
    first = exchange(http, client_id, code, pkce.verifier)
    assert first.status_code == 200, first.text
    again = exchange(http, client_id, code, pkce.verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # The replay revoked the refresh token the code had given (RFC 6749 §4.1.2).
    assert refresh(http, client_id, first.json()["refresh_token"]).status_code == 400


def test_an_authorization_request_without_pkce_is_sent_back_with_an_error(
    http: TestClient, store: SqlStore
) -> None:
    client_id, _ = new_app(store)
    params = authorize_params(client_id, Pkce(), APP_SCOPES)
    del params["code_challenge"]
    response = http.get("/oauth2/authorize", params=params)
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["st-123"]
    wrong_aud = http.get("/oauth2/authorize", params={**params, "aud": "https://elsewhere/fhir"})
    assert wrong_aud.status_code == 303
    assert "error=invalid_request" in wrong_aud.headers["location"]


# ---- never redirect to an unregistered URI; sign-in failures stay on the page ---------------


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    http: TestClient, store: SqlStore
) -> None:
    client_id, _ = new_app(store)
    pkce = Pkce()
    for uri in ("https://evil.example/callback", APP + "/more", APP + "?x=1"):
        params = authorize_params(client_id, pkce, APP_SCOPES, redirect_uri=uri)
        response = http.get("/oauth2/authorize", params=params)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "not registered" in response.text
    unknown = http.get("/oauth2/authorize", params=authorize_params("nobody", pkce, APP_SCOPES))
    assert unknown.status_code == 400 and "location" not in unknown.headers


def test_a_wrong_password_shows_the_page_again_without_a_code(
    http: TestClient, store: SqlStore
) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    wrong = sign_in(http, client_id, Pkce(), APP_SCOPES, "jo.smith", "not the password at all")
    unknown = sign_in(http, client_id, Pkce(), APP_SCOPES, "nobody.here", "not the password at all")
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "The username or password is not right." in response.text
        assert 'name="form_token"' in response.text  # may try again


def test_a_form_without_its_token_is_refused(http: TestClient, store: SqlStore) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    params = authorize_params(client_id, Pkce(), APP_SCOPES)
    form = {**params, "username": "jo.smith", "password": PASSWORD, "form_token": "1.abc"}
    response = http.post("/oauth2/authorize", data=form)
    assert response.status_code == 400 and "location" not in response.headers


def test_a_one_time_password_must_be_replaced_before_the_app_gets_a_code(
    http: TestClient, store: SqlStore
) -> None:
    mine = new_patient(http, store, "9434765919")
    with store.writing() as tx:
        created = accounts.create_user(
            tx.conn,
            username="new.patient",
            kind="patient",
            display_name="New",
            fhir_user=f"Patient/{mine}",
            with_totp=False,
        )
    client_id, _ = new_app(store)
    pkce = Pkce()
    page = sign_in(http, client_id, pkce, APP_SCOPES, "new.patient", created.one_time_password)
    assert page.status_code == 200 and "location" not in page.headers
    assert "Create a new password" in page.text
    form = form_of(page.text)

    def choose(new: str, confirm: str) -> Any:
        return http.post(
            "/oauth2/authorize",
            data={**form, "new_password": new, "confirm_password": confirm},
        )

    mismatch = choose(PASSWORD, PASSWORD + "x")
    assert mismatch.status_code == 400 and "type the same one twice" in mismatch.text
    weak = choose("short", "short")
    assert weak.status_code == 400 and "Choose a different password" in weak.text
    same = choose(created.one_time_password, created.one_time_password)
    assert same.status_code == 400 and "differ from the one-time password" in same.text

    code = code_from(choose(PASSWORD, PASSWORD))
    token = exchange(http, client_id, code, pkce.verifier)
    assert token.status_code == 200 and token.json()["patient"] == mine

    replay = choose("another long passphrase 43", "another long passphrase 43")
    assert replay.status_code == 400 and "expired" in replay.text
    old = sign_in(http, client_id, Pkce(), APP_SCOPES, "new.patient", created.one_time_password)
    assert old.status_code == 400 and "location" not in old.headers
    code_from(sign_in(http, client_id, Pkce(), APP_SCOPES, "new.patient", PASSWORD))


def test_a_forged_password_change_token_is_refused(http: TestClient, store: SqlStore) -> None:
    client_id, _ = new_app(store)
    page = http.get("/oauth2/authorize", params=authorize_params(client_id, Pkce(), APP_SCOPES))
    form = {
        **form_of(page.text),
        "change_token": f"{int(time.time())}.some-user.{'0' * 32}.{'0' * 64}",
        "new_password": PASSWORD,
        "confirm_password": PASSWORD,
    }
    response = http.post("/oauth2/authorize", data=form)
    assert response.status_code == 400 and "location" not in response.headers
    assert "sign in again" in response.text


# ---- refresh tokens: rotation and reuse -----------------------------------------------------


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_family(
    http: TestClient, store: SqlStore, server_key: SigningKey
) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    first = launched(http, store, client_id, "jo.smith")["refresh_token"]

    rotated = refresh(http, client_id, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert rotated.json()["patient"] == mine
    assert claims_of(rotated.json()["access_token"], store, server_key).claims["patient"] == mine

    reused = refresh(http, client_id, first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # The reuse revoked the token that replaced it too.
    assert refresh(http, client_id, second).status_code == 400


def test_a_refresh_token_works_only_for_its_own_client(http: TestClient, store: SqlStore) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    other_id, _ = new_app(store)
    token = launched(http, store, client_id, "jo.smith")["refresh_token"]
    assert refresh(http, other_id, token).status_code == 400
    assert refresh(http, client_id, token).status_code == 200


# ---- scopes by kind of account --------------------------------------------------------------


def test_staff_get_user_scopes_only(
    http: TestClient, store: SqlStore, settings: Settings, server_key: SigningKey
) -> None:
    staff_id = new_user(store, "dr.patel", "staff", roles=["R8000"])
    client_id, _ = new_app(store)
    body = launched(http, store, client_id, "dr.patel")
    granted = body["scope"].split()
    assert "user/*.rs" in granted
    assert not [s for s in granted if s.startswith("patient/")]
    assert "launch/patient" not in granted and "patient" not in body
    principal = OAuthService(store, settings).principal_of(
        claims_of(body["access_token"], store, server_key)
    )
    assert (principal.kind, principal.id) == ("staff", staff_id)
    assert principal.roles == frozenset({"R8000"})


def test_a_patient_asking_for_user_scopes_gets_none_of_them(
    http: TestClient, store: SqlStore
) -> None:
    mine = new_patient(http, store, "9434765919")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    client_id, _ = new_app(store)
    body = launched(http, store, client_id, "jo.smith", scope="user/*.rs launch/patient")
    assert body["scope"] == "launch/patient"
    assert body["patient"] == mine


def test_a_proxy_with_one_patient_gets_that_patient_in_context(
    http: TestClient, store: SqlStore, settings: Settings, server_key: SigningKey
) -> None:
    child = new_patient(http, store, "9434765919")
    proxy_id = new_user(store, "parent", "proxy")
    with store.writing() as tx:
        accounts.grant_proxy(tx.conn, proxy_id, child, "patient/*.rs", "admin")
    client_id, _ = new_app(store)
    body = launched(http, store, client_id, "parent")
    assert body["patient"] == child
    principal = OAuthService(store, settings).principal_of(
        claims_of(body["access_token"], store, server_key)
    )
    assert (principal.kind, principal.patient_id) == ("proxy", child)


# ---- discovery ------------------------------------------------------------------------------


def test_discovery_lists_the_launch(http: TestClient) -> None:
    smart = http.get("/fhir/.well-known/smart-configuration").json()
    assert smart["authorization_endpoint"] == f"{BASE}/oauth2/authorize"
    assert smart["response_types_supported"] == ["code"]
    assert smart["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "client_credentials", "refresh_token"} == set(
        smart["grant_types_supported"]
    )
    assert {"launch-standalone", "client-public", "context-standalone-patient"} <= set(
        smart["capabilities"]
    )
    metadata = http.get("/.well-known/openid-configuration").json()
    assert metadata["authorization_endpoint"] == f"{BASE}/oauth2/authorize"
    assert metadata["id_token_signing_alg_values_supported"]


# ---- staff: legitimate relationships -------------------------------------------------------


def _create(http: TestClient, token: str, body: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
    response = http.post(
        f"/fhir/{body['resourceType']}", content=orjson.dumps(body), headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_staff_see_only_patients_they_have_a_relationship_with(
    http: TestClient, store: SqlStore
) -> None:
    system = bearer_token(http, store, "system/*.cruds")
    practice = _create(http, system, {"resourceType": "Organization", "name": "Our practice"})
    elsewhere = _create(http, system, {"resourceType": "Organization", "name": "Elsewhere"})
    doctor = _create(http, system, {"resourceType": "Practitioner", "name": [{"family": "Shah"}]})
    role = _create(
        http,
        system,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{doctor}"},
            "organization": {"reference": f"Organization/{elsewhere}"},
        },
    )
    registered = _create(
        http,
        system,
        a_patient(
            41,
            "Ours",
            "Reg",
            "1960-01-01",
            managingOrganization={"reference": f"Organization/{practice}"},
        ),
    )
    booked = _create(http, system, a_patient(42, "Booked", "Bea", "1970-01-01"))
    stranger = _create(http, system, a_patient(43, "Stranger", "Sid", "1980-01-01"))
    _create(
        http,
        system,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "participant": [
                {"actor": {"reference": f"Patient/{booked}"}, "status": "accepted"},
                {"actor": {"reference": f"PractitionerRole/{role}"}, "status": "accepted"},
            ],
        },
    )
    results = {
        who: _create(
            http, system, observation(who, "4548-4", 50, "mmol/mol", "2025-01-01T10:00:00Z")
        )
        for who in (registered, booked, stranger)
    }
    new_user(
        store,
        "dr.shah",
        "staff",
        roles=["R8000"],
        fhir_user=f"Practitioner/{doctor}",
        practitioner_role=f"PractitionerRole/{role}",
        organization_id=practice,
    )
    clinical = "openid fhirUser user/*.cruds"
    client_id, _ = add_client(
        store, "Clinical app", clinical, "direct-care", redirect_uris=[APP], public=True
    )
    token = launched(http, store, client_id, "dr.shah", clinical)["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}

    def get(url: str) -> Any:
        return http.get(f"/fhir/{url}", headers=bearer)

    def matches(url: str) -> set[str]:
        response = get(url)
        assert response.status_code == 200, response.text
        return {
            e["resource"]["id"]
            for e in response.json().get("entry", [])
            if e["search"]["mode"] == "match"
        }

    assert get(f"Patient/{registered}").status_code == 200
    assert get(f"Patient/{booked}").status_code == 200
    assert get(f"Patient/{stranger}").status_code == 403
    assert get(f"Observation/{results[registered]}").status_code == 200
    assert get(f"Observation/{results[stranger]}").status_code == 403
    assert matches("Patient") == {registered, booked}
    assert matches("Observation?code=4548-4") == {results[registered], results[booked]}
    assert matches(f"Patient/{registered}/Observation") == {results[registered]}
    assert get(f"Patient/{stranger}/Observation").status_code == 403
    assert get(f"Patient/{registered}/$everything").status_code == 200
    assert get(f"Patient/{stranger}/$everything").status_code == 403
    # Practitioners are nobody's record; what a search includes is checked like a read.
    included = get(f"Practitioner?_id={doctor}&_revinclude=Observation:performer")
    assert included.status_code == 200
    everything = get(f"Patient?_id={registered},{stranger}&_revinclude=Observation:subject")
    ids = {e["resource"]["id"] for e in everything.json()["entry"] if "id" in e["resource"]}
    assert results[registered] in ids and results[stranger] not in ids and stranger not in ids

    # Writes land in a record too: not in an unrelated patient's, whichever way they come.
    writer = {**bearer, "Content-Type": FHIR_JSON}
    note = observation(stranger, "39156-5", 30, "kg/m2", "2025-02-01T10:00:00Z")
    assert (
        http.post("/fhir/Observation", content=orjson.dumps(note), headers=writer).status_code
        == 403
    )
    ours = observation(registered, "39156-5", 30, "kg/m2", "2025-02-01T10:00:00Z")
    assert (
        http.post("/fhir/Observation", content=orjson.dumps(ours), headers=writer).status_code
        == 201
    )
    moved = {**ours, "id": results[registered], "subject": {"reference": f"Patient/{stranger}"}}
    put = http.put(
        f"/fhir/Observation/{results[registered]}", content=orjson.dumps(moved), headers=writer
    )
    assert put.status_code == 403
    assert (
        get(f"Observation/{results[registered]}").json()["subject"]["reference"]
        == f"Patient/{registered}"
    )
    assert http.delete(f"/fhir/Observation/{results[stranger]}", headers=bearer).status_code == 403
    sneaky = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "GET", "url": f"Observation/{results[stranger]}"}}],
    }
    assert http.post("/fhir", content=orjson.dumps(sneaky), headers=writer).status_code == 403

    # Break-glass: a reason opens the record for an hour, flagged in the audit trail.
    def break_glass(reason: str) -> Any:
        body = {
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": reason}],
        }
        return http.post(
            f"/fhir/Patient/{stranger}/$break-glass",
            content=orjson.dumps(body),
            headers={**bearer, "Content-Type": FHIR_JSON},
        )

    assert break_glass("urgent").status_code == 403  # too short to be a reason
    opened = break_glass("Unconscious in the waiting room, no notes available")
    assert opened.status_code == 200, opened.text
    assert opened.json()["parameter"][0]["name"] == "until"
    assert get(f"Observation/{results[stranger]}").status_code == 200
    assert get(f"Patient/{stranger}/$everything").status_code == 200
    with store.reading() as tx:
        trail = query_audit(tx.conn, patient_id=stranger, count=20)
    alert = [e for e in trail if e.action == "break-glass"]
    assert len(alert) == 1 and "Unconscious" in (alert[0].detail or "")
    flagged = [e for e in trail if e.action == "read" and "break_glass" in (e.detail or "")]
    assert flagged, "reads under break-glass are flagged"
    # A receptionist may not break the glass.
    new_user(store, "reception", "staff", roles=["R8009"], organization_id=practice)
    desk = launched(http, store, client_id, "reception")["access_token"]
    refused = http.post(
        f"/fhir/Patient/{stranger}/$break-glass",
        content=orjson.dumps(
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "reason", "valueString": "A long enough reason here"}],
            }
        ),
        headers={"Authorization": f"Bearer {desk}", "Content-Type": FHIR_JSON},
    )
    assert refused.status_code == 403


# ---- the audit trail over FHIR --------------------------------------------------------------


def test_privacy_officers_and_patients_search_the_audit_trail(
    http: TestClient, store: SqlStore
) -> None:
    mine = new_patient(http, store, "9434765919")
    other = new_patient(http, store, "9434765870")
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{mine}")
    new_user(store, "privacy", "staff", roles=["R0001"])
    new_user(store, "dr.who", "staff", roles=["R8000"])
    client_id, _ = new_app(store)

    def bearer(username: str) -> dict[str, str]:
        token = launched(http, store, client_id, username)["access_token"]
        return {"Authorization": f"Bearer {token}"}

    patient = bearer("jo.smith")
    assert http.get(f"/fhir/Patient/{mine}", headers=patient).status_code == 200
    officer = bearer("privacy")
    trail = http.get(f"/fhir/AuditEvent?patient=Patient/{mine}&_count=50", headers=officer)
    assert trail.status_code == 200, trail.text
    events = [e["resource"] for e in trail.json()["entry"]]
    assert all(e["resourceType"] == "AuditEvent" for e in events)
    reads = [e for e in events if e.get("subtype", [{}])[0].get("code") == "read"]
    assert reads and reads[0]["entity"][0]["what"]["reference"] == f"Patient/{mine}"
    today = http.get(
        "/fhir/AuditEvent?date=ge2020-01-01&date=lt2999-01-01&_count=1", headers=officer
    )
    assert today.status_code == 200 and len(today.json()["entry"]) == 1
    assert any(link["relation"] == "next" for link in today.json()["link"])
    # Patients see who looked at their own record, and nobody else's.
    own = http.get("/fhir/AuditEvent", headers=patient)
    assert own.status_code == 200
    assert {
        e["resource"]["entity"][0]["what"]["reference"]
        for e in own.json()["entry"]
        if e["resource"].get("entity")
    } <= {f"Patient/{mine}"}
    assert http.get(f"/fhir/AuditEvent?patient={other}", headers=patient).status_code == 400
    # A GP's role does not include the audit trail.
    assert http.get("/fhir/AuditEvent", headers=bearer("dr.who")).status_code == 403
    assert http.get("/fhir/AuditEvent?colour=blue", headers=officer).status_code == 400


# ---- the role table, over HTTP ---------------------------------------------------------------

# A resource type of each category of the role table, and what to create of it.
MATRIX_TYPES = {"demographics": "RelatedPerson", "appointments": "Appointment"}
MATRIX_TYPES |= {"clinical": "Observation"}
INTERACTIONS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def _matrix_body(kind: str, patient_id: str) -> dict[str, Any]:
    if kind == "RelatedPerson":
        return {"resourceType": kind, "patient": {"reference": f"Patient/{patient_id}"}}
    if kind == "Appointment":
        actor = {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}
        return {"resourceType": kind, "status": "booked", "participant": [actor]}
    return observation(patient_id, "39156-5", 30, "kg/m2", "2025-02-01T10:00:00Z")


def test_every_role_gets_exactly_what_the_role_table_says(
    http: TestClient, store: SqlStore
) -> None:
    """Each national role against each category and interaction, through real requests with
    a token of all user/ scopes, for a patient registered at the user's practice."""
    system = bearer_token(http, store, "system/*.cruds")
    practice = _create(http, system, {"resourceType": "Organization", "name": "Our practice"})
    registered = {"managingOrganization": {"reference": f"Organization/{practice}"}}
    patient_id = _create(http, system, a_patient(51, "Matrix", "Max", "1960-01-01", **registered))
    clinical = "openid fhirUser user/*.cruds"
    client_id, _ = add_client(
        store, "Clinical app", clinical, "direct-care", redirect_uris=[APP], public=True
    )
    unexpected = []
    for role, allowed in policy.ROLE_TABLE.items():
        username = f"user.{role.lower()}"
        new_user(store, username, "staff", roles=[role], organization_id=practice)
        token = launched(http, store, client_id, username, clinical)["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
        for category, kind in MATRIX_TYPES.items():
            permissions = allowed.get(policy.Category(category), "")
            existing = _create(http, system, _matrix_body(kind, patient_id))
            body = orjson.dumps(_matrix_body(kind, patient_id))
            changed = orjson.dumps({**_matrix_body(kind, patient_id), "id": existing})
            answers = {
                "c": http.post(f"/fhir/{kind}", content=body, headers=headers),
                "r": http.get(f"/fhir/{kind}/{existing}", headers=headers),
                "u": http.put(f"/fhir/{kind}/{existing}", content=changed, headers=headers),
                "s": http.get(f"/fhir/{kind}?_id={existing}", headers=headers),
                "d": http.delete(f"/fhir/{kind}/{existing}", headers=headers),
            }
            for letter, response in answers.items():
                expected = letter in permissions
                if (response.status_code < 300) != expected or response.status_code >= 500:
                    unexpected.append((role, kind, INTERACTIONS[letter], response.status_code))
        audit = http.get("/fhir/AuditEvent?_count=1", headers=headers)
        if (audit.status_code == 200) != ("r" in allowed.get(policy.Category.AUDIT, "")):
            unexpected.append((role, "AuditEvent", "search", audit.status_code))
    assert unexpected == []
