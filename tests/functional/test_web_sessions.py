"""Screen sessions over HTTP, on both databases: signing in (one-time password, new password,
TOTP), cookie flags, CSRF tokens and origin checks, idle and absolute timeouts, sign-out,
the separation of the staff and patient areas, and the audit trail of it all."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from opengp.access import accounts, sessions, totp
from opengp.access.accounts import CreatedUser
from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import login_session
from opengp.store.sql.audit import query_audit
from tests.functional.server import http, settings

NEW_PASSWORD = "correct horse battery staple"
SESSION = "__Host-opengp-session"
FORM = "__Host-opengp-form"

__all__ = ["http", "settings"]  # the fixtures of the screen tests


def new_account(store: SqlStore, username: str, kind: str = "staff") -> CreatedUser:
    fields: dict[str, object] = {"roles": ["R8000"]} if kind == "staff" else {}
    if kind == "patient":
        fields["fhir_user"] = "Patient/p1"
    with store.writing() as tx:
        return accounts.create_user(
            tx.conn,
            username=username,
            kind=kind,
            display_name=f"Dr {username.title()}" if kind == "staff" else "Jo Bloggs",
            with_totp=kind == "staff",
            **fields,
        )


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert found, f"no hidden {name} in the page"
    return unescape(found.group(1))


def code_for(store: SqlStore, user: CreatedUser, step: int = 0) -> str:
    assert user.totp_secret is not None
    return totp.code_at(user.totp_secret, store.clock() + timedelta(seconds=30 * step))


def sign_in(
    http: TestClient, area: str, username: str, password: str, code: str = "", **headers: str
) -> Any:
    page = http.get(f"/{area}/sign-in").text
    form = {"form_token": hidden(page, "form_token"), "username": username}
    form |= {"password": password, "code": code}
    return http.post(f"/{area}/sign-in", data=form, headers=headers)


def first_sign_in(http: TestClient, area: str, username: str, password: str, code: str = "") -> Any:
    """Signing in with the one-time password (and code), then choosing a new password: the
    answer to the new password."""
    answer = sign_in(http, area, username, password, code)
    form = {name: hidden(answer.text, name) for name in ("form_token", "change_token")}
    form |= {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    return http.post(f"/{area}/new-password", data=form)


def signed_in_staff(http: TestClient, store: SqlStore, username: str = "gp.one") -> CreatedUser:
    """A staff member through the whole first sign-in: one-time password and code, then a
    new password; the browser then holds a session."""
    user = new_account(store, username)
    answer = sign_in(http, "staff", username, user.one_time_password, code_for(store, user))
    assert answer.status_code == 200 and "Create a new password" in answer.text
    page = answer.text
    form = {name: hidden(page, name) for name in ("form_token", "change_token")}
    form |= {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    done = http.post("/staff/new-password", data=form)
    assert done.status_code == 303 and done.headers["location"] == "/staff"
    return user


def csrf(http: TestClient, area: str) -> str:
    return hidden(http.get(f"/{area}").text, "csrf_token")


def trail(store: SqlStore, action: str) -> list[Any]:
    with store.reading() as tx:
        return [e for e in query_audit(tx.conn, count=100) if e.action == action]


def test_a_first_staff_sign_in_replaces_the_one_time_password(
    http: TestClient, store: SqlStore
) -> None:
    user = new_account(store, "gp.first")
    # The account has an authenticator app: the code is required with the password.
    missing = sign_in(http, "staff", "gp.first", user.one_time_password)
    assert missing.status_code == 400 and "Enter the 6-digit code" in missing.text
    assert 'href="#code"' in missing.text
    answer = sign_in(http, "staff", "gp.first", user.one_time_password, code_for(store, user))
    page = answer.text
    assert "Create a new password" in page and SESSION not in http.cookies
    form = {name: hidden(page, name) for name in ("form_token", "change_token")}
    mismatch = http.post(
        "/staff/new-password",
        data={**form, "new_password": NEW_PASSWORD, "confirm_password": "something else"},
    )
    assert mismatch.status_code == 400 and "The passwords do not match" in mismatch.text
    assert 'href="#confirm_password"' in mismatch.text  # the error summary links the field
    weak = http.post(
        "/staff/new-password", data={**form, "new_password": "short", "confirm_password": "short"}
    )
    assert weak.status_code == 400 and "at least 12 characters" in weak.text
    good = {**form, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    done = http.post("/staff/new-password", data=good)
    assert done.status_code == 303 and done.headers["location"] == "/staff"
    home = http.get("/staff")
    assert home.status_code == 200 and "Dr Gp.First" in home.text and "Sign out" in home.text
    # The token vouched for the one-time password, which is gone: it works once.
    again = http.post("/staff/new-password", data=good)
    assert again.status_code == 400 and "timed out" in again.text
    # From now on the new password (and a fresh code) sign in straight to the home page.
    http.cookies.clear()
    later = sign_in(http, "staff", "gp.first", NEW_PASSWORD, code_for(store, user, 1))
    assert later.status_code == 303 and later.headers["location"] == "/staff"
    outcomes = [entry.outcome for entry in trail(store, "signin")]
    assert outcomes == ["success", "success", "failed"]  # newest first


def test_the_cookies_are_host_only_secure_and_out_of_reach_of_scripts(
    http: TestClient, store: SqlStore
) -> None:
    form_cookie = http.get("/staff/sign-in").headers["set-cookie"]
    assert form_cookie.startswith(f"{FORM}=")
    for flag in ("HttpOnly", "Path=/", "SameSite=strict", "Secure"):
        assert flag in form_cookie
    user = new_account(store, "gp.cookie")
    done = first_sign_in(http, "staff", "gp.cookie", user.one_time_password, code_for(store, user))
    session_cookie = done.headers["set-cookie"]
    assert session_cookie.startswith(f"{SESSION}=")
    for flag in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
        assert flag in session_cookie
    assert "domain" not in session_cookie.lower() and "max-age" not in session_cookie.lower()
    # Only the token's hash is kept.
    token = http.cookies[SESSION]
    with store.reading() as tx:
        stored = tx.conn.execute(select(login_session.c.token_hash)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert http.get("/staff").headers["Cache-Control"] == "no-store"


def test_posts_without_the_right_token_or_from_elsewhere_are_refused(
    http: TestClient, store: SqlStore
) -> None:
    signed_in_staff(http, store)
    token = csrf(http, "staff")
    for form in ({"x": "1"}, {"csrf_token": "wrong"}, {"csrf_token": "ünïcode"}):
        answer = http.post("/staff/sign-out", data=form)
        assert answer.status_code == 403, form
        assert http.get("/staff").status_code == 200  # still signed in
    for headers in (
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    ):
        answer = http.post("/staff/sign-out", data={"csrf_token": token}, headers=headers)
        assert answer.status_code == 403, headers
    # A browser's own form post: Origin null (no-referrer pages) with Fetch Metadata.
    ours = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    out = http.post("/staff/sign-out", data={"csrf_token": token}, headers=ours)
    assert out.status_code == 303 and out.headers["location"] == "/staff/signed-out"
    assert SESSION not in http.cookies
    assert http.get("/staff").headers["location"] == "/staff/sign-in"
    assert len(trail(store, "signout")) == 1


def test_sign_in_forms_need_this_browsers_token(http: TestClient, store: SqlStore) -> None:
    user = new_account(store, "gp.login.csrf")
    code = code_for(store, user)
    creds = {"username": "gp.login.csrf", "password": user.one_time_password, "code": code}
    assert http.post("/staff/sign-in", data=creds).status_code == 400  # no token
    page = http.get("/staff/sign-in").text
    token = hidden(page, "form_token")
    http.cookies.clear()  # another browser: the token is bound to the form cookie
    answer = http.post("/staff/sign-in", data={**creds, "form_token": token})
    assert answer.status_code == 400 and "timed out" in answer.text
    evil = sign_in(
        http, "staff", "gp.login.csrf", user.one_time_password, code, Origin="https://evil.example"
    )
    assert evil.status_code == 403
    with store.reading() as tx:
        assert accounts.get_account(tx.conn, user.user_id).failed_attempts == 0


def test_a_failed_sign_in_says_why_and_is_audited_without_the_username(
    http: TestClient, store: SqlStore
) -> None:
    new_account(store, "gp.fails")
    answer = sign_in(http, "staff", "gp.fails", "not the password", "123456")
    page = answer.text
    assert answer.status_code == 400
    assert "There is a problem" in page and "The username or password is not right" in page
    assert "<title>Error: Sign in" in page and 'value="gp.fails"' in page
    failures = trail(store, "signin")
    assert len(failures) == 1 and failures[0].outcome == "failed"
    assert "gp.fails" not in str(failures[0])
    empty = sign_in(http, "patient", "", "")
    assert "Enter your username" in empty.text and "Enter your password" in empty.text


def test_sessions_end_after_idle_time_and_at_their_absolute_limit(
    http: TestClient, store: SqlStore
) -> None:
    start = store.clock()
    signed_in_staff(http, store)
    now = [start]
    store.clock = lambda: now[0]
    # Active every 15 minutes: the idle limit (20 minutes) never runs out...
    for _ in range(39):
        now[0] += timedelta(minutes=15)
        assert http.get("/staff").status_code == 200
    # ... but the absolute one (10 hours for staff) does.
    now[0] += timedelta(minutes=16)
    ended = http.get("/staff")
    assert ended.status_code == 303 and ended.headers["location"] == "/staff/sign-in?timed-out=1"
    assert "you were signed out" in http.get(ended.headers["location"]).text
    # Idle: a new session left alone for 20 minutes is over.
    now[0] = start
    signed_in_staff(http, store, "gp.idle")
    now[0] += sessions.IDLE
    assert http.get("/staff").status_code == 303


def test_the_staff_and_patient_areas_refuse_each_others_sessions(
    http: TestClient, store: SqlStore
) -> None:
    patient = new_account(store, "jo.bloggs", "patient")
    with store.writing() as tx:
        accounts.change_password(tx.conn, patient.user_id, patient.one_time_password, NEW_PASSWORD)
    # A patient cannot sign in at the staff page (even with the right password)...
    wrong_door = sign_in(http, "staff", "jo.bloggs", NEW_PASSWORD, "000000")
    assert wrong_door.status_code == 400
    assert "patient services" in wrong_door.text
    answer = sign_in(http, "patient", "jo.bloggs", NEW_PASSWORD)
    assert answer.status_code == 303 and answer.headers["location"] == "/patient"
    assert "Jo Bloggs" in http.get("/patient").text
    # ... and a patient's session does not open staff pages.
    refused = http.get("/staff")
    assert refused.status_code == 403 and "Your GP practice online" in refused.text
    http.cookies.clear()
    signed_in_staff(http, store)
    assert http.get("/patient").status_code == 403


def test_a_disabled_account_loses_its_sessions(http: TestClient, store: SqlStore) -> None:
    user = signed_in_staff(http, store)
    with store.writing() as tx:
        accounts.set_disabled(tx.conn, user.user_id, True)
    assert http.get("/staff").headers["location"] == "/staff/sign-in?timed-out=1"
    with store.reading() as tx:
        assert tx.conn.execute(select(login_session)).first() is None


def test_the_session_principal_is_the_one_the_fhir_api_uses(store: SqlStore) -> None:
    user = new_account(store, "gp.principal")
    now = datetime.now().astimezone()
    with store.writing() as tx:
        _, session = sessions.start(tx.conn, user.user_id, "staff", now)
        principal = sessions.principal_of(tx.conn, session, now)
    assert principal.kind == "staff" and principal.id == user.user_id
    assert principal.roles == {"R8000"} and principal.scopes == {"user/*.cruds"}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"username=a%00b&password=x", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
        (b"x=" + b"a" * 20_000, "application/x-www-form-urlencoded"),
        (b"&".join(b"f%d=1" % i for i in range(50)), "application/x-www-form-urlencoded"),
        (b'{"username": "x"}', "application/json"),
        (b"form_token=%C3%A9.%C3%A9&username=x&password=y", "application/x-www-form-urlencoded"),
        (b"change_token=%C2%B2.a.b.c&form_token=1.2", "application/x-www-form-urlencoded"),
    ],
)
def test_odd_posts_get_an_answer_never_a_crash(
    http: TestClient, content: bytes, content_type: str
) -> None:
    http.get("/patient/sign-in")
    for path in ("/patient/sign-in", "/patient/new-password", "/staff/sign-out"):
        answer = http.post(path, content=content, headers={"Content-Type": content_type})
        assert answer.status_code in (303, 400, 403), (path, answer.status_code)


def test_pages_work_and_the_start_page_links_both_areas(http: TestClient) -> None:
    start = http.get("/")
    assert 'href="/patient"' in start.text and 'href="/staff"' in start.text
    assert "Skip to main content" in start.text
    for path in ("/staff", "/patient"):
        assert http.get(path).headers["location"] == f"{path}/sign-in"
        assert http.get(f"{path}/new-password").headers["location"] == f"{path}/sign-in"
        assert http.get(f"{path}/signed-out").status_code == 200
    page = http.get("/patient/sign-in")
    nonce = re.search(r'<script nonce="([^"]+)">', page.text)
    assert nonce and f"'nonce-{nonce.group(1)}'" in page.headers["Content-Security-Policy"]
    assert http.get("/assets/opengp.js").status_code == 200
