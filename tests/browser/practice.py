"""What the browser tests and `make screenshots` share: a real `opengp serve` on an empty
practice database, accounts made straight in that database, Debian's Chromium driven by
Playwright, axe-core from node_modules, and the sign-in journeys."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey
from playwright.sync_api import Browser, Page, sync_playwright

from opengp.access import accounts, totp
from opengp.access.accounts import CreatedUser
from opengp.api.web.pages import STATIC
from opengp.store.sql import SqlStore
from tests.functional.server import Server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
NEW_PASSWORD = "plum orchard lantern 58"
# WCAG 2.2 A and AA, as axe-core tags them.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def missing_tools() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (`make test` installs Debian's chromium when permitted)"
    if not (STATIC / "nhsuk-frontend.min.css").exists() or not AXE.exists():
        return "the front-end assets and axe-core are missing: run `make assets`"
    return None


class Practice:
    """A served, empty practice whose accounts the tests create."""

    def __init__(self, workdir: Path) -> None:
        key = workdir / "signing-key.pem"
        key.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
        self.database_url = f"sqlite:///{workdir / 'opengp.db'}"
        self.server = Server(self.database_url, workdir / "server.log", key)
        self.url = self.server.url

    def start(self) -> Practice:
        self.server.start()  # applies the migrations to the embedded database
        self.store = SqlStore.from_url(self.database_url)
        return self

    def stop(self) -> None:
        self.server.stop()
        self.store.dispose()

    def account(self, username: str, kind: str, display_name: str, **fields: Any) -> CreatedUser:
        with self.store.writing() as tx:
            return accounts.create_user(
                tx.conn,
                username=username,
                kind=kind,
                display_name=display_name,
                with_totp=kind == "staff",
                **fields,
            )

    def staff(self, username: str, name: str = "Dr Amira Shah") -> CreatedUser:
        return self.account(username, "staff", name, roles=["R8000"])

    def patient(self, username: str, name: str = "Jo Bloggs") -> CreatedUser:
        return self.account(username, "patient", name, fhir_user="Patient/example")


def security_code(user: CreatedUser, steps_ahead: int = 0) -> str:
    """What the user's authenticator app shows (a later step for a second sign-in)."""
    assert user.totp_secret is not None
    now = datetime.now(UTC) + timedelta(seconds=totp.STEP_SECONDS * steps_ahead)
    return totp.code_at(user.totp_secret, now)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def served(workdir: Path) -> Iterator[Practice]:
    practice = Practice(workdir).start()
    try:
        yield practice
    finally:
        practice.stop()


def fill_sign_in(page: Page, username: str, password: str, code: str = "") -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    if code:
        page.get_by_label("Security code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def first_sign_in(page: Page, practice: Practice, area: str, user: CreatedUser) -> None:
    """Sign in with the one-time password (and code), then choose the new password."""
    page.goto(f"{practice.url}/{area}/sign-in")
    code = security_code(user) if user.totp_secret else ""
    fill_sign_in(page, user.username, user.one_time_password, code)
    page.get_by_role("heading", name="Create a new password").wait_for()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Enter your new password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password and continue").click()
    page.wait_for_url(f"{practice.url}/{area}")


def axe_findings(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 A/AA violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def tour(page: Page, practice: Practice, tag: str) -> Iterator[str]:
    """Visit every screen there is, in the states a user meets it, naming each as it comes:
    the start page, both sign-ins (blank, then with errors), the new-password page (and its
    errors), both homes, the other area's refusal, and both signed-out pages."""
    staff, patient = practice.staff(f"gp.{tag}"), practice.patient(f"patient.{tag}")
    page.goto(f"{practice.url}/")
    yield "start"
    page.goto(f"{practice.url}/staff/sign-in")
    yield "staff-sign-in"
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("There is a problem").wait_for()
    yield "staff-sign-in-errors"
    fill_sign_in(page, staff.username, staff.one_time_password, security_code(staff))
    page.get_by_role("heading", name="Create a new password").wait_for()
    yield "new-password"
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Enter your new password again").fill("not the same password")
    page.get_by_role("button", name="Save password and continue").click()
    page.get_by_text("There is a problem").wait_for()
    yield "new-password-errors"
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Enter your new password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password and continue").click()
    page.wait_for_url(f"{practice.url}/staff")
    yield "staff-home"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{practice.url}/staff/signed-out")
    yield "staff-signed-out"
    page.goto(f"{practice.url}/patient/sign-in")
    yield "patient-sign-in"
    first_sign_in(page, practice, "patient", patient)
    yield "patient-home"
    page.goto(f"{practice.url}/staff")
    yield "wrong-area"
    page.goto(f"{practice.url}/patient")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{practice.url}/patient/signed-out")
    yield "patient-signed-out"
