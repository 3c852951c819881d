"""OpenID Connect sign-in to the screens, against a real OpenID provider: a second OpenGP
(`opengp serve` on loopback, its own SQLite database, accounts and signing key), standing in
for NHS CIS2 (staff, with their national RBAC roles) and NHS login (patients, with their NHS
number). This OpenGP (in-process, on both databases) is the relying party; the browser is
driven by hand across the two hosts: every redirect followed, every cookie carried.

Covered: success; the role chosen when NHS CIS2 gives several, and the session acting in
that role only; a wrong state, a missing flow, a replayed code, an ID token for another
audience, a subject not linked here, a patient without an account here; the buttons only
when configured.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from joserfc.jwk import RSAKey
from starlette.testclient import TestClient

from opengp.access import accounts, identities, sessions
from opengp.app import create_app
from opengp.cli import main
from opengp.config import OidcProvider, Settings
from opengp.services.oauth import add_client
from opengp.services.oidc import OidcFailed, RelyingParty
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.audit import query_audit
from tests.functional.server import Server

pytestmark = pytest.mark.slow

RP = "https://rp.test"
PASSWORD = "a long enough passphrase 42"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
STAFF_SCOPE = "openid profile nationalrbacaccess"
APP = "https://app.example/callback"


# ---- the provider: a second OpenGP --------------------------------------------------------


@dataclass
class Provider:
    server: Server
    store: SqlStore

    @property
    def issuer(self) -> str:
        return self.server.url

    def user(self, kind: str, roles: tuple[str, ...] = (), **fields: Any) -> tuple[str, str]:
        """A new account there, with its own password: (username, account id)."""
        username = f"{kind}.{uuid.uuid4().hex[:8]}"
        with self.store.writing() as tx:
            made = accounts.create_user(
                tx.conn,
                username=username,
                kind=kind,
                display_name=f"Op {username}",
                roles=roles,
                with_totp=False,
                **fields,
            )
            accounts.change_password(tx.conn, made.user_id, made.one_time_password, PASSWORD)
        return username, made.user_id

    def client(self, redirect_uris: list[str], scopes: str, public: bool = False) -> Any:
        return add_client(
            self.store, "OpenGP", scopes, "direct-care", redirect_uris=redirect_uris, public=public
        )


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    where = tmp_path_factory.mktemp("provider")
    key = where / "key.pem"
    key.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    url = f"sqlite:///{where / 'provider.db'}"
    store = SqlStore.from_url(url)
    upgrade(store.engine)
    server = Server(url, where / "serve.log", key).start()
    try:
        yield Provider(server, store)
    finally:
        server.stop()
        store.dispose()


def save_patient(store: SqlStore, nhs_number: str, born: str) -> str:
    patient_id = uuid.uuid4().hex
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER, "value": nhs_number}],
        "name": [{"family": "Smith", "given": ["Jo"]}],
        "birthDate": born,
    }
    with store.writing() as tx:
        tx.save("Patient", patient_id, body, method="PUT", previous=None)
    return patient_id


# ---- the relying party: this OpenGP -------------------------------------------------------


@dataclass
class Party:
    http: TestClient
    store: SqlStore
    client_id: str


@pytest.fixture
def party(
    provider: Provider, database_url: str, key_file: Path, store: SqlStore
) -> Iterator[Party]:
    callbacks = [f"{RP}/staff/sign-in/oidc/callback", f"{RP}/patient/sign-in/oidc/callback"]
    client_id, secret = provider.client(callbacks, f"{STAFF_SCOPE} fhirUser")
    settings = Settings(
        database_url=database_url,
        signing_key_path=str(key_file),
        oidc_staff=OidcProvider(provider.issuer, client_id, secret, scope=STAFF_SCOPE),
        oidc_patient=OidcProvider(provider.issuer, client_id, secret, scope="openid profile"),
    )
    with TestClient(create_app(settings, store), base_url=RP, follow_redirects=False) as http:
        yield Party(http, store, client_id)


def local_staff(party: Party, roles: tuple[str, ...], issuer: str, subject: str | None) -> str:
    with party.store.writing() as tx:
        made = accounts.create_user(
            tx.conn,
            username=f"local.{uuid.uuid4().hex[:8]}",
            kind="staff",
            display_name="Dr Local",
            roles=roles,
            with_totp=True,
        )
        if subject is not None:
            identities.link(tx.conn, made.user_id, issuer, subject, party.store.clock())
    return made.user_id


# ---- the browser --------------------------------------------------------------------------


def hidden_fields(page: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {unescape(name): unescape(value) for name, value in fields}


def at_provider(location: str, username: str) -> str:
    """Sign in at the provider's page; the URL it sends the browser back to."""
    assert location.startswith("http://127.0.0.1:"), location
    page = httpx.get(location)
    assert page.status_code == 200, page.text
    # Its form cookie is Secure, which httpx keeps back over http: carry it by hand.
    cookie = re.search(r"opengp_authorize=([^;]+)", page.headers["set-cookie"])
    assert cookie is not None
    form = {**hidden_fields(page.text), "username": username, "password": PASSWORD, "totp": ""}
    url = location.split("?")[0]
    back = httpx.post(url, data=form, headers={"Cookie": f"opengp_authorize={cookie.group(1)}"})
    assert back.status_code == 303, back.text
    returned: str = back.headers["location"]
    return returned


def leave(party: Party, area: str) -> str:
    """Start at our sign-in page; where we are sent (the provider's authorization URL)."""
    page = party.http.get(f"/{area}/sign-in")
    assert f'href="/{area}/sign-in/oidc"' in page.text
    off = party.http.get(f"/{area}/sign-in/oidc")
    assert off.status_code == 303, off.text
    assert "__Host-opengp-oidc" in party.http.cookies
    location: str = off.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [party.client_id]
    assert {"state", "nonce", "code_challenge"} <= query.keys()
    return location


def sign_in(party: Party, area: str, username: str) -> Any:
    """The whole dance; our answer to the provider's redirect back."""
    back = at_provider(leave(party, area), username)
    assert back.startswith(f"{RP}/{area}/sign-in/oidc/callback?")
    return party.http.get(back)


def signins(store: SqlStore) -> list[Any]:
    with store.reading() as tx:
        return [e for e in query_audit(tx.conn, count=50) if e.action == "signin"]


def session_roles(party: Party) -> frozenset[str]:
    token = party.http.cookies["__Host-opengp-session"]
    with party.store.reading() as tx:
        found = sessions.find(tx.conn, token, party.store.clock())
        assert found is not None
        return sessions.principal_of(tx.conn, found, party.store.clock()).roles


# ---- staff: NHS CIS2 ----------------------------------------------------------------------


def test_a_linked_member_of_staff_signs_in_in_the_one_role_both_sides_know(
    provider: Provider, party: Party
) -> None:
    username, subject = provider.user("staff", ("R8000", "R8001"))
    me = local_staff(party, ("R8000", "R8015"), provider.issuer, subject)
    answer = sign_in(party, "staff", username)
    assert answer.status_code == 303 and answer.headers["location"] == "/staff"
    assert "__Host-opengp-oidc" not in party.http.cookies  # the flow is over
    home = party.http.get("/staff")
    assert home.status_code == 200 and "Dr Local" in home.text
    assert "Clinical Practitioner Access Role" in home.text
    assert "Systems Support" not in home.text  # the session acts in R8000 only
    assert session_roles(party) == frozenset({"R8000"})
    latest = signins(party.store)[0]
    assert (latest.principal, latest.outcome) == (f"staff/{me}", "success")
    assert '"via":"oidc"' in (latest.detail or "") and '"role":"R8000"' in (latest.detail or "")


def test_several_roles_the_member_of_staff_chooses_one(provider: Provider, party: Party) -> None:
    username, subject = provider.user("staff", ("R8000", "R8001", "R8009"))
    local_staff(party, ("R8000", "R8001"), provider.issuer, subject)
    page = sign_in(party, "staff", username)
    assert page.status_code == 200 and "Choose your role" in page.text
    assert "__Host-opengp-session" not in party.http.cookies
    assert "Nurse Access Role" in page.text and "Receptionist" not in page.text
    fields = hidden_fields(page.text)
    nothing = party.http.post("/staff/sign-in/oidc/role", data=fields)
    assert nothing.status_code == 400 and "Choose the role" in nothing.text
    other = party.http.post("/staff/sign-in/oidc/role", data={**fields, "role": "R8009"})
    assert other.status_code == 400  # held at the provider, not here
    tampered = {**fields, "role_token": fields["role_token"].replace("R8001", "R8015")}
    assert party.http.post("/staff/sign-in/oidc/role", data=tampered).status_code == 400
    chosen = party.http.post(
        "/staff/sign-in/oidc/role", data={**hidden_fields(nothing.text), "role": "R8001"}
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/staff"
    assert session_roles(party) == frozenset({"R8001"})
    home = party.http.get("/staff").text
    assert "Nurse Access Role" in home and "Clinical Practitioner" not in home


def test_a_subject_not_linked_here_is_refused_with_what_to_ask_for(
    provider: Provider, party: Party
) -> None:
    username, subject = provider.user("staff", ("R8000",))
    local_staff(party, ("R8000",), provider.issuer, None)  # an account, but not linked
    answer = sign_in(party, "staff", username)
    assert answer.status_code == 403
    assert "not linked to an account at this practice" in answer.text and subject in answer.text
    assert "__Host-opengp-session" not in party.http.cookies
    latest = signins(party.store)[0]
    assert (latest.outcome, latest.principal) == ("failed", "anonymous")
    assert "unlinked" in (latest.detail or "") and subject not in (latest.detail or "")


def test_no_role_in_common_is_refused(provider: Provider, party: Party) -> None:
    username, subject = provider.user("staff", ("R8009",))
    local_staff(party, ("R8000",), provider.issuer, subject)
    answer = sign_in(party, "staff", username)
    assert answer.status_code == 403 and "None of the roles" in answer.text


def test_a_wrong_state_or_no_flow_is_refused_and_the_code_stays_unused(
    provider: Provider, party: Party
) -> None:
    username, subject = provider.user("staff", ("R8000",))
    local_staff(party, ("R8000",), provider.issuer, subject)
    back = at_provider(leave(party, "staff"), username)
    # An attacker's callback (login CSRF): their code, with a state this browser never sent.
    forged = re.sub(r"state=[^&]+", "state=" + secrets.token_urlsafe(24), back)
    refused = party.http.get(forged)
    assert refused.status_code == 400 and "please start again" in refused.text
    assert "__Host-opengp-session" not in party.http.cookies
    # The flow is gone with the refusal: even the right state no longer works here ...
    assert party.http.get(back).status_code == 400
    assert [e.outcome for e in signins(party.store)[:2]] == ["failed", "failed"]
    assert "state" in (signins(party.store)[1].detail or "")
    assert "no-flow" in (signins(party.store)[0].detail or "")


def test_a_replayed_code_is_refused_by_the_provider(provider: Provider, party: Party) -> None:
    username, subject = provider.user("staff", ("R8000",))
    local_staff(party, ("R8000",), provider.issuer, subject)
    back = at_provider(leave(party, "staff"), username)
    flow = party.http.cookies["__Host-opengp-oidc"]
    assert party.http.get(back).status_code == 303
    # Someone who copied the callback and the flow cookie tries them again.
    party.http.cookies.clear()
    party.http.cookies.set("__Host-opengp-oidc", flow, domain="rp.test")
    again = party.http.get(back)
    assert again.status_code == 400 and "please start again" in again.text
    assert "__Host-opengp-session" not in party.http.cookies
    assert "code-refused" in (signins(party.store)[0].detail or "")


def test_an_id_token_for_another_audience_is_refused(provider: Provider) -> None:
    """A genuine ID token from the provider, for another app (the same nonce, even): the
    relying party's own check refuses it; only its audience may use it."""
    username, _ = provider.user("staff", ("R8000",))
    ours, secret = provider.client([f"{RP}/staff/sign-in/oidc/callback"], STAFF_SCOPE)
    theirs, _ = provider.client([APP], "openid profile", public=True)
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": theirs,
        "redirect_uri": APP,
        "scope": "openid profile",
        "state": "s",
        "nonce": "the-nonce",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    location = str(httpx.URL(f"{provider.issuer}/oauth2/authorize", params=query))
    code = parse_qs(urlsplit(at_provider(location, username)).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP}
    form |= {"client_id": theirs, "code_verifier": verifier}
    token = httpx.post(f"{provider.issuer}/oauth2/token", data=form).json()
    id_token = token["id_token"]
    mine = RelyingParty(OidcProvider(provider.issuer, ours, secret, scope=STAFF_SCOPE))
    with pytest.raises(OidcFailed) as refused:
        mine.id_token_claims(id_token, "the-nonce")
    assert refused.value.reason == "id-token-aud"
    # The app it was issued to accepts it, with its nonce only.
    app = RelyingParty(OidcProvider(provider.issuer, theirs, "unused", scope="openid"))
    assert app.id_token_claims(id_token, "the-nonce")["aud"] == theirs
    with pytest.raises(OidcFailed) as replayed:
        app.id_token_claims(id_token, "another-nonce")
    assert replayed.value.reason == "id-token-nonce"


# ---- patients: NHS login ------------------------------------------------------------------


def test_a_patient_is_found_by_the_nhs_number_the_provider_verified(
    provider: Provider, party: Party
) -> None:
    there = save_patient(provider.store, "9434765919", "1970-05-01")
    username, _ = provider.user("patient", fhir_user=f"Patient/{there}")
    here = save_patient(party.store, "9434765919", "1970-05-01")
    with party.store.writing() as tx:
        mine = accounts.create_user(
            tx.conn,
            username="jo.smith",
            kind="patient",
            display_name="Jo Smith",
            fhir_user=f"Patient/{here}",
            with_totp=False,
        )
    page = party.http.get("/patient/sign-in")
    assert "Continue with NHS login" in page.text and "nhsuk-button--login" in page.text
    answer = sign_in(party, "patient", username)
    assert answer.status_code == 303 and answer.headers["location"] == "/patient"
    home = party.http.get("/patient")
    assert home.status_code == 200 and "Jo Smith" in home.text
    assert signins(party.store)[0].principal == f"patient/{mine.user_id}"
    with party.store.reading() as tx:
        assert identities.of_account(tx.conn, mine.user_id) == []  # found, not linked


def test_a_patient_without_an_account_here_is_told_so_and_none_is_made(
    provider: Provider, party: Party
) -> None:
    there = save_patient(provider.store, "9434765870", "1980-01-02")
    username, _ = provider.user("patient", fhir_user=f"Patient/{there}")
    save_patient(party.store, "9434765870", "1980-01-02")  # registered, but no account
    answer = sign_in(party, "patient", username)
    assert answer.status_code == 403 and "could not find your GP online services" in answer.text
    with party.store.reading() as tx:
        assert accounts.list_accounts(tx.conn) == []


def test_a_different_date_of_birth_finds_nobody(provider: Provider, party: Party) -> None:
    there = save_patient(provider.store, "9434765927", "1990-03-03")
    username, _ = provider.user("patient", fhir_user=f"Patient/{there}")
    here = save_patient(party.store, "9434765927", "1991-03-03")
    with party.store.writing() as tx:
        accounts.create_user(
            tx.conn,
            username="someone",
            kind="patient",
            display_name="Someone",
            fhir_user=f"Patient/{here}",
            with_totp=False,
        )
    assert sign_in(party, "patient", username).status_code == 403


# ---- configuration ------------------------------------------------------------------------


def test_without_a_provider_there_is_no_button_and_no_route(
    settings_without: Settings, store: SqlStore
) -> None:
    with TestClient(create_app(settings_without, store), base_url=RP) as http:
        assert "oidc" not in http.get("/staff/sign-in").text
        assert http.get("/staff/sign-in/oidc").status_code == 404
        assert http.get("/patient/sign-in/oidc/callback?code=x&state=y").status_code == 404


@pytest.fixture
def settings_without(database_url: str, key_file: Path) -> Settings:
    return Settings(database_url=database_url, signing_key_path=str(key_file))


def test_the_provider_publishes_userinfo(provider: Provider) -> None:
    metadata = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    assert metadata["userinfo_endpoint"] == f"{provider.issuer}/oauth2/userinfo"
    assert "nhsid_nrbac_roles" in metadata["claims_supported"]
    refused = httpx.get(metadata["userinfo_endpoint"], headers={"Authorization": "Bearer x"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# ---- the administrator's link ---------------------------------------------------------------


def test_opengp_users_link_and_unlink(
    database_url: str, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.writing() as tx:
        made = accounts.create_user(
            tx.conn,
            username="a.patel",
            kind="staff",
            display_name="Dr A Patel",
            roles=["R8000"],
            with_totp=True,
        )
    issuer, subject = "https://cis2.example/realms/oidc", "555254240100"
    link = ["users", "link", "--username", "A.Patel", "--issuer", issuer + "/"]
    assert main([*link, "--subject", subject, "--database", database_url]) == 0
    assert "Linked account 'a.patel'" in capsys.readouterr().out
    with store.reading() as tx:
        found = identities.find(tx.conn, issuer, subject)
    assert found is not None and found.user_id == made.user_id
    # The same identity cannot open a second account; an unknown username is an error.
    with store.writing() as tx:
        other = accounts.create_user(
            tx.conn,
            username="b.other",
            kind="staff",
            display_name="B",
            roles=["R8001"],
            with_totp=True,
        )
    taken = ["users", "link", "--username", "b.other", "--issuer", issuer, "--subject", subject]
    assert main([*taken, "--database", database_url]) == 1
    assert "already linked to another account" in capsys.readouterr().err
    nobody = ["users", "link", "--username", "nobody", "--issuer", issuer, "--subject", "x"]
    assert main([*nobody, "--database", database_url]) == 1
    unlink = ["users", "unlink", "--issuer", issuer, "--subject", subject]
    assert main([*unlink, "--database", database_url]) == 0
    assert main([*unlink, "--database", database_url]) == 1
    with store.reading() as tx:
        assert identities.of_account(tx.conn, made.user_id) == []
        assert identities.of_account(tx.conn, other.user_id) == []
