"""The OpenID Connect relying party's pure parts: its settings, the NHS CIS2 roles it can act
in, and its private_key_jwt client assertion (which OpenGP, as a provider, does not accept
from apps, so the functional tests cannot reach it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from opengp.config import ConfigError, OidcProvider, Settings
from opengp.services.external_sign_in import usable_roles
from opengp.services.oidc import ProviderMetadata, RelyingParty, https_or_loopback

ISSUER = "https://auth.example.nhs.uk/openam/oauth2/realms/root/realms/oidc"


def test_oidc_is_off_unless_an_issuer_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.oidc_staff is None and settings.oidc_patient is None


def test_a_provider_is_read_with_its_defaults() -> None:
    env = {
        "OPENGP_OIDC_STAFF_ISSUER": ISSUER + "/",
        "OPENGP_OIDC_STAFF_CLIENT_ID": "opengp",
        "OPENGP_OIDC_STAFF_CLIENT_SECRET": "s3cret",
        "OPENGP_OIDC_STAFF_ORG_CODE": "a12345",
        "OPENGP_OIDC_PATIENT_ISSUER": "http://127.0.0.1:9000",
        "OPENGP_OIDC_PATIENT_CLIENT_ID": "opengp-patients",
        "OPENGP_OIDC_PATIENT_PRIVATE_KEY": "/etc/opengp/nhs-login.pem",
    }
    settings = Settings.from_env(env)
    staff, patient = settings.oidc_staff, settings.oidc_patient
    assert staff == OidcProvider(
        ISSUER, "opengp", "s3cret", None, "openid profile nationalrbacaccess", "A12345"
    )
    assert "s3cret" not in repr(settings)
    assert patient is not None and patient.scope == "openid profile"
    assert patient.private_key_path == "/etc/opengp/nhs-login.pem"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OPENGP_OIDC_STAFF_CLIENT_ID": "x"}, "without OPENGP_OIDC_STAFF_ISSUER"),
        ({"OPENGP_OIDC_STAFF_ISSUER": "http://cis2.example"}, "https URL"),
        ({"OPENGP_OIDC_STAFF_ISSUER": ISSUER}, "CLIENT_ID is required"),
        (
            {"OPENGP_OIDC_STAFF_ISSUER": ISSUER, "OPENGP_OIDC_STAFF_CLIENT_ID": "x"},
            "set one of",
        ),
        (
            {
                "OPENGP_OIDC_PATIENT_ISSUER": ISSUER,
                "OPENGP_OIDC_PATIENT_CLIENT_ID": "x",
                "OPENGP_OIDC_PATIENT_CLIENT_SECRET": "y",
                "OPENGP_OIDC_PATIENT_SCOPE": "profile",
            },
            "must include openid",
        ),
    ],
)
def test_a_provider_half_configured_is_an_error(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Settings.from_env(env)


def test_only_https_or_this_machine() -> None:
    assert https_or_loopback("https://auth.login.nhs.uk/authorize")
    assert https_or_loopback("http://127.0.0.1:8000/oauth2/token")
    assert https_or_loopback("http://[::1]:8000/x")
    assert not https_or_loopback("http://auth.login.nhs.uk/authorize")
    assert not https_or_loopback("http://127.0.0.1.evil.example/")
    assert not https_or_loopback("file:///etc/passwd")


CIS2_ROLES: dict[str, Any] = {
    "nhsid_nrbac_roles": [
        {
            "person_orgid": "555254239107",
            "person_roleid": "555254240100",
            "org_code": "A12345",
            "role_name": '"Clinical":"Clinical Provision":"Nurse Access Role"',
            "role_code": "S8000:G8000:R8001",
        },
        {
            "person_roleid": "555254240101",
            "org_code": "RR8",
            "role_name": '"Clinical":"Clinical Provision":"Clinical Practitioner Access Role"',
            "role_code": "S8000:G8000:R8000",
        },
        {"person_roleid": "555254240102", "org_code": "A12345", "role_code": "S0080:G0450:R5080"},
        "not a role",
        {"role_code": 42},
    ]
}


def test_the_roles_are_those_nhs_cis2_and_the_account_both_hold() -> None:
    roles = usable_roles(CIS2_ROLES, frozenset({"R8000", "R8001", "R8015"}), None)
    assert [(r.code, r.org_code, r.person_roleid) for r in roles] == [
        ("R8001", "A12345", "555254240100"),
        ("R8000", "RR8", "555254240101"),
    ]
    at_practice = usable_roles(CIS2_ROLES, frozenset({"R8000", "R8001"}), "A12345")
    assert [r.code for r in at_practice] == ["R8001"]
    assert usable_roles(CIS2_ROLES, frozenset({"R8009"}), None) == ()
    assert usable_roles({}, frozenset({"R8000"}), None) == ()


def test_the_discovery_document_must_name_the_issuer_and_safe_urls() -> None:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorize",
        "token_endpoint": ISSUER + "/access_token",
        "jwks_uri": ISSUER + "/connect/jwk_uri",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
    }
    assert ProviderMetadata.of(document, ISSUER).algorithms == ("RS256",)
    for bad in (
        {"issuer": "https://elsewhere.example"},
        {"token_endpoint": "http://auth.example.nhs.uk/token"},
        {"id_token_signing_alg_values_supported": ["HS256", "none"]},
    ):
        with pytest.raises(Exception, match="provider"):
            ProviderMetadata.of({**document, **bad}, ISSUER)


def test_private_key_jwt_signs_the_token_request(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048)
    pem = tmp_path / "client.pem"
    pem.write_bytes(key.as_pem(private=True))
    token_url = ISSUER + "/access_token"
    party = RelyingParty(
        OidcProvider(ISSUER, "opengp", None, str(pem), "openid profile"), http=None
    )
    party._metadata = (  # discovery, as if fetched just now
        party.clock(),
        ProviderMetadata(
            ISSUER, ISSUER + "/authorize", token_url, ISSUER + "/jwks", None, ("RS256",)
        ),
    )
    client = party._client("https://gp.example/patient/sign-in/oidc/callback")
    auth = client.client_auth(client.token_endpoint_auth_method)
    _, headers, body = auth.prepare("POST", token_url, {}, "grant_type=authorization_code")
    sent = {name: values[0] for name, values in parse_qs(body).items()}
    assert "Authorization" not in headers
    assert sent["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = jwt.decode(sent["client_assertion"], key, algorithms=["RS512"])
    assert assertion.header["alg"] == "RS512"  # as NHS login asks
    assert assertion.header["kid"] == key.thumbprint()
    claims = assertion.claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("opengp", "opengp", token_url)
    assert claims["jti"] and claims["exp"] > claims["iat"]
