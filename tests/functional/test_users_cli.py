"""`opengp users add|list` as a real process against an embedded SQLite database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opengp.access import totp
from opengp.access.accounts import proxy_patients, sign_in
from opengp.access.passwords import OTP_ALPHABET
from opengp.store.sql import SqlStore

OTP_FORMAT = re.compile(rf"[{OTP_ALPHABET}]{{4}}(-[{OTP_ALPHABET}]{{4}}){{3}}")


def _opengp(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "opengp", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'opengp.db'}"


def _add(url: str, *args: str) -> dict[str, Any]:
    done = _opengp("users", "add", *args, "--database", url, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_add_staff_prints_a_one_time_password_that_signs_in(url: str) -> None:
    result = _add(
        url,
        "--username",
        "Dr.Patel",
        "--kind",
        "staff",
        "--name",
        "Dr Asha Patel",
        "--role",
        "R8000",
        "--role",
        "R8001",
        "--fhir-user",
        "Practitioner/asha",
        "--practitioner-role",
        "PractitionerRole/asha-gp",
        "--organization",
        "practice-1",
        "--totp",
    )
    assert set(result) == {"user_id", "username", "one_time_password", "totp_uri"}
    assert result["username"] == "dr.patel"
    assert OTP_FORMAT.fullmatch(result["one_time_password"])
    assert result["totp_uri"].startswith("otpauth://totp/OpenGP:dr.patel?")
    secret = re.search(r"secret=([A-Z2-7]+)", result["totp_uri"])
    assert secret is not None
    store = SqlStore.from_url(url)
    try:
        code = totp.code_at(secret[1], store.clock())
        principal = sign_in(store, "dr.patel", result["one_time_password"], code)
    finally:
        store.dispose()
    assert principal.id == result["user_id"]
    assert principal.roles == frozenset({"R8000", "R8001"})
    assert principal.practitioner_role == "PractitionerRole/asha-gp"


def test_add_proxy_with_a_grant_and_list_without_secrets(url: str) -> None:
    proxy = _add(
        url,
        "--username",
        "mum",
        "--kind",
        "proxy",
        "--name",
        "Jo Bloggs",
        "--proxy-for",
        "child-1",
        "--proxy-scopes",
        "patient/Appointment.cruds patient/*.rs",
    )
    assert proxy["totp_uri"] is None
    patient = _add(
        url, "--username", "pat", "--kind", "patient", "--name", "Sam", "--fhir-user", "Patient/p1"
    )
    assert patient["one_time_password"] != proxy["one_time_password"]
    store = SqlStore.from_url(url)
    try:
        with store.reading() as tx:
            grants = proxy_patients(tx.conn, proxy["user_id"])
    finally:
        store.dispose()
    assert grants == {"child-1": frozenset({"patient/Appointment.cruds", "patient/*.rs"})}

    listed = _opengp("users", "list", "--database", url)
    assert listed.returncode == 0, listed.stderr
    assert "mum" in listed.stdout and "pat" in listed.stdout and "proxy" in listed.stdout
    assert "must change password" in listed.stdout
    for secret in (proxy["one_time_password"], patient["one_time_password"], "argon2"):
        assert secret not in listed.stdout
    as_json = _opengp("users", "list", "--database", url, "--json")
    rows = json.loads(as_json.stdout)
    assert [(r["username"], r["kind"], r["locked"]) for r in rows] == [
        ("mum", "proxy", False),
        ("pat", "patient", False),
    ]


def test_duplicate_username_fails_with_a_reason(url: str) -> None:
    args = ["--username", "reception", "--kind", "staff", "--name", "Desk", "--role", "R8009"]
    _add(url, *args)
    again = _opengp(
        "users", "add", *[a.upper() if a == "reception" else a for a in args], "--database", url
    )
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.strip().splitlines() == ["opengp: username 'reception' is already taken"]


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["--kind", "staff", "--role", "R9999"], 2, "unknown national role 'R9999'"),
        (["--kind", "staff", "--role", "doctor"], 2, "unknown national role 'doctor'"),
        (["--kind", "admin", "--role", "R8000"], 2, "invalid choice: 'admin'"),
        (["--kind", "staff"], 1, "at least one national role"),
        (["--kind", "patient"], 1, "needs its fhir user"),
        (["--kind", "staff", "--role", "R8000", "--fhir-user", "Patient/p1"], 1, "Practitioner"),
        (["--kind", "proxy", "--proxy-for", "child-1"], 2, "go together"),
        (
            ["--kind", "staff", "--role", "R8000", "--proxy-for", "c", "--proxy-scopes", "x"],
            2,
            "--kind proxy",
        ),
        (["--kind", "proxy", "--proxy-for", "c", "--proxy-scopes", "user/*.rs"], 1, "SMART v2"),
    ],
)
def test_bad_input_is_refused_with_a_reason(
    url: str, args: list[str], code: int, reason: str
) -> None:
    done = _opengp(
        "users", "add", "--username", "someone", "--name", "Some One", *args, "--database", url
    )
    assert done.returncode == code, done.stderr
    assert reason in done.stderr
    assert done.stdout == ""
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1
        # Nothing was half-created (the account and its grant are one transaction).
        listed = _opengp("users", "list", "--database", url, "--json")
        assert json.loads(listed.stdout) == []
