"""The account screens over HTTP on both databases: Systems Support adds a staff account
(whose one-time password then signs in), gives a new password or authenticator app,
disables and enables accounts after confirming, and sets a patient's online record access;
every action is audited, and no other role may use the screens."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import orjson
from starlette.testclient import TestClient

from opengp.access import accounts, online_access
from opengp.access.accounts import CreatedUser
from opengp.access.policy import OnlineLevel
from opengp.store.sql import SqlStore
from opengp.store.sql.audit import query_audit
from tests.functional.test_admin_screens import error_summary
from tests.functional.test_web_sessions import (
    NEW_PASSWORD,
    code_for,
    hidden,
    http,
    settings,
    sign_in,
    signed_in_staff,
)

__all__ = ["http", "settings"]  # fixtures, from the session tests

ACCOUNTS = "/staff/accounts"


def signed_in_manager(http: TestClient, store: SqlStore) -> CreatedUser:
    """Systems Support (R8015) through their first sign-in."""
    with store.writing() as tx:
        user = accounts.create_user(
            tx.conn,
            username="it.support",
            kind="staff",
            display_name="Sam Support",
            roles=["R8015"],
            organization_id="practice-1",
            with_totp=True,
        )
    first_sign_in(http, store, user)
    return user


def first_sign_in(http: TestClient, store: SqlStore, user: CreatedUser) -> None:
    answer = sign_in(http, "staff", user.username, user.one_time_password, code_for(store, user))
    assert answer.status_code == 200 and "Create a new password" in answer.text, answer.text
    form = {name: hidden(answer.text, name) for name in ("form_token", "change_token")}
    form |= {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    done = http.post("/staff/new-password", data=form)
    assert done.status_code == 303 and done.headers["location"] == "/staff"


def shown(page: str, id: str) -> str:
    found = re.search(rf'<code id="{id}">([^<]*)</code>', page)
    assert found, f"no {id} on the page"
    return unescape(found.group(1))


def post(http: TestClient, url: str, **fields: str) -> Any:
    token = hidden(http.get(ACCOUNTS).text, "csrf_token")
    return http.post(url, data={"csrf_token": token, **fields})


def detail_of(entry: Any) -> dict[str, Any]:
    detail: dict[str, Any] = orjson.loads(entry.detail or "{}")
    return detail


def trail(store: SqlStore) -> list[Any]:
    with store.reading() as tx:
        return query_audit(tx.conn, count=200)


def test_systems_support_adds_an_account_that_signs_in_with_its_one_time_password(
    http: TestClient, store: SqlStore
) -> None:
    manager = signed_in_manager(http, store)
    home = http.get("/staff")
    assert 'href="/staff/accounts"' in home.text
    page = http.get(f"{ACCOUNTS}/new")
    assert page.status_code == 200
    token = hidden(page.text, "csrf_token")
    bad = http.post(f"{ACCOUNTS}/new", data={"csrf_token": token, "name": "", "username": "x"})
    assert bad.status_code == 400
    assert error_summary(bad.text) == [
        "Enter the person's full name",
        "Enter a username of 3 to 64 letters, numbers or . _ @ -, starting with a letter or number",
        "Select at least one access role",
    ]
    form = {"csrf_token": token, "name": "Dr Asha Patel", "username": "asha.patel"}
    made = http.post(f"{ACCOUNTS}/new", data=form | {"role_R8000": "R8000"})
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    password = shown(made.text, "one-time-password")
    secret = shown(made.text, "authenticator-key")
    again = http.post(f"{ACCOUNTS}/new", data=form | {"role_R8000": "R8000"})
    assert error_summary(again.text) == ["This username is already taken: choose another"]

    with store.reading() as tx:
        created = next(a for a in accounts.list_accounts(tx.conn) if a.username == "asha.patel")
    assert created.roles == frozenset({"R8000"}) and created.organization_id == "practice-1"
    listing = http.get(ACCOUNTS)
    assert "Dr Asha Patel" in listing.text and "Must choose a password" in listing.text
    entries = [
        e for e in trail(store) if e.action == "create" and e.principal.endswith(manager.user_id)
    ]
    assert entries and detail_of(entries[0])["what"] == "new staff account"

    http.cookies.clear()
    newcomer = CreatedUser(created.id, "asha.patel", password, totp_secret=secret)
    first_sign_in(http, store, newcomer)
    assert "Dr Asha Patel" in http.get("/staff").text
    # A clinician may not use the account screens.
    assert http.get(ACCOUNTS).status_code == 403


def test_new_password_new_authenticator_disable_and_enable(
    http: TestClient, store: SqlStore
) -> None:
    signed_in_manager(http, store)
    with store.writing() as tx:
        other = accounts.create_user(
            tx.conn,
            username="gp.two",
            kind="staff",
            display_name="Dr Two",
            roles=["R8000"],
            with_totp=True,
        )
    page = http.get(f"{ACCOUNTS}/{other.user_id}")
    assert page.status_code == 200 and "Dr Two" in page.text
    fresh = post(http, f"{ACCOUNTS}/{other.user_id}/password")
    assert fresh.status_code == 200
    password = shown(fresh.text, "one-time-password")
    assert password != other.one_time_password
    factor = post(http, f"{ACCOUNTS}/{other.user_id}/second-factor")
    secret = shown(factor.text, "authenticator-key")
    assert secret != other.totp_secret

    confirm = http.get(f"{ACCOUNTS}/{other.user_id}/status?to=disable")
    assert confirm.status_code == 200 and "Yes, disable the account" in confirm.text
    done = post(http, f"{ACCOUNTS}/{other.user_id}/status", to="disable")
    assert done.status_code == 303
    assert "Account disabled" in http.get(done.headers["location"]).text
    with store.reading() as tx:
        account = accounts.get_account(tx.conn, other.user_id)
    assert account is not None and account.disabled
    assert post(http, f"{ACCOUNTS}/{other.user_id}/status", to="enable").status_code == 303
    with store.reading() as tx:
        account = accounts.get_account(tx.conn, other.user_id)
    assert account is not None and not account.disabled and account.must_change_password
    what = [detail_of(e).get("what") for e in trail(store) if e.action == "update"]
    assert {
        "new one-time password",
        "new authenticator secret",
        "account disabled",
        "account enabled",
    } <= set(what)
    # Nothing else: odd requests are answered, never a crash.
    assert http.get(f"{ACCOUNTS}/nobody").status_code == 404
    assert http.get(f"{ACCOUNTS}/{other.user_id}/status?to=explode").status_code == 400
    assert post(http, f"{ACCOUNTS}/{other.user_id}/status", to="").status_code == 400
    me = next(a for a in _accounts(store) if a.username == "it.support")
    assert http.get(f"{ACCOUNTS}/{me.id}/status?to=disable").status_code == 400


def _accounts(store: SqlStore) -> list[accounts.Account]:
    with store.reading() as tx:
        return accounts.list_accounts(tx.conn)


def test_setting_a_patients_online_access(http: TestClient, store: SqlStore) -> None:
    signed_in_manager(http, store)
    patient = {
        "resourceType": "Patient",
        "id": "p-online",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "name": [{"family": "Smith", "given": ["Jo"]}],
    }
    with store.writing() as tx:
        tx.create_many([patient])
    find = http.get("/staff/accounts/online-access?nhs_number=943 476 5918")
    assert find.status_code == 400
    assert error_summary(find.text) == ["That is not a valid NHS number: check it and try again"]
    found = http.get("/staff/accounts/online-access?nhs_number=943 476 5919")
    assert found.status_code == 303
    page = http.get(found.headers["location"])
    assert "Jo Smith" in page.text and "The practice default" in page.text
    url = found.headers["location"]
    token = hidden(page.text, "csrf_token")
    wrong = http.post(url, data={"csrf_token": token, "level": "summary", "history": "from"})
    assert wrong.status_code == 400
    assert error_summary(wrong.text) == [
        "Enter the date access starts from as a real date, like 31 10 2023"
    ]
    form = {"csrf_token": token, "level": "summary", "history": "from"}
    form |= {"since-day": "31", "since-month": "10", "since-year": "2023"}
    saved = http.post(url, data=form)
    assert saved.status_code == 303
    assert "Online record access saved" in http.get(saved.headers["location"]).text
    with store.reading() as tx:
        access = online_access.patient_access(tx, "p-online")
    assert access.level is OnlineLevel.SUMMARY and str(access.since) == "2023-10-31"
    # Saving again updates the same Consent (one per patient), with its Provenance.
    http.post(url, data=form | {"level": "detailed", "history": "full"})
    with store.reading() as tx:
        assert len(online_access.consents(tx, "p-online")) == 1
        assert online_access.patient_access(tx, "p-online").level is OnlineLevel.DETAILED
    entries = [e for e in trail(store) if e.resource_type == "Consent"]
    assert [e.action for e in entries][:2] == ["update", "create"]
    assert all(e.patient_id == "p-online" for e in entries)


def test_only_systems_support_may_use_the_account_screens(
    http: TestClient, store: SqlStore
) -> None:
    signed_in_staff(http, store)  # a GP (R8000)
    assert "/staff/accounts" not in http.get("/staff").text
    for url in (ACCOUNTS, f"{ACCOUNTS}/new", "/staff/accounts/online-access"):
        assert http.get(url).status_code == 403, url
    token = hidden(http.get("/staff").text, "csrf_token")
    refused = http.post(f"{ACCOUNTS}/new", data={"csrf_token": token, "name": "X"})
    assert refused.status_code == 403
    denied = [e for e in trail(store) if e.outcome == "denied"]
    assert len(denied) >= 4
