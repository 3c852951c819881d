"""The first run of a new deployment, on both databases: no staff account, so starting the
server prints a one-time link; /setup creates the first administrator (R8015, own password,
authenticator app) once, and is gone (404) as soon as any staff account exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from opengp.access import accounts, first_run, totp
from opengp.app import create_app
from opengp.config import Settings
from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import setup_token
from opengp.store.sql.audit import query_audit
from tests.functional.server import Server

BASE = "https://gp.test"
PASSWORD = "correct horse battery staple"
LINK = re.compile(r"/setup\?token=([A-Za-z0-9_-]{43})")


@pytest.fixture
def settings(database_url: str, key_file: Path) -> Settings:
    return Settings(database_url=database_url, signing_key_path=str(key_file))


def _started(
    settings: Settings, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> tuple[TestClient, str | None]:
    """The app, and the setup token it printed (None: none)."""
    capsys.readouterr()
    app = create_app(settings, store)
    printed = capsys.readouterr().err
    found = LINK.search(printed)
    return TestClient(app, base_url=BASE, follow_redirects=False), found and found.group(1)


@pytest.fixture
def first(
    settings: Settings, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[TestClient, str]]:
    http, token = _started(settings, store, capsys)
    assert token is not None, "no setup link printed"
    with http:
        yield http, token


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


def form_of(page: str, **fields: str) -> dict[str, str]:
    form = {n: hidden(page, n) for n in ("form_token", "setup_token", "totp_secret")}
    return {
        **form,
        "username": "admin.one",
        "name": "Asha Patel",
        "password": PASSWORD,
        "confirm_password": PASSWORD,
        **fields,
    }


def code(store: SqlStore, secret: str, step: int = 0) -> str:
    return totp.code_at(secret, store.clock() + timedelta(seconds=30 * step))


def staff_accounts(store: SqlStore) -> list[accounts.Account]:
    with store.reading() as tx:
        return [a for a in accounts.list_accounts(tx.conn) if a.kind == "staff"]


def test_the_link_creates_the_first_administrator_once(
    first: tuple[TestClient, str],
    store: SqlStore,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    http, token = first
    page = http.get(f"/setup?token={token}")
    assert page.status_code == 200 and "Set up OpenGP" in page.text
    assert page.headers["cache-control"] == "no-store"
    secret = hidden(page.text, "totp_secret")
    assert secret in page.text and f"secret={secret}" in page.text  # the key, and its link
    # Problems are shown field by field, and nothing is created.
    answer = http.post("/setup", data=form_of(page.text, confirm_password="something else"))
    assert answer.status_code == 400 and "The passwords do not match" in answer.text
    assert 'href="#code"' in answer.text  # the code was missing too
    weak = form_of(page.text, password="short", confirm_password="short", code="123456")
    answer = http.post("/setup", data=weak)
    assert answer.status_code == 400 and "at least 12 characters" in answer.text
    wrong = http.post("/setup", data=form_of(page.text, code="000000"))
    assert wrong.status_code == 400 and "The code is not right" in wrong.text
    assert hidden(wrong.text, "totp_secret") == secret  # the app set up stays set up
    assert staff_accounts(store) == []
    # A good form: the account, the session, and the end of setup.
    done = http.post("/setup", data=form_of(wrong.text, code=code(store, secret)))
    assert done.status_code == 303 and done.headers["location"] == "/staff"
    home = http.get("/staff")
    assert home.status_code == 200 and "Asha Patel" in home.text
    assert "Systems Support Access Role" in home.text
    (admin,) = staff_accounts(store)
    assert admin.username == "admin.one" and admin.roles == frozenset({"R8015"})
    assert admin.totp_enrolled and not admin.must_change_password
    # The link works once, and the page is gone.
    assert http.get(f"/setup?token={token}").status_code == 404
    assert http.post("/setup", data=form_of(page.text, code="123456")).status_code == 404
    with store.reading() as tx:
        rows = list(tx.conn.execute(select(setup_token.c.token_hash)))
        trail = query_audit(tx.conn, count=30)
    assert [row.token_hash for row in rows] == [first_run.SETUP_DONE]  # no token hash kept
    made = [e for e in trail if e.action in ("signin", "create")]  # not the page views
    assert [(e.action, e.principal) for e in made[:2]] == [
        ("signin", f"staff/{admin.id}"),
        ("create", f"staff/{admin.id}"),
    ]
    # Starting again prints nothing; the administrator signs in like any member of staff.
    again, printed = _started(settings, store, capsys)
    assert printed is None
    with again:
        sign_in = again.get("/staff/sign-in")
        form = {"form_token": hidden(sign_in.text, "form_token"), "username": "admin.one"}
        form |= {"password": PASSWORD, "code": code(store, secret, 1)}
        assert again.post("/staff/sign-in", data=form).status_code == 303


def test_a_link_unknown_or_expired_is_refused(
    first: tuple[TestClient, str], store: SqlStore
) -> None:
    http, token = first
    unknown = http.get("/setup?token=" + "x" * 43)
    assert unknown.status_code == 403 and "does not work" in unknown.text
    assert http.get("/setup").status_code == 403
    with store.writing() as tx:
        old = first_run.issue_token(tx.conn, store.clock() - first_run.TOKEN_LIFETIME * 2)
    assert old is not None
    assert http.get(f"/setup?token={old}").status_code == 403
    page = http.get(f"/setup?token={token}")
    form = form_of(page.text, setup_token=old, code=code(store, hidden(page.text, "totp_secret")))
    assert http.post("/setup", data=form).status_code == 403
    assert staff_accounts(store) == []


def test_the_form_has_the_sign_in_pages_defences(
    first: tuple[TestClient, str], store: SqlStore
) -> None:
    http, token = first
    page = http.get(f"/setup?token={token}")
    form = form_of(page.text, code=code(store, hidden(page.text, "totp_secret")))
    forged = http.post("/setup", data=form, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    other_site = http.post("/setup", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert other_site.status_code == 403
    http.cookies.clear()  # another browser: the form token is not its own
    timed_out = http.post("/setup", data=form)
    assert timed_out.status_code == 400 and "timed out" in timed_out.text
    assert staff_accounts(store) == []


def test_two_processes_two_links_one_administrator(
    first: tuple[TestClient, str], store: SqlStore
) -> None:
    http, token = first
    with store.writing() as tx:
        second = first_run.issue_token(tx.conn, store.clock())  # another worker's
    assert second is not None
    page = http.get(f"/setup?token={second}")
    secret = hidden(page.text, "totp_secret")
    assert http.post("/setup", data=form_of(page.text, code=code(store, secret))).status_code == 303
    assert http.get(f"/setup?token={token}").status_code == 404
    with store.writing() as tx:  # and once done, no new token is ever issued
        assert first_run.issue_token(tx.conn, store.clock()) is None
        with pytest.raises(first_run.SetupGone):
            first_run.create_first_administrator(
                tx.conn,
                token,
                username="admin.two",
                display_name="Second",
                password=PASSWORD,
                totp_secret=secret,
                totp_code="123456",
                now=store.clock(),
            )
    assert len(staff_accounts(store)) == 1


def test_no_link_and_no_page_once_staff_exist(
    settings: Settings, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.writing() as tx:
        accounts.create_user(
            tx.conn,
            username="gp.one",
            kind="staff",
            display_name="Dr One",
            roles=["R8000"],
            with_totp=True,
        )
    http, token = _started(settings, store, capsys)
    assert token is None
    with http:
        assert http.get("/setup?token=" + "x" * 43).status_code == 404
        assert http.post("/setup", data={"setup_token": "x"}).status_code in (403, 404)


@pytest.mark.slow
def test_opengp_serve_prints_the_link(database_url: str, tmp_path: Path, key_file: Path) -> None:
    log = tmp_path / "serve.log"
    server = Server(database_url, log, key_file).start()
    try:
        found = LINK.search(log.read_text())
        assert found, log.read_text()[-2000:]
        page = httpx.get(f"{server.url}/setup?token={found.group(1)}")
        assert page.status_code == 200 and "Set up OpenGP" in page.text
        # The token is on the console, once; nothing else there holds it.
        assert log.read_text().count(found.group(1)) == 1
    finally:
        server.stop()
